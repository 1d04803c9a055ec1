#!/usr/bin/env bash
# The unit and embedded suites under exactly the Node version the images run (.nvmrc), whatever
# Node this machine has: the npm package `node@<version>` ships that release's official binary.
# Fails if that binary does not report the .nvmrc version. Child processes the suites spawn
# (process.execPath) run on the same binary.
set -euo pipefail
cd "$(dirname "$0")/.."

want=$(tr -d '[:space:]' < .nvmrc)
if [[ ! $want =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "image-runtime: .nvmrc must hold an exact version (x.y.z), got '$want'" >&2
  exit 1
fi

got=$(npx -y "node@$want" -v)
if [[ $got != "v$want" ]]; then
  echo "image-runtime: npx node@$want reports $got; expected v$want" >&2
  exit 1
fi
echo "image-runtime: running the unit and embedded suites on node $got (machine node: $(node -v))"

# The version check inside the run too: a resolver surprise must not pass silently.
npx -y "node@$want" -e "if (process.version !== 'v$want') { console.error('running on ' + process.version); process.exit(1); }"
npx -y "node@$want" node_modules/vitest/vitest.mjs run test/unit test/e2e/embedded.test.ts
