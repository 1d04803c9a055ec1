#!/usr/bin/env bash
# apply.sh OVERLAY: applies the promoted overlay and waits until every role has rolled out.
set -euo pipefail
overlay=$1
: "${KUBECONFIG_DATA:?the cluster credentials secret is not set for $overlay}"
export KUBECONFIG="$RUNNER_TEMP/kubeconfig"
printf '%s' "$KUBECONFIG_DATA" > "$KUBECONFIG"
chmod 600 "$KUBECONFIG"
kustomize build "k8s/overlays/$overlay" | kubectl apply --server-side -f -
for d in api checkpoint executor metrics planner rate-gateway; do
  kubectl -n clawfleet rollout status "deployment/clawfleet-$d" --timeout=10m
done
