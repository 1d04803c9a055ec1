#!/usr/bin/env bash
# promote.sh OVERLAY: points every role image of k8s/overlays/OVERLAY at the digest the build job
# pushed (DIGESTS: {"planner": "ghcr.io/o/clawfleet-planner@sha256:…", …}), with kustomize's own
# `edit set image`, then refuses to go on unless every rendered container image is digest-pinned.
set -euo pipefail
overlay=$1
: "${DIGESTS:?DIGESTS (JSON role -> image@digest) is required}"
cd "k8s/overlays/$overlay"
for role in $(jq -r 'keys[]' <<< "$DIGESTS"); do
  ref=$(jq -r --arg r "$role" '.[$r]' <<< "$DIGESTS")
  [[ $ref =~ @sha256:[0-9a-f]{64}$ ]] || { echo "$role: $ref is not pinned by digest" >&2; exit 1; }
  kustomize edit set image "clawfleet/$role=$ref"
done
cd - > /dev/null
# Deploy guard: no tag-only or unset image may reach the cluster.
images=$(kustomize build "k8s/overlays/$overlay" | sed -nE 's/^[[:space:]-]*image:[[:space:]]*"?([^"[:space:]]+)"?[[:space:]]*$/\1/p')
[[ -n $images ]] || { echo "no images rendered for $overlay" >&2; exit 1; }
if grep -vE '@sha256:[0-9a-f]{64}$' <<< "$images"; then
  echo "the images above are not pinned by digest; refusing to deploy $overlay" >&2
  exit 1
fi
echo "$images"
