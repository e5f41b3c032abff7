#!/usr/bin/env bash
# Keepwatch benchmark, three nodes (issue 11): KW_CLUSTER_SESSIONS (300) concurrent SSH
# sessions with continuous output, spread evenly over KW_CLUSTER_NODES (3) `keepwatch run`
# nodes on this machine (their own data directories and ports), sharing one PostgreSQL
# database and one S3 bucket (a single-node Garage on 127.0.0.1). Reports, per node and in
# total: delivered bytes against recorded bytes (byte for byte, `keepwatch-bench drill-check
# --exact` against the database and the bucket), each node's CPU seconds (/proc/PID/stat) and
# its CPU per GiB relayed; PostgreSQL's transactions per second (pg_stat_database) and its
# processes' CPU; the bucket's requests per second (Garage's /metrics) and objects written;
# the machine's CPU; and `keepwatch verify --all`. See bench/README.md ("Three nodes").
#
# Needs root (sshd on loopback, the local user kwtest if missing), PostgreSQL reachable with
# `psql` (trust auth; the script creates a fresh database and drops it on exit), and Garage
# (`cargo install --locked garage`). Talks only to 127.0.0.1. Knobs (environment), defaults
# in brackets:
#   KW_CLUSTER_SESSIONS [300]    sessions in all, spread evenly over the nodes
#   KW_CLUSTER_NODES [3]         gateway nodes
#   KW_CLUSTER_SECS [120]        seconds each session's producer prints, then exits 0
#   KW_CLUSTER_LINES_PER_TICK [2], KW_CLUSTER_TICK_MS [100], KW_CLUSTER_PAD [60]
#                                the producer's pace: 2 lines of ~100 bytes every 100 ms,
#                                ~1.9 kB/s a session (as drill 3 of bench/drills.sh)
#   KW_CLUSTER_POSTGRES [postgres://postgres@127.0.0.1:5432/postgres]
#                                the server, and a database there to run CREATE/DROP from
#   KW_CLUSTER_PG_NAME [kw_cluster_bench]   the database created (refused if it exists)
#   KW_CLUSTER_ARCHIVE [s3]      s3: the shared Garage bucket; local: no bucket, each node
#                                archives into its own data directory (no Garage needed; the
#                                bucket rows then say not measured)
#   KW_CLUSTER_DEADLINE [1800]   seconds for the whole run after the build (a watchdog)
#   KW_CLUSTER_KEEP=1            keep the work directory and the database
#   KW_CLUSTER_OUT=FILE          also write the report there
#   KW_BENCH_SKIP_BUILD=1, CARGO_TARGET_DIR (release build; default ./target)
set -euo pipefail

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
ROOT=$(cd "$(dirname "$SELF")/.." && pwd)
# The drills' helpers: alive, stop_pid, nap, wait_until, port_in_use, field, track_pid.
# shellcheck source=bench/drills-lib.sh
source "$ROOT/bench/drills-lib.sh"
log() { printf 'cluster: %s\n' "$*" >&2; }
die() {
    printf 'cluster: error: %s\n' "$*" >&2
    exit 1
}

SESSIONS=${KW_CLUSTER_SESSIONS:-300}
NODES=${KW_CLUSTER_NODES:-3}
SECS=${KW_CLUSTER_SECS:-120}
LINES_PER_TICK=${KW_CLUSTER_LINES_PER_TICK:-2}
TICK_MS=${KW_CLUSTER_TICK_MS:-100}
PAD=${KW_CLUSTER_PAD:-60}
PG_SERVER=${KW_CLUSTER_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
PG_NAME=${KW_CLUSTER_PG_NAME:-kw_cluster_bench}
DEADLINE=${KW_CLUSTER_DEADLINE:-1800}
ARCHIVE=${KW_CLUSTER_ARCHIVE:-s3}
# The target login (as in the integration tests; scripts/test.sh makes it). Its password is
# never changed here: other test runs on this machine rely on it.
TARGET_USER=kwtest
TARGET_PW=kwtest-pass-1
BUCKET=kw-cluster
PREFIX=rec
export KEEPWATCH_LOG=${KEEPWATCH_LOG:-warn}

[[ $(id -u) == 0 ]] || die "run as root: it starts sshd on loopback (and adds the user $TARGET_USER if missing)"
((NODES >= 1 && NODES <= 26)) || die "KW_CLUSTER_NODES must be 1..26"
((SESSIONS >= NODES)) || die "KW_CLUSTER_SESSIONS must be at least KW_CLUSTER_NODES"
[[ $PG_NAME =~ ^[a-z_][a-z0-9_]*$ ]] || die "KW_CLUSTER_PG_NAME must be a plain lower-case name"
[[ $ARCHIVE == s3 || $ARCHIVE == local ]] || die "KW_CLUSTER_ARCHIVE must be s3 or local"
GARAGE=$(command -v garage || echo "${CARGO_HOME:-$HOME/.cargo}/bin/garage")
[[ $ARCHIVE == local || -x $GARAGE ]] || die "Garage is not installed: cargo install --locked garage (or KW_CLUSTER_ARCHIVE=local)"
need_pkgs=()
[[ -x /usr/sbin/sshd ]] || need_pkgs+=(openssh-server)
command -v ssh-keygen >/dev/null || need_pkgs+=(openssh-client)
command -v psql >/dev/null || need_pkgs+=(postgresql-client)
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
psql "$PG_SERVER" -qAtc 'select 1' >/dev/null 2>&1 ||
    die "PostgreSQL at $PG_SERVER does not answer (pg_ctlcluster 15 main start)"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
KW=$TARGET_DIR/release/keepwatch
KWB=$TARGET_DIR/release/keepwatch-bench
if [[ ${KW_BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building keepwatch and keepwatch-bench (release) into $TARGET_DIR"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p keepwatch -p keepwatch-bench) ||
        die "the release build failed"
fi
[[ -x $KW && -x $KWB ]] || die "missing $KW or $KWB (build them, or unset KW_BENCH_SKIP_BUILD)"

# ==== clean-up: every process, the database, the work directory, even on failure ==============
WORK=$(mktemp -d /tmp/keepwatch-cluster.XXXXXX)
chmod 755 "$WORK"
export WORK
: >"$WORK/state"
PG_CREATED=0
WATCHDOG=
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    set +e
    if [[ -n $WATCHDOG ]]; then
        pkill -P "$WATCHDOG" 2>/dev/null
        kill "$WATCHDOG" 2>/dev/null
    fi
    # Clients first, then the nodes (SIGTERM seals what is live), then Garage and sshd.
    for pid in $(tac "$WORK/state" | awk '$1 == "pid" { print $2 }'); do stop_pid "$pid" 30; done
    if ((PG_CREATED)); then
        if [[ ${KW_CLUSTER_KEEP:-0} == 1 ]]; then
            log "kept the database $PG_NAME"
        else
            psql "$PG_SERVER" -qc "DROP DATABASE IF EXISTS $PG_NAME WITH (FORCE)" >/dev/null ||
                log "could not drop the database $PG_NAME: drop it by hand"
        fi
    fi
    if [[ ${KW_CLUSTER_KEEP:-0} == 1 ]]; then
        log "kept the work directory $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
(
    sleep "$DEADLINE"
    printf 'cluster: the run passed its %ss deadline; stopping it\n' "$DEADLINE" >&2
    kill -TERM $$
) &
WATCHDOG=$!

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
START_TS=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ==== the target: a loopback sshd, logging in as kwtest ========================================
if ! id "$TARGET_USER" >/dev/null 2>&1; then
    log "adding the local user $TARGET_USER (as scripts/test.sh does)"
    useradd -m -s /bin/bash "$TARGET_USER"
    echo "$TARGET_USER:$TARGET_PW" | chpasswd
fi
ssh-keygen -q -t ed25519 -N '' -C kw-cluster-client -f "$WORK/client_key"
ssh-keygen -q -t ed25519 -N '' -C kw-cluster-sshd -f "$WORK/sshd_host_key"
mkdir -p /run/sshd
chmod 755 /run/sshd
SSHD_PORT=$(free_port)
# Room for every session at once: each is one sshd connection.
cat >"$WORK/sshd.conf" <<EOF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $WORK/sshd_host_key
PidFile $WORK/sshd.pid
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
StrictModes no
MaxStartups 600:30:1000
MaxSessions 100
MaxAuthTries 10
LoginGraceTime 60
PrintMotd no
PrintLastLog no
LogLevel ERROR
EOF
/usr/sbin/sshd -t -f "$WORK/sshd.conf" || die "sshd rejects its config"
/usr/sbin/sshd -D -f "$WORK/sshd.conf" -E "$WORK/sshd.log" &
SSHD_PID=$!
track_pid "$SSHD_PID"
wait_until 10 "sshd on port $SSHD_PORT" port_in_use "$SSHD_PORT" || die "sshd did not start: $(tail -3 "$WORK/sshd.log")"

# ==== the bucket: single-node Garage, metrics on its admin port ================================
HAVE_METRICS=0
GARAGE_PID=
if [[ $ARCHIVE == s3 ]]; then
    RPC=$(free_port) S3=$(free_port) ADMIN=$(free_port)
    METRICS_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    cat >"$WORK/garage.toml" <<EOF
metadata_dir = "$WORK/garage/meta"
data_dir = "$WORK/garage/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC"
rpc_public_addr = "127.0.0.1:$RPC"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:$ADMIN"
metrics_token = "$METRICS_TOKEN"
EOF
    g() { "$GARAGE" -c "$WORK/garage.toml" "$@"; }
    RUST_LOG=garage=warn "$GARAGE" -c "$WORK/garage.toml" server >"$WORK/garage.log" 2>&1 &
    GARAGE_PID=$!
    track_pid "$GARAGE_PID"
    garage_up() { g status >/dev/null 2>&1; }
    wait_until 60 "garage to answer" garage_up || die "garage did not start: $(tail -5 "$WORK/garage.log")"
    g layout assign -z dc1 -c 10G "$(g node id -q | cut -d@ -f1)" >/dev/null
    g layout apply --version 1 >/dev/null
    g bucket create "$BUCKET" >/dev/null
    KEY=$(g key create kw-cluster)
    AWS_ACCESS_KEY_ID=$(sed -n 's/^[[:space:]]*Key ID:[[:space:]]*//p' <<<"$KEY")
    AWS_SECRET_ACCESS_KEY=$(sed -n 's/^[[:space:]]*Secret key:[[:space:]]*//p' <<<"$KEY")
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    [[ -n $AWS_ACCESS_KEY_ID && -n $AWS_SECRET_ACCESS_KEY ]] || die "cannot read the key from \`garage key create\`: $KEY"
    g bucket allow --read --write --owner "$BUCKET" --key kw-cluster >/dev/null
    wait_until 30 "garage's S3 port" port_in_use "$S3" || die "garage does not serve S3"
    metrics() { curl -sf -H "Authorization: Bearer $METRICS_TOKEN" "http://127.0.0.1:$ADMIN/metrics"; }
    HAVE_METRICS=1
    metrics >"$WORK/metrics.probe" 2>/dev/null && grep -q '^api_s3_request_counter\|^# HELP' "$WORK/metrics.probe" || HAVE_METRICS=0
    log "garage $("$GARAGE" --version 2>/dev/null | head -1) on 127.0.0.1:$S3; metrics: $([[ $HAVE_METRICS == 1 ]] && echo yes || echo no)"
fi

# ==== the database =============================================================================
if [[ -n $(psql "$PG_SERVER" -qAtc "select 1 from pg_database where datname = '$PG_NAME'") ]]; then
    die "the database $PG_NAME exists already (a run that was killed?): psql $PG_SERVER -c 'DROP DATABASE $PG_NAME', or set KW_CLUSTER_PG_NAME"
fi
psql "$PG_SERVER" -qc "CREATE DATABASE $PG_NAME" >/dev/null
PG_CREATED=1
DB_URL=${PG_SERVER%/*}/$PG_NAME
POSTMASTER=$(head -1 "$(psql "$PG_SERVER" -qAtc 'show data_directory')/postmaster.pid" 2>/dev/null || true)
[[ -n $POSTMASTER ]] && alive "$POSTMASTER" || die "cannot find the PostgreSQL server's process (postmaster.pid)"

# ==== the nodes ================================================================================
NAMES=()
LETTERS=abcdefghijklmnopqrstuvwxyz
for ((i = 0; i < NODES; i++)); do NAMES+=("kw-${LETTERS:i:1}"); done
first=$WORK/${NAMES[0]}
KEEPWATCH_DATA_DIR=$first "$KW" init --database "$DB_URL" >"$WORK/init.out" 2>&1 ||
    die "keepwatch init failed: $(cat "$WORK/init.out")"
toml=$first/keepwatch.toml
if [[ $ARCHIVE == s3 ]]; then
    sed -i -e "s|^recordings = \"\"|recordings = \"s3://$BUCKET/$PREFIX\"|" \
        -e "s|^endpoint = \"\"|endpoint = \"http://127.0.0.1:$S3\"|" \
        -e 's|^region = ""|region = "garage"|' -e 's|^allow_http = false|allow_http = true|' "$toml"
    grep -q "^recordings = \"s3://$BUCKET/$PREFIX\"" "$toml" || die "cannot configure $toml"
fi
grep -q '^id = ""' "$toml" && grep -q "^database = \"$DB_URL\"" "$toml" || die "cannot configure $toml"
export KEEPWATCH_DATA_DIR=$first
"$KW" user add alice --role user --ssh-key "$WORK/client_key.pub" >/dev/null
echo "$TARGET_PW" | "$KW" target add web01 --host 127.0.0.1 --port "$SSHD_PORT" --login "$TARGET_USER" \
    --password-stdin --host-key "$(cut -d' ' -f1,2 "$WORK/sshd_host_key.pub")" >/dev/null
"$KW" grant alice web01 >/dev/null
# The other nodes: the same keepwatch.toml and keys, a data directory and a name of their own.
for name in "${NAMES[@]:1}"; do
    mkdir -m 700 "$WORK/$name"
    for f in keepwatch.toml signing.key signing.pub vault.key ssh_host_ed25519_key; do
        cp -p "$first/$f" "$WORK/$name/$f"
    done
done
declare -A PID PORT
for name in "${NAMES[@]}"; do
    sed -i "s|^id = \"\"|id = \"$name\"|" "$WORK/$name/keepwatch.toml"
    KEEPWATCH_DATA_DIR=$WORK/$name "$KW" run --ssh-listen 127.0.0.1:0 --web-listen 127.0.0.1:0 \
        2>"$WORK/$name.log" &
    PID[$name]=$!
    track_pid "${PID[$name]}"
done
node_listening() { [[ -n $(sed -n 's/^keepwatch: SSH gateway listening on .*:\([0-9]*\)$/\1/p' "$WORK/$1.log") ]]; }
for name in "${NAMES[@]}"; do
    wait_until 60 "node $name to listen" node_listening "$name" || die "node $name did not start: $(tail -5 "$WORK/$name.log")"
    PORT[$name]=$(sed -n 's/^keepwatch: SSH gateway listening on .*:\([0-9]*\)$/\1/p' "$WORK/$name.log")
done
NODES_SEEN=$("$KW" nodes --json | grep -o '"node"' | wc -l)
((NODES_SEEN == NODES)) || die "keepwatch nodes lists $NODES_SEEN nodes, not $NODES"
log "nodes: $(for n in "${NAMES[@]}"; do printf '%s pid %s :%s; ' "$n" "${PID[$n]}" "${PORT[$n]}"; done)sshd :$SSHD_PORT"

# ==== sampling =================================================================================
# Every sample is one line `LABEL t=EPOCH k=v ...` in $WORK/samples: CPU seconds of each node,
# of PostgreSQL (the postmaster's whole tree, exited backends included through its children's
# times; and the backends of this database alone), of Garage, of the sshd (the target side:
# sessions and producers) and of the clients; the machine's busy and total CPU seconds; the
# database's transaction and row counters; Garage's S3 request counters.
cat >"$WORK/cpu.py" <<'EOF'
import os, sys
tick = os.sysconf("SC_CLK_TCK")
procs, cmd = {}, {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        r = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    # After the name: state, ppid, ... utime (14), stime (15), cutime (16), cstime (17).
    procs[int(d)] = (int(r[1]), int(r[11]) + int(r[12]), int(r[13]) + int(r[14]))
kids = {}
for p, (pp, _, _) in procs.items():
    kids.setdefault(pp, []).append(p)
def tree(root):
    # A live process's own time plus its waited-for children's: every process of the tree
    # that ever ran, once (those reaped are in their parent's cutime/cstime).
    total, stack = 0, [root]
    while stack:
        p = stack.pop()
        if p in procs:
            total += procs[p][1] + procs[p][2]
        stack += kids.get(p, [])
    return total / tick
out = []
for arg in sys.argv[1:]:
    name, spec = arg.split("=", 1)
    if name.startswith("pgdb"):
        root, db = spec.split(":")
        total = 0
        for p in kids.get(int(root), []):
            try:
                c = open(f"/proc/{p}/cmdline").read()
            except OSError:
                continue
            if f" {db} " in c:
                total += procs[p][1]
        out.append(f"{name}={total / tick:.2f}")
    else:
        out.append(f"{name}={sum(tree(int(p)) for p in spec.split(',') if p):.2f}")
f = open("/proc/stat").readline().split()[1:9]
v = [int(x) for x in f]
out.append(f"machine_busy={(sum(v) - v[3] - v[4]) / tick:.2f} machine_total={sum(v) / tick:.2f}")
print(" ".join(out))
EOF
CLIENT_PIDS=()
sample() {
    local label=$1 procs=() n pg s3="" c
    for n in "${NAMES[@]}"; do procs+=("$n=${PID[$n]}"); done
    procs+=("postgres=$POSTMASTER" "pgdb=$POSTMASTER:$PG_NAME" "garage=${GARAGE_PID:-}" "sshd=$SSHD_PID"
        "clients=$(
            IFS=,
            echo "${CLIENT_PIDS[*]:-}"
        )")
    pg=$(psql "$PG_SERVER" -qAt -F' ' -c "select 'xact=' || (xact_commit + xact_rollback), 'ins=' || tup_inserted, 'upd=' || tup_updated, 'del=' || tup_deleted from pg_stat_database where datname = '$PG_NAME'" | tr '\n' ' ')
    if [[ $HAVE_METRICS == 1 ]]; then
        # Garage counts every S3 call by endpoint: api_s3_request_counter{api_endpoint="PutObject"} N
        s3=$(metrics | awk '/^api_s3_request_counter/ { n += $NF; match($0, /api_endpoint="[^"]*"/); e = substr($0, RSTART + 14, RLENGTH - 15); by[e] += $NF }
            END { printf "s3_requests=%d", n; for (e in by) printf " s3_%s=%d", e, by[e] }')
    fi
    echo "$label t=$(date +%s.%N) $(python3 "$WORK/cpu.py" "${procs[@]}") $pg $s3" >>"$WORK/samples"
}
# value LABEL KEY: a key's value in a sample (0 when it has none).
value() { awk -v l="$1" -v k="$2" '$1 == l { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) { print kv[2]; found = 1 } } } END { if (!found) print 0 }' "$WORK/samples" | tail -1; }
delta() { awk -v a="$(value "$2" "$1")" -v b="$(value "$3" "$1")" 'BEGIN { printf "%.2f", b - a }'; }

# ==== the run ==================================================================================
sample start
declare -A LOAD_PID
per=$((SESSIONS / NODES))
extra=$((SESSIONS % NODES))
declare -A COUNT
for ((i = 0; i < NODES; i++)); do
    name=${NAMES[$i]}
    COUNT[$name]=$((per + (i < extra ? 1 : 0)))
    # In a subshell whose `times` gives the client's CPU once it has exited.
    (
        "$KWB" drill-load --key "$WORK/client_key" --endpoint "alice@web01@127.0.0.1:${PORT[$name]}" \
            --sessions "${COUNT[$name]}" --tag-prefix "$name" --report "$WORK/$name.tsv" \
            --lines-per-tick "$LINES_PER_TICK" --tick-ms "$TICK_MS" --pad "$PAD" \
            --duration-s "$SECS" --deadline-s $((SECS + 600)) \
            --gateway-pid "${PID[$name]}" --sample-secs 5 --samples "$WORK/$name.rss.tsv" \
            >"$WORK/$name.load.out" 2>"$WORK/$name.load.err" &
        echo $! >"$WORK/$name.load.pid"
        rc=0
        wait $! || rc=$?
        times >"$WORK/$name.load.times"
        exit $rc
    ) &
    LOAD_PID[$name]=$!
    track_pid "${LOAD_PID[$name]}"
    wait_until 10 "the client's pid" test -s "$WORK/$name.load.pid"
    CLIENT_PIDS+=("$(cat "$WORK/$name.load.pid")")
    track_pid "${CLIENT_PIDS[-1]}"
done
log "$SESSIONS sessions (${COUNT[*]} per node), ${LINES_PER_TICK} lines of ~$((PAD + 40)) bytes every ${TICK_MS} ms each, for ${SECS}s"
all_ready() {
    local n
    for n in "${NAMES[@]}"; do grep -q '^ready' "$WORK/$n.load.out" || return 1; done
}
wait_until 900 "every session producing" all_ready || die "the sessions did not start: $(tail -3 "$WORK"/*.load.err)"
sample ready
READY_S=$(awk -v a="$(value start t)" -v b="$(value ready t)" 'BEGIN { printf "%.1f", b - a }')
log "all producing after ${READY_S}s: $(for n in "${NAMES[@]}"; do grep '^ready' "$WORK/$n.load.out" | tr '\n' ';'; done)"
# The steady state: from the moment every session produces until just before the first
# producer (started after the first sample) ends, every client and session alive.
steady_end=$(awk -v t="$(value start t)" -v s="$SECS" 'BEGIN { printf "%.0f", t + s - 3 }')
left=$((steady_end - $(date +%s)))
((left >= 20)) || die "setting up took ${READY_S}s of the ${SECS}s each session produces: raise KW_CLUSTER_SECS"
nap $((left / 2))
top -b -n 1 -w 200 2>/dev/null | head -30 >"$WORK/top.mid" || true
nap $((steady_end - $(date +%s)))
sample steady
clients_done() {
    local n
    for n in "${NAMES[@]}"; do alive "${LOAD_PID[$n]}" && return 1; done
    return 0
}
wait_until $((SECS + 900)) "the sessions to end" clients_done || die "drill-load did not finish"
sample ended
CLIENTS_CPU=0
for n in "${NAMES[@]}"; do
    wait "${LOAD_PID[$n]}" || die "drill-load against $n failed: $(tail -3 "$WORK/$n.load.err")"
    # `times`: the subshell's own line, then its children's: 0m12.340s 0m1.230s
    CLIENTS_CPU=$(sed -n 2p "$WORK/$n.load.times" | awk -v a="$CLIENTS_CPU" '{ for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); a += p[1] * 60 + p[2] } } END { printf "%.2f", a }')
done
# Every session sealed (closed), uploaded, verified against the bucket and out of the spools.
sealed() {
    [[ $("$KW" sessions --active --json 2>/dev/null | grep -o '"id"' | wc -l) == 0 ]] || return 1
    [[ -z $(ls "$WORK"/kw-*/spool/*.kwr 2>/dev/null) ]]
}
wait_until 600 "every session sealed and archived" sealed || log "not every session was sealed and archived within 600 s"
sample sealed
SEAL_S=$(awk -v a="$(value ended t)" -v b="$(value sealed t)" 'BEGIN { printf "%.1f", b - a }')
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ==== the checks ===============================================================================
declare -A CHECK
checks_ok=1
for n in "${NAMES[@]}"; do
    bucket=()
    [[ $ARCHIVE == s3 ]] && bucket=(--recordings "s3://$BUCKET/$PREFIX" --s3-endpoint "http://127.0.0.1:$S3"
        --s3-region garage --s3-allow-http)
    CHECK[$n]=$("$KWB" drill-check --data-dir "$WORK/$n" --database "$DB_URL" --node "$n" "${bucket[@]}" \
        --report "$WORK/$n.tsv" --status closed --exact --out "$WORK/$n.check.tsv" 2>&1) ||
        checks_ok=0
    printf '%s\n' "${CHECK[$n]}" | sed "s/^/$n: /" >&2
done
t0=$(date +%s.%N)
VERIFY_OK=1
if [[ $ARCHIVE == s3 ]]; then
    # Any node reads every recording from the bucket: one verify --all over the database.
    VERIFY_WHAT="verify --all"
    timeout -k 5 900 "$KW" verify --all >"$WORK/verify.out" 2>&1 || VERIFY_OK=0
else
    # Without a bucket a node holds only its own recordings: each node verifies its sessions.
    VERIFY_WHAT="verify of each node's sessions from its own data directory"
    : >"$WORK/verify.out"
    for n in "${NAMES[@]}"; do
        mapfile -t ids < <(awk -F'\t' 'NR > 1 && $2 != "-" { print $2 }' "$WORK/$n.check.tsv" 2>/dev/null)
        ((${#ids[@]})) || continue
        KEEPWATCH_DATA_DIR=$WORK/$n timeout -k 5 900 "$KW" verify "${ids[@]}" >>"$WORK/verify.out" 2>&1 || VERIFY_OK=0
    done
fi
VERIFY_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
VERIFY_LINE=$(tail -1 "$WORK/verify.out" | cut -c1-200)
OBJECTS="n/a (no bucket)"
if [[ $ARCHIVE == s3 ]]; then
    g bucket info "$BUCKET" >"$WORK/bucket.info" 2>&1 || true
    OBJECTS=$(sed -n 's/^[[:space:]]*Objects:[[:space:]]*//p' "$WORK/bucket.info" | head -1)
    OBJECTS=${OBJECTS:-?}
fi
INDEXED=$(psql "$DB_URL" -qAtc "select count(*) from commands" 2>/dev/null || echo '?')
SESSION_ROWS=$(psql "$DB_URL" -qAtc "select count(*) from sessions" 2>/dev/null || echo '?')

# ==== the report ===============================================================================
W_ALL=$(awk -v a="$(value start t)" -v b="$(value sealed t)" 'BEGIN { printf "%.1f", b - a }')
W_STEADY=$(awk -v a="$(value ready t)" -v b="$(value steady t)" 'BEGIN { printf "%.1f", b - a }')
GIB=$((1024 * 1024 * 1024))
rows=""
tot_sessions=0 tot_exit=0 tot_bytes=0 tot_rec=0 tot_exact=0 tot_cpu=0 tot_steady=0
verdict=pass why=()
for n in "${NAMES[@]}"; do
    load=$(grep '^load sessions' "$WORK/$n.load.out")
    gw=$(grep '^gateway ' "$WORK/$n.load.out" || true)
    c1=$(grep '^check sessions' <<<"${CHECK[$n]}" || true)
    exit_n=$(field "$load" exit) bytes=$(field "$load" bytes)
    rec=$(awk -F'\t' 'NR > 1 && $6 ~ /^[0-9]+$/ { s += $6 } END { print s + 0 }' "$WORK/$n.check.tsv" 2>/dev/null || echo 0)
    exact=$(field "$c1" exact)
    cpu=$(delta "$n" start sealed) steady=$(delta "$n" ready steady)
    per_gib=$(awk -v c="$cpu" -v b="$bytes" -v g=$GIB 'BEGIN { if (b > 0) printf "%.0f", c / (b / g); else print "n/a" }')
    pct=$(awk -v c="$steady" -v w="$W_STEADY" 'BEGIN { printf "%.0f", 100 * c / w }')
    per_sess=$(awk -v c="$steady" -v w="$W_STEADY" -v s="${COUNT[$n]}" 'BEGIN { printf "%.2f", 1000 * c / w / s }')
    rows+="| $n | ${COUNT[$n]} | $exit_n | $bytes | $rec | ${exact:-?} of ${COUNT[$n]} | $cpu | $pct% | $per_sess | $per_gib | $(field "$gw" rss_max_with_sessions_kib) |"$'\n'
    tot_sessions=$((tot_sessions + COUNT[$n])) tot_exit=$((tot_exit + exit_n))
    tot_bytes=$((tot_bytes + bytes)) tot_rec=$((tot_rec + rec)) tot_exact=$((tot_exact + ${exact:-0}))
    tot_cpu=$(awk -v a="$tot_cpu" -v b="$cpu" 'BEGIN { print a + b }')
    tot_steady=$(awk -v a="$tot_steady" -v b="$steady" 'BEGIN { print a + b }')
    [[ $exit_n == "${COUNT[$n]}" ]] || why+=("$n: $exit_n of ${COUNT[$n]} sessions ran to their end")
    [[ $(field "$(grep '^check verdict' <<<"${CHECK[$n]}" || true)" verdict) == pass ]] ||
        why+=("$n: $(grep '^check problem' <<<"${CHECK[$n]}" | head -2 | cut -c16- | tr '\n' ' ')")
done
((checks_ok)) || why+=("drill-check could not run on every node")
[[ $VERIFY_OK == 1 ]] || why+=("$VERIFY_WHAT: $VERIFY_LINE")
((${#why[@]} == 0)) || verdict="**FAIL**: $(
    IFS=';'
    echo "${why[*]}"
)"
tot_per_gib=$(awk -v c="$tot_cpu" -v b="$tot_bytes" -v g=$GIB 'BEGIN { if (b > 0) printf "%.0f", c / (b / g); else print "n/a" }')
tot_pct=$(awk -v c="$tot_steady" -v w="$W_STEADY" 'BEGIN { printf "%.0f", 100 * c / w }')
tot_per_sess=$(awk -v c="$tot_steady" -v w="$W_STEADY" -v s="$tot_sessions" 'BEGIN { printf "%.2f", 1000 * c / w / s }')
rate() { awk -v d="$(delta "$1" "$2" "$3")" -v a="$(value "$2" t)" -v b="$(value "$3" t)" 'BEGIN { printf "%.1f", d / (b - a) }'; }
pct_of() { awk -v d="$(delta "$1" "$2" "$3")" -v a="$(value "$2" t)" -v b="$(value "$3" t)" 'BEGIN { printf "%.0f", 100 * d / (b - a) }'; }
s3_kinds=$(awk '$1 == "sealed" { for (i = 2; i <= NF; i++) if ($i ~ /^s3_[A-Z]/) { split($i, kv, "="); print substr(kv[1], 4) } }' "$WORK/samples" | sort -u)
s3_detail=""
for k in $s3_kinds; do s3_detail+="$k $(delta "s3_$k" start sealed), "; done
machine_pct=$(awk -v b="$(delta machine_busy ready steady)" -v t="$(delta machine_total ready steady)" 'BEGIN { if (t > 0) printf "%.0f", 100 * b / t }')
ELAPSED=$(($(date +%s) - START_TS))
{
    echo "### Keepwatch, $NODES nodes, $SESSIONS sessions — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPU $(lscpu | sed -n 's/^Model name: *//p' | head -1), commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo
    echo "$SESSIONS sessions ($(
        IFS=/
        echo "${COUNT[*]}"
    ) per node), each an exec of the drills' producer: $LINES_PER_TICK lines of ~$((PAD + 40)) bytes every $TICK_MS ms for ${SECS}s; one PostgreSQL database, $([[ $ARCHIVE == s3 ]] && echo "one Garage bucket (s3://$BUCKET/$PREFIX)" || echo "no bucket (each node archives into its own data directory)"), default node configuration. All producing after ${READY_S}s; steady state (every session producing, until 3 s before the first producer could end) ${W_STEADY}s; whole run (first connection until every session was sealed and archived) ${W_ALL}s, of which ${SEAL_S}s after the last client ended."
    echo
    echo "| Node | Sessions | Ran to the end | Delivered bytes | Recorded bytes | Recorded = delivered | CPU s, whole run | CPU, steady | CPU ms/s per session, steady | CPU s per GiB relayed | RSS with sessions, KiB |"
    echo "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"
    printf '%s' "$rows"
    echo "| **total** | $tot_sessions | $tot_exit | $tot_bytes | $tot_rec | $tot_exact of $tot_sessions | $tot_cpu | $tot_pct% | $tot_per_sess | $tot_per_gib | |"
    echo
    echo "| Shared | Whole run | Steady state |"
    echo "|---|---:|---:|"
    echo "| PostgreSQL transactions/s ($PG_NAME: xact_commit + xact_rollback) | $(rate xact start sealed) | $(rate xact ready steady) |"
    echo "| PostgreSQL rows inserted/s, updated/s | $(rate ins start sealed), $(rate upd start sealed) | $(rate ins ready steady), $(rate upd ready steady) |"
    echo "| PostgreSQL CPU, all server processes (s; % of a core) | $(delta postgres start sealed) ($(pct_of postgres start sealed)%) | $(delta postgres ready steady) ($(pct_of postgres ready steady)%) |"
    echo "| of which the backends of $PG_NAME (s) | $(delta pgdb start sealed) | $(delta pgdb ready steady) |"
    if [[ $HAVE_METRICS == 1 ]]; then
        echo "| Bucket S3 requests/s (Garage /metrics, api_s3_request_counter) | $(rate s3_requests start sealed) | $(rate s3_requests ready steady) |"
    else
        echo "| Bucket S3 requests/s | not measured ($([[ $ARCHIVE == s3 ]] && echo "no Garage metrics" || echo "no bucket: KW_CLUSTER_ARCHIVE=local")) | not measured |"
    fi
    [[ $ARCHIVE == s3 ]] && echo "| Garage CPU (s; % of a core) | $(delta garage start sealed) ($(pct_of garage start sealed)%) | $(delta garage ready steady) ($(pct_of garage ready steady)%) |"
    # Not over the whole run: a session's processes that end are not all reaped inside sshd's
    # tree (their times leave it), so only the window in which every session lives is counted.
    echo "| Target sshd and producers CPU (s; % of a core) | n/a | $(delta sshd ready steady) ($(pct_of sshd ready steady)%) |"
    echo "| Clients (keepwatch-bench drill-load) CPU (s; % of a core) | $CLIENTS_CPU ($(awk -v c="$CLIENTS_CPU" -v w="$W_ALL" 'BEGIN { printf "%.0f", 100 * c / w }')%) | $(delta clients ready steady) ($(pct_of clients ready steady)%) |"
    echo "| Machine busy, every process ($(nproc) cores) | $(awk -v b="$(delta machine_busy start sealed)" -v t="$(delta machine_total start sealed)" 'BEGIN { if (t > 0) printf "%.0f%%", 100 * b / t }') | ${machine_pct}% |"
    echo
    echo "Bucket requests over the whole run, by endpoint: ${s3_detail:-none counted, }objects in the bucket at the end: $OBJECTS. PostgreSQL: $SESSION_ROWS session rows, $INDEXED command rows indexed. $VERIFY_WHAT: $([[ $VERIFY_OK == 1 ]] && echo "ok" || echo "FAILED") in ${VERIFY_S}s ($VERIFY_LINE)."
    echo
    for n in "${NAMES[@]}"; do
        echo "$n: $(grep '^ready' "$WORK/$n.load.out"); $(grep '^load rate_bps' "$WORK/$n.load.out" | cut -d' ' -f2-); $(grep '^check unrecorded' <<<"${CHECK[$n]}" | cut -d' ' -f2-)"
        echo
    done
    echo "Verdict: $verdict."
    echo
    echo "Load average (1/5/15 min) at start $LOAD_START, at the end of the sessions $LOAD_END; wall time ${ELAPSED}s."
} | tee "$WORK/report.md"
[[ -n ${KW_CLUSTER_OUT:-} ]] && cp "$WORK/report.md" "$KW_CLUSTER_OUT"
[[ -n ${KW_CLUSTER_OUT:-} ]] && cp "$WORK/samples" "$KW_CLUSTER_OUT.samples" && cp "$WORK/top.mid" "$KW_CLUSTER_OUT.top"
[[ $verdict == pass ]]
