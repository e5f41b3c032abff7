#!/usr/bin/env bash
# Search benchmark: builds a fresh store of synthetic sessions and commands through the
# store's indexer API, then times `keepwatch search`-style queries. See bench/README.md.
#
# Before that, KW_SEARCH_TERMINAL_MB (256) MB of synthetic terminal output go through the
# indexer's SessionIndexer into a database of their own: extraction MB/s, with the writes,
# and the index's size against the text.
#
# Knobs (environment): KW_SEARCH_SESSIONS (10000), KW_SEARCH_COMMANDS (1000000),
# KW_SEARCH_OUTPUT_MB (1000), KW_SEARCH_QUERIES (200 per class), KW_SEARCH_SEED (1),
# KW_SEARCH_KEEP=1 (keep the work directory and its database), KW_SEARCH_OUT=FILE (also write
# the report there), KW_BENCH_SKIP_BUILD=1, CARGO_TARGET_DIR (default ./target).
#
# Backend: KW_SEARCH_BACKEND=sqlite (default: a file in the work directory) or postgres.
# With postgres, the script creates a fresh database KW_SEARCH_PG_NAME (kw_search_bench;
# refused if it exists) on the server KW_SEARCH_POSTGRES
# (postgres://postgres@127.0.0.1:5432/postgres; a URL naming a database the user may
# CREATE DATABASE from), passes it to `keepwatch-bench search` as KW_SEARCH_DATABASE, and drops
# it afterwards unless KW_SEARCH_KEEP=1. Setting KW_SEARCH_DATABASE=postgres://.../DB yourself
# instead uses that (existing, empty) database as given and never drops it. Needs psql.
# Needs no root and no network; about 5x KW_SEARCH_OUTPUT_MB of free space in /tmp (SQLite)
# or on the PostgreSQL server.
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
export KW_SEARCH_TERMINAL_MB=${KW_SEARCH_TERMINAL_MB:-256}

BACKEND=${KW_SEARCH_BACKEND:-sqlite}
[[ -n ${KW_SEARCH_DATABASE:-} ]] && BACKEND=postgres
case $BACKEND in
sqlite | postgres) ;;
*) die "KW_SEARCH_BACKEND must be sqlite or postgres, not '$BACKEND'" ;;
esac

WORK=$(mktemp -d /tmp/keepwatch-search.XXXXXX)
PG_CREATED=
cleanup() {
    if [[ ${KW_SEARCH_KEEP:-0} == 1 ]]; then
        if [[ -n $PG_CREATED ]]; then
            log "kept $WORK and the database (KW_SEARCH_DATABASE=$KW_SEARCH_DATABASE keepwatch-bench search --dir $WORK --reuse times the queries again)"
        else
            log "kept $WORK (keepwatch-bench search --dir $WORK --reuse times the queries again)"
        fi
    else
        rm -rf "$WORK"
        if [[ -n $PG_CREATED ]]; then
            log "dropping database $PG_CREATED"
            psql -q -X -v ON_ERROR_STOP=1 "$KW_SEARCH_POSTGRES" \
                -c "DROP DATABASE \"$PG_CREATED\"" >/dev/null \
                || log "warning: could not drop database $PG_CREATED"
        fi
    fi
}
trap cleanup EXIT

if [[ $BACKEND == postgres && -z ${KW_SEARCH_DATABASE:-} ]]; then
    command -v psql >/dev/null || die "psql is not on PATH (needed to create the database)"
    KW_SEARCH_POSTGRES=${KW_SEARCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
    PG_NAME=${KW_SEARCH_PG_NAME:-kw_search_bench}
    [[ $PG_NAME =~ ^[a-z_][a-z0-9_]*$ ]] || die "KW_SEARCH_PG_NAME must be a plain lower-case name"
    [[ $KW_SEARCH_POSTGRES =~ ^(postgres|postgresql)://[^/?]+/([^?]*)(\?.*)?$ ]] \
        || die "KW_SEARCH_POSTGRES must look like postgres://user@host:port/database"
    PG_QUERY=${BASH_REMATCH[3]}
    PG_BASE=${KW_SEARCH_POSTGRES%%\?*}
    PG_BASE=${PG_BASE%/*}
    exists=$(psql -X -At -v ON_ERROR_STOP=1 "$KW_SEARCH_POSTGRES" \
        -c "SELECT 1 FROM pg_database WHERE datname = '$PG_NAME'") \
        || die "cannot reach PostgreSQL at $KW_SEARCH_POSTGRES"
    [[ -z $exists ]] || die "database $PG_NAME already exists (drop it, or set KW_SEARCH_PG_NAME)"
    psql -q -X -v ON_ERROR_STOP=1 "$KW_SEARCH_POSTGRES" -c "CREATE DATABASE \"$PG_NAME\"" >/dev/null \
        || die "cannot create database $PG_NAME"
    PG_CREATED=$PG_NAME
    export KW_SEARCH_DATABASE=$PG_BASE/$PG_NAME$PG_QUERY
fi

where=$WORK
[[ $BACKEND == postgres ]] && where="PostgreSQL ${KW_SEARCH_DATABASE%%\?*}"
where=${where/:\/\/*@/:\/\/...@}
log "$KW_SEARCH_SESSIONS sessions, $KW_SEARCH_COMMANDS commands, $KW_SEARCH_OUTPUT_MB MB of output in $where ($BACKEND)"
started=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$KWB" search --dir "$WORK" --raw "$WORK/queries.tsv" | tee "$WORK/report.txt"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
{
    echo
    echo "Backend: $BACKEND."
    echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM;" \
        "load average $load_before before, $load_after after; $(( $(date +%s) - started )) s in all;" \
        "seed $KW_SEARCH_SEED, $KW_SEARCH_QUERIES queries per class, $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)."
} | tee -a "$WORK/report.txt"
if [[ -n ${KW_SEARCH_OUT:-} ]]; then
    cp "$WORK/report.txt" "$KW_SEARCH_OUT"
    cp "$WORK/queries.tsv" "${KW_SEARCH_OUT%.*}.queries.tsv"
fi
