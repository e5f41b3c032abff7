#!/usr/bin/env bash
# The web console's end-to-end test: builds the keepwatch binary (debug), then runs
# web/e2e/console.mjs in headless Debian Chromium (playwright-core) against it, a throwaway
# sshd target and a real ssh client. Screenshots land in web/e2e/artifacts/.
# Needs what scripts/test.sh installs: chromium, nodejs + npm, openssh-server, the user kwtest.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null || { echo "scripts/e2e.sh: node missing: apt-get install nodejs npm (or run scripts/test.sh as root)" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "scripts/e2e.sh: /usr/bin/chromium missing: apt-get install chromium (or run scripts/test.sh as root)" >&2; exit 1; }
if [ ! -d web/node_modules/playwright-core ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  command -v npm >/dev/null || { echo "scripts/e2e.sh: npm missing: apt-get install npm" >&2; exit 1; }
  (cd web && npm ci --no-audit --no-fund)
fi

cargo build -p keepwatch --locked
target_dir="${CARGO_TARGET_DIR:-target}"
node web/e2e/console.mjs "$target_dir/debug/keepwatch"
