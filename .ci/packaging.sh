#!/usr/bin/env bash
# Tools the packaging suites (test/packaging/*.test.ts, run by `npm test`) need: docker-compose from
# Debian's package; kubectl (with its built-in kustomize) is on the machine. Outside CI a tool that
# cannot be had is skipped with a loud banner by the suites; with CI=true its absence fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

banner() {
  local bar
  bar=$(printf '!%.0s' {1..78})
  printf '%s\n!!  %s\n%s\n' "$bar" "$1" "$bar" >&2
}

if ! command -v docker-compose > /dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get > /dev/null; then
    echo "packaging: installing docker-compose (Debian package)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose > /dev/null; } ||
      banner "apt-get install docker-compose failed"
  fi
fi
if ! command -v docker-compose > /dev/null; then
  if [[ ${CI:-} == true ]]; then
    echo "packaging: docker-compose is required in CI and could not be installed" >&2
    exit 1
  fi
  banner "docker-compose NOT AVAILABLE: compose validation will be SKIPPED"
fi
if ! command -v kubectl > /dev/null; then
  if [[ ${CI:-} == true ]]; then
    echo "packaging: kubectl is required in CI" >&2
    exit 1
  fi
  banner "kubectl NOT AVAILABLE: Kubernetes rendering and validation will be SKIPPED"
fi

echo "packaging: $(docker-compose version --short 2>/dev/null || echo 'no docker-compose'), kubectl $(kubectl version --client 2>/dev/null | head -1 || echo 'none')"
# The packaging suites themselves run with the rest under `npm test`.
