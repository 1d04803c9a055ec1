#!/usr/bin/env bash
# Observability checks for CI (called from .ci/run): the Prometheus alert rules are valid
# (promtool check rules) and behave as their unit tests say (promtool test rules).
# Installs promtool (Debian's `prometheus` package) when it is missing; the vitest suites
# that scrape /metrics use the same promtool (`promtool check metrics`).
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool not found: installing Debian's prometheus package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The package's own service is not wanted (no systemd in CI); only promtool is used.
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool --version | head -n 1

promtool check rules ops/prometheus/alerts.yml
promtool test rules ops/prometheus/alerts.test.yml ops/prometheus/alerts.cost.test.yml
