#!/usr/bin/env bash
# Search benchmark: builds a fresh store of synthetic sessions and commands through the
# store's indexer API, then times `keepwatch search`-style queries. See bench/README.md.
#
# Knobs (environment): KW_SEARCH_SESSIONS (10000), KW_SEARCH_COMMANDS (1000000),
# KW_SEARCH_OUTPUT_MB (1000), KW_SEARCH_QUERIES (200 per class), KW_SEARCH_SEED (1),
# KW_SEARCH_KEEP=1 (keep the work directory and its database), KW_SEARCH_OUT=FILE (also write
# the report there), KW_BENCH_SKIP_BUILD=1, CARGO_TARGET_DIR (default ./target).
# Needs no root and no network; about 5x KW_SEARCH_OUTPUT_MB of free space in /tmp.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
KWB=$TARGET_DIR/release/keepwatch-bench

log() { printf 'search-bench: %s\n' "$*" >&2; }
die() { printf 'search-bench: error: %s\n' "$*" >&2; exit 1; }

if [[ ${KW_BENCH_SKIP_BUILD:-0} != 1 ]]; then
    command -v cargo >/dev/null || die "cargo is not on PATH"
    log "building keepwatch-bench (release) into $TARGET_DIR"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p keepwatch-bench) \
        || die "the release build failed"
fi
[[ -x $KWB ]] || die "missing $KWB (build it, or unset KW_BENCH_SKIP_BUILD)"

export KW_SEARCH_SESSIONS=${KW_SEARCH_SESSIONS:-10000}
export KW_SEARCH_COMMANDS=${KW_SEARCH_COMMANDS:-1000000}
export KW_SEARCH_OUTPUT_MB=${KW_SEARCH_OUTPUT_MB:-1000}
export KW_SEARCH_QUERIES=${KW_SEARCH_QUERIES:-200}
export KW_SEARCH_SEED=${KW_SEARCH_SEED:-1}

WORK=$(mktemp -d /tmp/keepwatch-search.XXXXXX)
cleanup() {
    if [[ ${KW_SEARCH_KEEP:-0} == 1 ]]; then
        log "kept $WORK (keepwatch-bench search --dir $WORK --reuse times the queries again)"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

log "$KW_SEARCH_SESSIONS sessions, $KW_SEARCH_COMMANDS commands, $KW_SEARCH_OUTPUT_MB MB of output in $WORK"
started=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$KWB" search --dir "$WORK" --raw "$WORK/queries.tsv" | tee "$WORK/report.txt"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
{
    echo
    echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM;" \
        "load average $load_before before, $load_after after; $(( $(date +%s) - started )) s in all;" \
        "seed $KW_SEARCH_SEED, $KW_SEARCH_QUERIES queries per class, $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)."
} | tee -a "$WORK/report.txt"
if [[ -n ${KW_SEARCH_OUT:-} ]]; then
    cp "$WORK/report.txt" "$KW_SEARCH_OUT"
    cp "$WORK/queries.tsv" "${KW_SEARCH_OUT%.*}.queries.tsv"
fi
