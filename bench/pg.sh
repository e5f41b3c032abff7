#!/usr/bin/env bash
# PostgreSQL gateway benchmark: pgbench through `keepwatch run`'s PostgreSQL front end against
# pgbench straight to the same PostgreSQL, side by side and interleaved, both over TLS
# (sslmode=require). See bench/README.md ("PostgreSQL gateway").
#
# Needs a PostgreSQL server on KW_PG_HOST:KW_PG_PORT (127.0.0.1:5432) that lets KW_PG_LOGIN
# (postgres) in without a password (trust) over TLS and may CREATE DATABASE; pgbench and psql.
# Needs no root. The script creates the database KW_PG_DB (kwbench; refused if it exists), fills
# it with `pgbench -i -s KW_PG_SCALE`, and drops it on exit.
#
# Knobs (environment): KW_PG_DURATION (20 s per pgbench run), KW_PG_ROUNDS (3),
# KW_PG_CLIENTS (8), KW_PG_THREADS (2), KW_PG_SCALE (10), KW_PG_DB (kwbench),
# KW_PG_HOST (127.0.0.1), KW_PG_PORT (5432), KW_PG_LOGIN (postgres),
# KW_PG_PERF (1: one more profiled gateway run per workload with `perf record`, if perf is
# there; 0: none), KW_PG_DEADLINE (3600 s for the whole run after the build),
# KW_BENCH_SKIP_BUILD=1, KW_BENCH_KEEP=1 (keep the work directory and the database),
# KW_BENCH_OUT=FILE (also write the report there), CARGO_TARGET_DIR (default ./target).
set -euo pipefail

DURATION=${KW_PG_DURATION:-20}
ROUNDS=${KW_PG_ROUNDS:-3}
CLIENTS=${KW_PG_CLIENTS:-8}
THREADS=${KW_PG_THREADS:-2}
SCALE=${KW_PG_SCALE:-10}
DB=${KW_PG_DB:-kwbench}
PG_HOST=${KW_PG_HOST:-127.0.0.1}
PG_PORT=${KW_PG_PORT:-5432}
PG_LOGIN=${KW_PG_LOGIN:-postgres}
PERF=${KW_PG_PERF:-1}
DEADLINE=${KW_PG_DEADLINE:-3600}
PERSON=alice
PERSON_PW=kw-bench-$RANDOM$RANDOM
TARGET=pgbench

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
KW=$TARGET_DIR/release/keepwatch

log() { printf 'pg-bench: %s\n' "$*" >&2; }
die() { printf 'pg-bench: error: %s\n' "$*" >&2; exit 1; }

[[ $DB =~ ^[a-z_][a-z0-9_]*$ ]] || die "KW_PG_DB must be a plain lower-case name"
for tool in pgbench psql awk; do
    command -v "$tool" >/dev/null || die "$tool is not on PATH (apt-get install postgresql-client)"
done
[[ $PERF == 0 ]] || command -v perf >/dev/null || { log "no perf on PATH: no profile"; PERF=0; }

if [[ ${KW_BENCH_SKIP_BUILD:-0} != 1 ]]; then
    command -v cargo >/dev/null || die "cargo is not on PATH"
    log "building keepwatch (release) into $TARGET_DIR"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0} \
        cargo build --release -q -p keepwatch) || die "the release build failed"
fi
[[ -x $KW ]] || die "missing $KW (build it, or unset KW_BENCH_SKIP_BUILD)"

# --- work directory, cleanup, deadline ---------------------------------------------------------
WORK=$(mktemp -d /tmp/keepwatch-pgbench.XXXXXX)
KW_PID=
RUN_PID=
PERF_PID=
WATCHDOG_PID=
DB_CREATED=

ADMIN="host=$PG_HOST port=$PG_PORT user=$PG_LOGIN dbname=postgres sslmode=require"
DIRECT="host=$PG_HOST port=$PG_PORT user=$PG_LOGIN dbname=$DB sslmode=require"

stop_pid() { # pid [grace seconds]: TERM, wait, then KILL
    local pid=$1 grace=${2:-5} i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n $WATCHDOG_PID ]]; then
        local sleeper
        sleeper=$(pgrep -P "$WATCHDOG_PID" || true)
        kill "$WATCHDOG_PID" 2>/dev/null
        [[ -n $sleeper ]] && kill "$sleeper" 2>/dev/null
    fi
    stop_pid "$PERF_PID" 5
    stop_pid "$RUN_PID" 5
    stop_pid "$KW_PID" 15
    if [[ ${KW_BENCH_KEEP:-0} == 1 ]]; then
        log "kept the work directory $WORK${DB_CREATED:+ and the database $DB_CREATED}"
    else
        rm -rf "$WORK"
        if [[ -n $DB_CREATED ]]; then
            psql -q -X -v ON_ERROR_STOP=1 "$ADMIN" -c "DROP DATABASE \"$DB_CREATED\" WITH (FORCE)" >/dev/null \
                || log "warning: could not drop the database $DB_CREATED"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

(
    sleep "$DEADLINE"
    echo "pg-bench: error: the run passed its ${DEADLINE}s deadline; stopping" >&2
    kill -TERM $$
) &
WATCHDOG_PID=$!

START_TS=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the database ------------------------------------------------------------------------------
exists=$(psql -X -At -v ON_ERROR_STOP=1 "$ADMIN" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'") \
    || die "cannot reach PostgreSQL as $PG_LOGIN at $PG_HOST:$PG_PORT over TLS (pg_ctlcluster 15 main start?)"
[[ -z $exists ]] || die "database $DB already exists (drop it, or set KW_PG_DB)"
psql -q -X -v ON_ERROR_STOP=1 "$ADMIN" -c "CREATE DATABASE \"$DB\"" >/dev/null || die "cannot create database $DB"
DB_CREATED=$DB
log "pgbench -i -s $SCALE into $DB"
pgbench -i -q -s "$SCALE" "$DIRECT" >"$WORK/init.out" 2>&1 || die "pgbench -i failed: $(tail -3 "$WORK/init.out")"
PG_VERSION=$(psql -X -At "$DIRECT" -c "SHOW server_version")
PG_SETTINGS=$(psql -X -At "$DIRECT" -c "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name)
    FROM pg_settings WHERE name IN ('shared_buffers', 'synchronous_commit', 'fsync', 'max_connections')")
DIRECT_TLS=$(psql -X -At "$DIRECT" -c "SELECT version || ' ' || cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl")
[[ -n $DIRECT_TLS ]] || die "the direct connection is not TLS: the comparison would not be fair"

# --- the gateway -------------------------------------------------------------------------------
export KEEPWATCH_DATA_DIR=$WORK/keepwatch
export KEEPWATCH_LOG=${KEEPWATCH_LOG:-warn}
"$KW" init >"$WORK/keepwatch-init.out" 2>&1 || die "keepwatch init failed: $(cat "$WORK/keepwatch-init.out")"
echo -n "$PERSON_PW" | "$KW" user add "$PERSON" --role user --password-stdin >/dev/null
# The target's password is never asked for (trust), but a postgres target must have one.
echo -n unused | "$KW" target add "$TARGET" --protocol postgres --host "$PG_HOST" --port "$PG_PORT" \
    --login "$PG_LOGIN" --password-stdin --database "$DB" --tls require >/dev/null
"$KW" grant "$PERSON" "$TARGET" >/dev/null

"$KW" run --ssh-listen 127.0.0.1:0 --web-listen 127.0.0.1:0 --pg-listen 127.0.0.1:0 2>"$WORK/keepwatch-run.log" &
KW_PID=$!
GW_PORT=
for ((i = 0; i < 300; i++)); do
    GW_PORT=$(sed -n 's/^keepwatch: PostgreSQL gateway listening on .*:\([0-9]*\)$/\1/p' "$WORK/keepwatch-run.log")
    [[ -n $GW_PORT ]] && break
    kill -0 "$KW_PID" 2>/dev/null || die "the gateway exited: $(cat "$WORK/keepwatch-run.log")"
    sleep 0.1
done
[[ -n $GW_PORT ]] || die "the gateway did not report its PostgreSQL address within 30s"
GATEWAY="host=127.0.0.1 port=$GW_PORT user=$PERSON@$TARGET dbname=$DB sslmode=require"
export PGPASSWORD=$PERSON_PW # only the gateway asks for one
log "gateway pid $KW_PID, PostgreSQL front end on 127.0.0.1:$GW_PORT"

out=$(psql -X -At "$GATEWAY" -c "SELECT 'kw-ok-' || (40 + 2)" 2>&1) || die "smoke test through the gateway failed: $out"
[[ $out == kw-ok-42 ]] || die "smoke test through the gateway printed: $out"
# What the client negotiates with the gateway (rustls), next to what it negotiates with
# PostgreSQL directly (OpenSSL).
GATEWAY_TLS=$(openssl s_client -starttls postgres -connect "127.0.0.1:$GW_PORT" </dev/null 2>/dev/null |
    awk '/^New, / { sub(",", "", $2); print $2 " " $NF; exit }' || true)
GATEWAY_TLS=${GATEWAY_TLS:-unknown (no openssl)}
UPSTREAM_TLS=$(psql -X -At "$GATEWAY" -c "SELECT version || ' ' || cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl")
[[ -n $UPSTREAM_TLS ]] || die "the gateway's connection to PostgreSQL is not TLS"

# --- helpers -----------------------------------------------------------------------------------
gw_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$KW_PID/stat"; }
# Context switches of all the gateway's threads (threads that exited meanwhile are not counted).
gw_switches() { cat "/proc/$KW_PID/task/"*/status 2>/dev/null | awk '/ctxt_switches:/ { s += $2 } END { print s + 0 }'; }
recordings_bytes() { du -sb "$KEEPWATCH_DATA_DIR/recordings" 2>/dev/null | cut -f1 || echo 0; }
# The table, not --json: the JSON lists every session's statements (hundreds of thousands here).
active_sessions() { "$KW" sessions --active 2>/dev/null | awk 'NR > 1' | wc -l; }
session_ids() { "$KW" sessions | awk 'NR > 1 { print $1 }' | sort; }
TICK=$(getconf CLK_TCK)

# Statements each transaction of the built-in scripts sends.
declare -A STMTS=([select]=1 [tpcb]=7)
declare -A SCRIPT_FLAG=([select]=-S [tpcb]=)
declare -A LABEL=([select]="select-only (-S)" [tpcb]="TPC-B-like")
WORKLOADS=(select tpcb)
PROTOCOLS=(simple prepared)
PATHS=(direct gateway)
RESULTS=$WORK/runs.tsv # workload proto path round tps p50_us p99_us txns failed gw_cpu_s rec_bytes rec_stmts gw_switches
: >"$RESULTS"
FAILURES=()

# Each run starts from the same state: TPC-B's history truncated and its small tables vacuumed
# (what pgbench does unless -n), and no checkpoint pending from the run before.
reset_db() {
    psql -q -X -v ON_ERROR_STOP=1 "$DIRECT" \
        -c "VACUUM pgbench_branches, pgbench_tellers" -c "TRUNCATE pgbench_history" -c "CHECKPOINT" \
        >/dev/null 2>&1 || FAILURES+=("reset before a run failed")
}

# p50 and p99 latency in µs from pgbench's per-transaction logs (3rd field).
latency_quantiles() { # files...
    cat "$@" | awk '{ print $3 }' | sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "NaN\tNaN"; exit }
        i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999)
        printf "%d\t%d\n", v[i50], v[i99] }'
}

# bench WORKLOAD PROTO PATH ROUND [perf]: one timed pgbench run; appends a row to $RESULTS.
bench() {
    local w=$1 proto=$2 path=$3 round=$4 profile=${5:-} conn tag rc=0
    [[ $path == direct ]] && conn=$DIRECT || conn=$GATEWAY
    tag=$w-$proto-$path-$round
    mkdir -p "$WORK/logs/$tag"
    reset_db
    local ids0 cpu0 rec0 sw0
    if [[ $path == gateway ]]; then
        ids0=$(session_ids)
        sw0=$(gw_switches)
        cpu0=$(gw_cpu_ticks)
        rec0=$(recordings_bytes)
    fi
    if [[ -n $profile ]]; then
        perf record -q -F 499 -p "$KW_PID" -o "$WORK/perf.$w.data" -- sleep $((DURATION > 4 ? DURATION - 2 : DURATION)) \
            >/dev/null 2>"$WORK/perf.$w.err" &
        PERF_PID=$!
    fi
    # shellcheck disable=SC2086 # SCRIPT_FLAG is one flag or none
    (cd "$WORK/logs/$tag" && exec timeout -k 5 $((DURATION + 120)) pgbench -n ${SCRIPT_FLAG[$w]} \
        -c "$CLIENTS" -j "$THREADS" -T "$DURATION" -M "$proto" -l --log-prefix=txn "$conn") \
        >"$WORK/logs/$tag.out" 2>&1 &
    RUN_PID=$!
    wait "$RUN_PID" || rc=$?
    RUN_PID=
    if [[ -n $PERF_PID ]]; then
        wait "$PERF_PID" || FAILURES+=("perf record: $(tail -2 "$WORK/perf.$w.err" | tr '\n' ' ')")
        PERF_PID=
    fi
    local tps txns failed quant gw_cpu=NaN rec_bytes=NaN rec_stmts=NaN sw=NaN into=$RESULTS
    [[ -z $profile ]] || into=$WORK/profiled.tsv # a profiled run is slower: not in the medians
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$WORK/logs/$tag.out")
    txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/logs/$tag.out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/logs/$tag.out")
    quant=$(latency_quantiles "$WORK/logs/$tag"/txn.*)
    if ((rc != 0)) || [[ -z $tps || ${failed:-0} != 0 ]]; then
        FAILURES+=("$tag: pgbench exit $rc, failed ${failed:-?}: $(grep -m3 -i 'error\|fatal\|abort' "$WORK/logs/$tag.out" | tr '\n' ' ' | cut -c1-300)")
        tps=NaN
    fi
    if [[ $path == gateway ]]; then
        gw_cpu=$(awk -v a="$cpu0" -v b="$(gw_cpu_ticks)" -v t="$TICK" 'BEGIN { printf "%.2f", (b - a) / t }')
        sw=$(($(gw_switches) - sw0))
        # The sessions end when pgbench disconnects; their recordings land in recordings/ when sealed.
        local i
        for ((i = 0; i < 300; i++)); do
            [[ $(active_sessions) == 0 ]] && break
            sleep 0.1
        done
        [[ $(active_sessions) == 0 ]] || FAILURES+=("$tag: sessions still active 30 s after pgbench ended")
        rec_bytes=$(($(recordings_bytes) - rec0))
        # Statements recorded: every Query and every Execute is one statement event.
        rec_stmts=0
        local id n
        for id in $(comm -13 <(echo "$ids0") <(session_ids)); do
            n=$("$KW" show "$id" --events 2>/dev/null | grep -c '^.*#[0-9]* statement [0-9]* (' || true)
            rec_stmts=$((rec_stmts + n))
        done
    fi
    rm -rf "$WORK/logs/$tag" # the per-transaction logs are large; the quantiles are kept
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$proto" "$path" "$round" "$tps" "$quant" \
        "${txns:-0}" "${failed:-0}" "$gw_cpu" "$rec_bytes" "$rec_stmts" "$sw" >>"$into"
    log "$(printf '%-6s %-8s %-7s round %s: %9s tps  p50/p99 %s µs%s' "$w" "$proto" "$path" "$round" "$tps" \
        "$(tr '\t' / <<<"$quant")" "$([[ $path == gateway ]] && echo "  gateway CPU ${gw_cpu}s, recorded $rec_stmts statements in $rec_bytes B")")"
}

# --- the runs ----------------------------------------------------------------------------------
log "$ROUNDS rounds of ${#WORKLOADS[@]} workloads x ${#PROTOCOLS[@]} protocols x ${#PATHS[@]} paths, ${DURATION}s each, -c $CLIENTS -j $THREADS"
cell=0
for ((round = 1; round <= ROUNDS; round++)); do
    for w in "${WORKLOADS[@]}"; do
        for proto in "${PROTOCOLS[@]}"; do
            # Alternate which path goes first, so neither always runs on a fresher machine (or
            # a bigger table: TPC-B's accounts grow dead rows between vacuums).
            if (((round + cell) % 2)); then order=(gateway direct); else order=(direct gateway); fi
            cell=$((cell + 1))
            for path in "${order[@]}"; do
                bench "$w" "$proto" "$path" "$round"
            done
        done
    done
done

PROFILE_TXT=$WORK/profile.txt
: >"$PROFILE_TXT"
if [[ $PERF == 1 ]]; then
    for w in "${WORKLOADS[@]}"; do
        log "profiling the gateway ($w, simple)"
        bench "$w" simple gateway profile profile
        if [[ -s $WORK/perf.$w.data ]]; then
            {
                echo "Gateway profile, ${LABEL[$w]} -M simple (perf record -F 499 -p GATEWAY): samples by thread and object, then the top user-space symbols:"
                echo
                echo '```'
                perf report -i "$WORK/perf.$w.data" --stdio --no-children --sort comm,dso --percent-limit 0.5 2>/dev/null |
                    grep -v '^#' | grep -v '^$' | sed 's/ *$//' | head -10 || true
                echo
                perf report -i "$WORK/perf.$w.data" --stdio --no-children --sort dso,symbol --dsos keepwatch,libc.so.6 2>/dev/null |
                    grep -v '^#' | grep -v '^$' | cut -c1-140 | sed 's/ *$//' | head -20 || true
                echo '```'
                echo
            } >>"$PROFILE_TXT"
        fi
    done
fi

# --- recordings still verify -------------------------------------------------------------------
log "verifying every recording"
if timeout -k 5 600 "$KW" verify --all >"$WORK/verify.out" 2>&1; then
    VERIFY=$(tail -1 "$WORK/verify.out")
else
    VERIFY="FAILED: $(tail -3 "$WORK/verify.out" | tr '\n' ' ' | cut -c1-300)"
    FAILURES+=("keepwatch verify --all: $VERIFY")
fi

# --- report ------------------------------------------------------------------------------------
median() { # numbers on stdin; NaN when none
    sort -g | awk '$1 != "NaN" && $1 != "" { v[n++] = $1 } END {
        if (n == 0) { print "NaN"; exit }
        if (n % 2) print v[(n - 1) / 2]; else printf "%.1f\n", (v[n / 2 - 1] + v[n / 2]) / 2 }'
}
col() { # workload proto path column
    awk -F'\t' -v w="$1" -v p="$2" -v m="$3" -v c="$4" '$1 == w && $2 == p && $3 == m { print $c }' "$RESULTS"
}
col_sum() { col "$@" | awk '$1 != "NaN" { s += $1 } END { print s + 0 }'; }
all_runs() { col "$@" | paste -sd, | sed 's/,/, /g'; }
# Per-round gateway p99 minus direct p99 (same round, same workload): pairs cancel slow phases.
added_p99() {
    awk -F'\t' -v w="$1" -v p="$2" '$1 == w && $2 == p { v[$3, $4] = $7; r[$4] = 1 }
        END { for (k in r) if (v["direct", k] != "NaN" && v["gateway", k] != "NaN") print v["gateway", k] - v["direct", k] }' "$RESULTS"
}
ms() { awk -v v="$1" 'BEGIN { if (v == "NaN" || v == "") print "NaN"; else printf "%.2f", v / 1000 }'; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "NaN" || v == "") print "NaN"; else printf f, v }'; }
ELAPSED=$(($(date +%s) - START_TS))
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)

{
    echo "### Keepwatch PostgreSQL gateway benchmark — $(date -u +%Y-%m-%dT%H:%MZ), commit $COMMIT"
    echo
    echo "pgbench -n -c $CLIENTS -j $THREADS -T $DURATION, scale $SCALE, median of $ROUNDS rounds, paths interleaved; both paths sslmode=require."
    echo
    echo "| Workload | Protocol | Direct TPS | Gateway TPS | Gateway ÷ direct (≥ 0.80×) | Direct p99 | Gateway p99 | Added p99 (< 1 ms) | Gateway CPU per txn | Recording per 1M statements |"
    echo "|---|---|---:|---:|---|---:|---:|---|---:|---:|"
    for w in "${WORKLOADS[@]}"; do
        for proto in "${PROTOCOLS[@]}"; do
            d=$(col "$w" "$proto" direct 5 | median)
            g=$(col "$w" "$proto" gateway 5 | median)
            ratio=$(awk -v a="$g" -v b="$d" 'BEGIN { if (a == "NaN" || b == "NaN" || b == 0) print "NaN"; else printf "%.2f", a / b }')
            rv=$(awk -v r="$ratio" 'BEGIN { if (r == "NaN") print "FAIL"; else print (r >= 0.8 ? "met" : "**missed**") }')
            d99=$(col "$w" "$proto" direct 7 | median)
            g99=$(col "$w" "$proto" gateway 7 | median)
            add=$(added_p99 "$w" "$proto" | median)
            av=$(awk -v a="$add" 'BEGIN { if (a == "NaN") print "FAIL"; else print (a < 1000 ? "met" : "**missed**") }')
            txns=$(col_sum "$w" "$proto" gateway 8)
            cpu=$(col_sum "$w" "$proto" gateway 10)
            cpu_txn=$(awk -v c="$cpu" -v n="$txns" 'BEGIN { if (n == 0) print "NaN"; else printf "%.0f", c * 1e6 / n }')
            bytes=$(col_sum "$w" "$proto" gateway 11)
            stmts=$(col_sum "$w" "$proto" gateway 12)
            per_m=$(awk -v b="$bytes" -v s="$stmts" 'BEGIN { if (s == 0) print "NaN"; else printf "%.1f", b / s }')
            printf '| %s | %s | %s | %s | %s× %s | %s ms | %s ms | %s ms %s | %s µs | %s MB |\n' "${LABEL[$w]}" "$proto" \
                "$(fmt "$d" %.0f)" "$(fmt "$g" %.0f)" "$ratio" "$rv" \
                "$(ms "$d99")" "$(ms "$g99")" \
                "$(awk -v a="$add" 'BEGIN { if (a == "NaN") print a; else printf "%+.2f", a / 1000 }')" "$av" \
                "$cpu_txn" "$(awk -v p="$per_m" 'BEGIN { if (p == "NaN") print p; else printf "%.0f", p }')"
        done
    done
    echo
    echo "Recording per 1M statements = bytes added under recordings/ by the gateway runs ÷ statements in those recordings × 10^6 (MB = 10^6 B)."
    echo
    echo "Runs (TPS in round order; p50/p99 latency µs from the per-transaction logs):"
    for w in "${WORKLOADS[@]}"; do
        for proto in "${PROTOCOLS[@]}"; do
            for path in "${PATHS[@]}"; do
                echo "- $w $proto $path: TPS $(all_runs "$w" "$proto" "$path" 5); p50 $(all_runs "$w" "$proto" "$path" 6); p99 $(all_runs "$w" "$proto" "$path" 7)"
            done
            txns=$(col_sum "$w" "$proto" gateway 8)
            stmts=$(col_sum "$w" "$proto" gateway 12)
            echo "  - gateway: $txns transactions × ${STMTS[$w]} statements = $((txns * ${STMTS[$w]})) expected, $stmts recorded (in-flight ones at -T's end and pgbench's setup queries are recorded too); $(col_sum "$w" "$proto" gateway 11) B of recordings; gateway CPU s per run $(all_runs "$w" "$proto" gateway 10); gateway context switches per statement $(awk -v a="$(col_sum "$w" "$proto" gateway 13)" -v s="$stmts" 'BEGIN { if (s == 0) print "NaN"; else printf "%.2f", a / s }')"
        done
    done
    echo "- TLS: client→PostgreSQL directly $DIRECT_TLS; client→gateway $GATEWAY_TLS; gateway→PostgreSQL $UPSTREAM_TLS"
    echo "- PostgreSQL $PG_VERSION ($PG_SETTINGS); pgbench $(pgbench --version | awk '{ print $NF }')"
    echo "- keepwatch verify --all: $VERIFY"
    echo "- machine: $(nproc) CPU $(lscpu | sed -n 's/^Model name: *//p' | head -1), load average (1/5/15 min) at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg); wall time after the build ${ELAPSED}s"
    if [[ -s $PROFILE_TXT ]]; then
        echo
        cat "$PROFILE_TXT"
    fi
    if ((${#FAILURES[@]})); then
        echo
        echo "Failures:"
        printf -- '- %s\n' "${FAILURES[@]}"
    fi
} | tee "$WORK/report.md"
[[ -n ${KW_BENCH_OUT:-} ]] && cp "$WORK/report.md" "$KW_BENCH_OUT"
((${#FAILURES[@]} == 0))
