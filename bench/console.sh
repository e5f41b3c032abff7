#!/usr/bin/env bash
# The console benchmark (issue 4): live-view latency (byte written by the target → parsed
# into the watching page's xterm.js buffer) p50/p99 with 1 and with 20 watchers, and seek
# latency in the player on a synthetic one-hour recording with heavy output.
# Headless Debian Chromium via playwright-core; needs what scripts/test.sh installs.
# Debug builds by default (the machine is small and shared); PROFILE=release for release.
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${PROFILE:-debug}"
flag=""
[ "$profile" = release ] && flag="--release"
[ -d web/node_modules/playwright-core ] || (cd web && npm ci --no-audit --no-fund)
cargo build $flag -p keepwatch -p keepwatch-bench --locked
target_dir="${CARGO_TARGET_DIR:-target}/$profile"
kw="$target_dir/keepwatch"

echo "== live-view latency (${KW_MARKERS:-300} markers every ${KW_INTERVAL:-0.02} s)"
node web/e2e/latency.mjs live "$kw"

echo "== seek latency on a one-hour recording"
data="$(mktemp -d)/data"
"$kw" --data-dir "$data" init >/dev/null
id="$("$target_dir/keepwatch-bench" synth-session --data-dir "$data" --duration-s 3600)"
"$kw" --data-dir "$data" verify "$id" >/dev/null
echo "synthetic session $id verifies; indexing it (commands, output, keyframes)"
"$kw" --data-dir "$data" reindex --all >/dev/null
node web/e2e/latency.mjs seek "$kw" "$data" "$id"
rm -rf "$(dirname "$data")"
