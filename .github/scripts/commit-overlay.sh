#!/usr/bin/env bash
# commit-overlay.sh OVERLAY: records the digests now running in OVERLAY on the default branch
# (checked out by the job), so git always says which image each environment runs.
set -euo pipefail
overlay=$1
branch=${DEFAULT_BRANCH:?DEFAULT_BRANCH is required}
git config user.name "clawfleet-release"
git config user.email "clawfleet-release@users.noreply.github.com"
git add "k8s/overlays/$overlay/kustomization.yaml"
if git diff --cached --quiet; then
  echo "overlay $overlay already at these digests"
  exit 0
fi
git commit -m "release: $overlay runs ${GITHUB_SHA::12}"
git pull --rebase origin "$branch"
git push origin "HEAD:$branch"
