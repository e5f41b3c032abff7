#!/usr/bin/env bash
# Keepwatch benchmark: throughput, keystroke latency and idle-session memory of the gateway,
# side by side with direct OpenSSH and OpenSSH ProxyJump to the same sshd. See bench/README.md.
#
# Needs root (it starts sshd and creates the local user `kwbench`); talks only to 127.0.0.1.
# Knobs (environment): KW_BENCH_REPS (3), KW_BENCH_SIZE_MIB (1024), KW_BENCH_KEYSTROKES (500),
# KW_BENCH_SESSIONS (200), KW_BENCH_TRANSFER_TIMEOUT (300 s per transfer),
# KW_BENCH_DEADLINE (3600 s for the whole run after the build), KW_BENCH_SKIP_BUILD=1,
# KW_BENCH_KEEP=1 (keep the work directory), KW_BENCH_OUT=FILE (also write the report there),
# KW_BENCH_INDEX=0 (run the gateway with the search indexer off, to measure what it costs),
# KW_BENCH_ENCRYPT=0 (record in clear, `[recording] encrypt = false`, to measure what
# encryption at rest costs),
# KW_BENCH_IDLE_SETTLE (35 s: how long idle sessions sit before the memory reading; the
# indexer's followers of quiet sessions give back their emulators after 5 s),
# CARGO_TARGET_DIR (where the release build goes; default ./target).
set -euo pipefail

REPS=${KW_BENCH_REPS:-3}
SIZE_MIB=${KW_BENCH_SIZE_MIB:-1024}
SIZE=$((SIZE_MIB * 1024 * 1024))
KEYSTROKES=${KW_BENCH_KEYSTROKES:-500}
SESSIONS=${KW_BENCH_SESSIONS:-200}
INDEX=${KW_BENCH_INDEX:-1}
ENCRYPT=${KW_BENCH_ENCRYPT:-1}
IDLE_SETTLE=${KW_BENCH_IDLE_SETTLE:-35}
XFER_TIMEOUT=${KW_BENCH_TRANSFER_TIMEOUT:-300}
DEADLINE=${KW_BENCH_DEADLINE:-3600}
BENCH_USER=kwbench

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
KW=$TARGET_DIR/release/keepwatch
KWB=$TARGET_DIR/release/keepwatch-bench

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root: it starts sshd on loopback and creates the user $BENCH_USER"

# --- tools -----------------------------------------------------------------------------------
need_pkgs=()
[[ -x /usr/sbin/sshd ]] || need_pkgs+=(openssh-server)
command -v ssh >/dev/null || need_pkgs+=(openssh-client)
command -v ssh-keygen >/dev/null || need_pkgs+=(openssh-client)
command -v timeout >/dev/null || need_pkgs+=(coreutils)
command -v useradd >/dev/null || need_pkgs+=(passwd)
command -v awk >/dev/null || need_pkgs+=(gawk)
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
command -v cargo >/dev/null || die "cargo is not on PATH"

if [[ ${KW_BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building keepwatch and keepwatch-bench (release) into $TARGET_DIR"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p keepwatch -p keepwatch-bench) \
        || die "the release build failed"
fi
[[ -x $KW && -x $KWB ]] || die "missing $KW or $KWB (build them, or unset KW_BENCH_SKIP_BUILD)"

# --- work directory, cleanup, deadline --------------------------------------------------------
WORK=$(mktemp -d /tmp/keepwatch-bench.XXXXXX)
chmod 755 "$WORK" # sshd reads authorized_keys and the download file as $BENCH_USER
PIDS_SSHD=()
KW_PID=
IDLE_PID=
WATCHDOG_PID=

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
    local rc=$? i
    trap - EXIT INT TERM
    set +e # clean up as much as possible, whatever fails
    if [[ -n $WATCHDOG_PID ]]; then
        local sleeper
        sleeper=$(pgrep -P "$WATCHDOG_PID" || true)
        kill "$WATCHDOG_PID" 2>/dev/null || true
        [[ -n $sleeper ]] && kill "$sleeper" 2>/dev/null || true
    fi
    stop_pid "$IDLE_PID" 5
    stop_pid "$KW_PID" 15
    local p
    for p in "${PIDS_SSHD[@]}"; do
        # The listener's children are the per-connection sshd processes it forked for us.
        pkill -TERM -P "$p" 2>/dev/null || true
        stop_pid "$p" 5
    done
    if [[ -n $CG ]]; then
        echo $$ >"$CG_BASE/cgroup.procs" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do # exiting processes leave their cgroup a moment later
            rmdir "$CG"/* 2>/dev/null
            rmdir "$CG" 2>/dev/null && break
            sleep 0.1
        done
        [[ ! -d $CG ]] || log "could not remove the cgroup $CG"
    fi
    if [[ ${KW_BENCH_KEEP:-0} == 1 ]]; then
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
    echo "bench: error: the run passed its ${DEADLINE}s deadline; stopping" >&2
    kill -TERM $$
) &
WATCHDOG_PID=$!

ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# CPU accounting: the OpenSSH clients (this script's children), the sshds and the gateway each
# run in their own cgroup, so CPU per GiB can be read per role however busy the machine is.
# Where no cgroup can be made, the CPU columns say n/a.
CG=
CG_BASE=
for base in /sys/fs/cgroup /sys/fs/cgroup/unified; do
    if [[ -f $base/cgroup.controllers && -w $base/cgroup.procs ]] && mkdir "$base/keepwatch-bench.$$" 2>/dev/null; then
        CG_BASE=$base
        CG=$base/keepwatch-bench.$$
        break
    fi
done
if [[ -n $CG ]] && ! { mkdir "$CG/client" "$CG/sshd" "$CG/gateway" && echo $$ >"$CG/client/cgroup.procs"; }; then
    rmdir "$CG"/* "$CG" 2>/dev/null || true
    CG=
fi
cg_join() { [[ -z $CG ]] || echo "$2" >"$CG/$1/cgroup.procs" 2>/dev/null || true; }
cg_usec() { [[ -z $CG ]] && echo 0 || awk '/^usage_usec/ { print $2 }' "$CG/$1/cpu.stat"; }
[[ -n $CG ]] || log "no cgroup v2 to account CPU in; the CPU columns will say n/a"
START_TS=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- keys, user, sshd ------------------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -C kw-bench-client -f "$WORK/client_key"
ssh-keygen -q -t ed25519 -N '' -C kw-bench-sshd -f "$WORK/sshd_host_key"
cp "$WORK/client_key.pub" "$WORK/authorized_keys"
chmod 644 "$WORK/authorized_keys"

if ! id "$BENCH_USER" >/dev/null 2>&1; then
    log "creating the local user $BENCH_USER"
    useradd -m -s /bin/bash "$BENCH_USER"
fi
USER_PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
echo "$BENCH_USER:$USER_PW" | chpasswd
mkdir -p /run/sshd
chmod 755 /run/sshd

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port seconds
    local i
    for ((i = 0; i < $2 * 20; i++)); do
        port_in_use "$1" && return 0
        sleep 0.05
    done
    return 1
}

# start_sshd NAME: starts a plain sshd on a free loopback port; sets SSHD_PORT.
start_sshd() {
    local name=$1 try port cfg pid
    for try in 1 2 3 4 5 6 7 8; do
        port=$((20000 + RANDOM % 30000))
        port_in_use "$port" && continue
        cfg=$WORK/sshd_$name.conf
        cat >"$cfg" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $WORK/sshd_host_key
PidFile $WORK/sshd_$name.pid
AuthorizedKeysFile $WORK/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
StrictModes no
AllowTcpForwarding yes
MaxStartups 400:30:500
MaxSessions 100
MaxAuthTries 10
LoginGraceTime 60
PrintMotd no
PrintLastLog no
LogLevel ERROR
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
EOF
        /usr/sbin/sshd -t -f "$cfg" || die "sshd rejects its config $cfg"
        /usr/sbin/sshd -D -f "$cfg" -E "$WORK/sshd_$name.log" &
        pid=$!
        if wait_port "$port" 10 && kill -0 "$pid" 2>/dev/null; then
            PIDS_SSHD+=("$pid")
            cg_join sshd "$pid" # its per-connection children are born in the same cgroup
            SSHD_PORT=$port
            return 0
        fi
        stop_pid "$pid" 2
    done
    die "could not start sshd ($name); see $WORK/sshd_$name.log"
}

start_sshd target
TARGET_PORT=$SSHD_PORT
start_sshd jump
JUMP_PORT=$SSHD_PORT
log "sshd target on 127.0.0.1:$TARGET_PORT, jump host on 127.0.0.1:$JUMP_PORT"

# One client config for every OpenSSH run; `-F` is handed on to the ProxyJump hop too.
cat >"$WORK/ssh_config" <<EOF
Host *
    IdentityFile $WORK/client_key
    IdentitiesOnly yes
    BatchMode yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
    ConnectTimeout 10
    ControlMaster no
    ControlPath none
    Compression no
EOF
SSH_CONFIG=$WORK/ssh_config

# --- gateway --------------------------------------------------------------------------------
export KEEPWATCH_DATA_DIR=$WORK/keepwatch
export KEEPWATCH_LOG=${KEEPWATCH_LOG:-warn}
"$KW" init >"$WORK/keepwatch-init.out" 2>&1 || die "keepwatch init failed: $(cat "$WORK/keepwatch-init.out")"
if [[ $INDEX == 0 ]]; then
    sed -i '/^\[index\]/,/^\[/ s/^enabled = true/enabled = false/' "$KEEPWATCH_DATA_DIR/keepwatch.toml"
    grep -q '^enabled = false' "$KEEPWATCH_DATA_DIR/keepwatch.toml" || die "cannot turn the indexer off"
fi
log "search indexer: $([[ $INDEX == 0 ]] && echo off || echo on)"
if [[ $ENCRYPT == 0 ]]; then
    sed -i 's/^encrypt = true/encrypt = false/' "$KEEPWATCH_DATA_DIR/keepwatch.toml"
    grep -q '^encrypt = false' "$KEEPWATCH_DATA_DIR/keepwatch.toml" || die "cannot turn encryption off"
fi
log "encryption at rest: $([[ $ENCRYPT == 0 ]] && echo off || echo on)"
"$KW" user add alice --role user --ssh-key "$WORK/client_key.pub" >/dev/null
echo "$USER_PW" | "$KW" target add web01 --host 127.0.0.1 --port "$TARGET_PORT" --login "$BENCH_USER" \
    --password-stdin --host-key "$(cut -d' ' -f1,2 "$WORK/sshd_host_key.pub")" >/dev/null
"$KW" grant alice web01 >/dev/null

# start_gateway: sets KW_PID and GW_PORT.
start_gateway() {
    local log=$WORK/keepwatch-run.$(date +%s%N).log i
    "$KW" run --ssh-listen 127.0.0.1:0 --web-listen 127.0.0.1:0 2>"$log" &
    KW_PID=$!
    cg_join gateway "$KW_PID"
    for ((i = 0; i < 300; i++)); do
        GW_PORT=$(sed -n 's/^keepwatch: SSH gateway listening on .*:\([0-9]*\)$/\1/p' "$log")
        [[ -n $GW_PORT ]] && return 0
        kill -0 "$KW_PID" 2>/dev/null || die "the gateway exited: $(cat "$log")"
        sleep 0.1
    done
    die "the gateway did not report its SSH address within 30s: $(cat "$log")"
}
start_gateway
log "gateway pid $KW_PID on 127.0.0.1:$GW_PORT"

# Every path runs `$@` as the same OpenSSH client, to the same sshd and account.
ssh_to() { # mode command...
    local mode=$1
    shift
    case $mode in
    direct) ssh -F "$SSH_CONFIG" -p "$TARGET_PORT" "$BENCH_USER@127.0.0.1" "$@" ;;
    jump) ssh -F "$SSH_CONFIG" -J "$BENCH_USER@127.0.0.1:$JUMP_PORT" -p "$TARGET_PORT" "$BENCH_USER@127.0.0.1" "$@" ;;
    gateway) ssh -F "$SSH_CONFIG" -p "$GW_PORT" "alice@web01@127.0.0.1" "$@" ;;
    esac
}
# The same for the OpenSSH sftp client in batch mode: `sftp_to MODE 'get a b'`.
sftp_to() { # mode batch-command
    local mode=$1
    case $mode in
    direct) echo "$2" | sftp -F "$SSH_CONFIG" -b - -P "$TARGET_PORT" "$BENCH_USER@127.0.0.1" ;;
    jump) echo "$2" | sftp -F "$SSH_CONFIG" -b - -J "$BENCH_USER@127.0.0.1:$JUMP_PORT" -P "$TARGET_PORT" "$BENCH_USER@127.0.0.1" ;;
    gateway) echo "$2" | sftp -F "$SSH_CONFIG" -b - -P "$GW_PORT" "alice@web01@127.0.0.1" ;;
    esac
}
# Exported so `timeout ... bash -c` can bound a whole pipeline around it.
export -f ssh_to sftp_to
export SSH_CONFIG TARGET_PORT JUMP_PORT GW_PORT BENCH_USER

MODES=(direct jump gateway)
for m in "${MODES[@]}"; do
    out=$(timeout 30 bash -c "ssh_to $m 'echo kw-ok-\$((40+2))'" 2>&1) \
        || die "smoke test over $m failed: $out"
    [[ $out == kw-ok-42 ]] || die "smoke test over $m printed: $out"
    cipher=$(timeout 30 bash -c "ssh_to $m -v true" 2>&1 |
        sed -n 's/.*kex: server->client cipher: \([^ ]*\).*/\1/p' | tail -1)
    echo "$m ${cipher:-?}" >>"$WORK/ciphers"
done
log "smoke test passed over ${MODES[*]}"

# --- 1. throughput ---------------------------------------------------------------------------
log "writing ${SIZE_MIB} MiB of random data"
head -c "$SIZE" /dev/urandom >"$WORK/random.bin"
chmod 644 "$WORK/random.bin"
# Where SFTP uploads land (the target account writes there) and downloads arrive.
mkdir -p "$WORK/remote"
chown "$BENCH_USER" "$WORK/remote"

# The remote command for each variant, and where the data comes from for uploads.
declare -A REMOTE=(
    [down-zero]="head -c $SIZE /dev/zero"
    [down-rand]="cat $WORK/random.bin"
    [up-rand]="wc -c"
    [up-zero]="wc -c"
)
VARIANTS=(down-zero down-rand up-rand up-zero sftp-get sftp-put)
# Gateway ÷ direct targets: 0.7 for the shell-channel relay, 0.6 for SFTP with hashing.
declare -A TARGET=([sftp-get]=0.6 [sftp-put]=0.6)
RESULTS=$WORK/throughput.tsv
: >"$RESULTS"
FAILURES=()

# transfer VARIANT MODE REP: one timed transfer; appends "variant mode rep MB/s status".
transfer() {
    local variant=$1 mode=$2 rep=$3 t0 t1 rc=0 got mbps status=ok
    local script="set -o pipefail; "
    case $variant in
    down-*) script+="ssh_to $mode '${REMOTE[$variant]}' | wc -c" ;;
    up-rand) script+="ssh_to $mode '${REMOTE[$variant]}' <'$WORK/random.bin'" ;;
    up-zero) script+="head -c $SIZE /dev/zero | ssh_to $mode '${REMOTE[$variant]}'" ;;
    sftp-get) script+="rm -f '$WORK/got.bin'; sftp_to $mode 'get $WORK/random.bin $WORK/got.bin' >/dev/null && stat -c %s '$WORK/got.bin'" ;;
    sftp-put) script+="sftp_to $mode 'put $WORK/random.bin $WORK/remote/put.bin' >/dev/null && stat -c %s '$WORK/remote/put.bin'" ;;
    esac
    local c0 s0 g0
    c0=$(cg_usec client) s0=$(cg_usec sshd) g0=$(cg_usec gateway)
    t0=$(date +%s%N)
    got=$(timeout -k 5 "$XFER_TIMEOUT" bash -c "$script" </dev/null 2>"$WORK/xfer.err") || rc=$?
    t1=$(date +%s%N)
    sleep 0.2 # the sshd session processes finish their exit after the client's
    # CPU seconds per GiB moved, per role.
    local cpu
    cpu=$(awk -v c=$(($(cg_usec client) - c0)) -v s=$(($(cg_usec sshd) - s0)) -v g=$(($(cg_usec gateway) - g0)) \
        -v size="$SIZE" -v have="${CG:+1}" 'BEGIN {
            if (!have) { print "NaN\tNaN\tNaN"; exit }
            k = 1073741824 / size / 1e6; printf "%.2f\t%.2f\t%.2f", c * k, s * k, g * k }')
    got=${got//[^0-9]/}
    if ((rc == 124 || rc == 137)); then
        status="HANG(>${XFER_TIMEOUT}s)"
    elif ((rc != 0)); then
        status="EXIT$rc:$(tr '\n' ' ' <"$WORK/xfer.err" | cut -c1-120)"
    elif [[ $got != "$SIZE" ]]; then
        status="SHORT(${got:-0}B)"
    fi
    mbps=$(awk -v b="$SIZE" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", b / (ns / 1e9) / 1e6 }')
    [[ $status == ok ]] || {
        FAILURES+=("$variant $mode rep $rep: $status")
        mbps=NaN
    }
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$variant" "$mode" "$rep" "$mbps" "$status" "$cpu" >>"$RESULTS"
    log "$(printf '%-9s %-7s rep %s: %8s MB/s  %s' "$variant" "$mode" "$rep" "$mbps" "$status")"
}

for ((rep = 1; rep <= REPS; rep++)); do
    # Rotate the order each repetition so no path always runs first (or right after another).
    order=("${MODES[@]:$(((rep - 1) % 3))}" "${MODES[@]:0:$(((rep - 1) % 3))}")
    for variant in "${VARIANTS[@]}"; do
        for mode in "${order[@]}"; do
            transfer "$variant" "$mode" "$rep"
        done
    done
done
rm -f "$WORK/random.bin" "$WORK/got.bin" "$WORK/remote/put.bin"

median() { # numbers on stdin; NaN when none
    sort -g | awk '$1 != "NaN" { v[n++] = $1 } END {
        if (n == 0) { print "NaN"; exit }
        if (n % 2) print v[(n - 1) / 2]; else printf "%.1f\n", (v[n / 2 - 1] + v[n / 2]) / 2 }'
}
tput_median() { awk -F'\t' -v v="$1" -v m="$2" '$1 == v && $2 == m { print $4 }' "$RESULTS" | median; }
col_median() { awk -F'\t' -v v="$1" -v m="$2" -v c="$3" '$1 == v && $2 == m && $5 == "ok" { print $c }' "$RESULTS" | median; }
tput_all() { awk -F'\t' -v v="$1" -v m="$2" '$1 == v && $2 == m { printf "%s%s", s, $4; s = ", " }' "$RESULTS"; }

# --- 2. keystroke latency --------------------------------------------------------------------
log "timing $KEYSTROKES keystrokes per path (interleaved)"
LAT_OUT=$WORK/latency.out
if ! timeout -k 5 600 "$KWB" latency --key "$WORK/client_key" --count "$KEYSTROKES" \
    --endpoint "direct=$BENCH_USER@127.0.0.1:$TARGET_PORT" \
    --endpoint "jump=$BENCH_USER@127.0.0.1:$TARGET_PORT,via=$BENCH_USER@127.0.0.1:$JUMP_PORT" \
    --endpoint "gateway=alice@web01@127.0.0.1:$GW_PORT" >"$LAT_OUT" 2>"$WORK/latency.err"; then
    FAILURES+=("latency: $(tr '\n' ' ' <"$WORK/latency.err")")
fi
cat "$LAT_OUT" >&2
lat() { sed -n "s/^latency $1 .* $2=\([0-9]*\).*/\1/p" "$LAT_OUT"; }

# --- 3. memory per idle recorded session -----------------------------------------------------
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

log "restarting the gateway for the memory measurement"
stop_pid "$KW_PID" 15
start_gateway
# One session first, so one-time setup (worker threads, database pool, allocator arenas)
# is not charged to the measured sessions.
timeout 30 bash -c "ssh_to gateway true" \
    || FAILURES+=("memory: warm-up session failed")
sleep 2
RSS_BEFORE=$(rss_kib "$KW_PID")
# idle_round N: opens N idle sessions, reads the gateway's RSS once they are all up (sets
# ROUND_RSS, empty on failure), closes them, waits for the client to exit.
idle_round() {
    local n=$1 fifo=$WORK/idle.in.$1.$RANDOM i
    ROUND_RSS=
    mkfifo "$fifo"
    "$KWB" idle --key "$WORK/client_key" --endpoint "alice@web01@127.0.0.1:$GW_PORT" --count "$n" \
        --hold-secs 600 <"$fifo" >"$WORK/idle.out" 2>"$WORK/idle.err" &
    IDLE_PID=$!
    exec 9>"$fifo" # the client holds the sessions until this closes
    for ((i = 0; i < 3000; i++)); do # 300 s to open them all
        if grep -q '^ready' "$WORK/idle.out"; then
            sleep "$IDLE_SETTLE" # idle means settled: flushed, and the indexer's followers asleep
            ROUND_RSS=$(rss_kib "$KW_PID")
            break
        fi
        kill -0 "$IDLE_PID" 2>/dev/null || break
        sleep 0.1
    done
    exec 9>&-
    if [[ -z $ROUND_RSS ]]; then
        FAILURES+=("memory: sessions not established: $(tr '\n' ' ' <"$WORK/idle.err" | cut -c1-300)")
        stop_pid "$IDLE_PID" 5
    else
        cat "$WORK/idle.out" >&2
        IDLE_READY=$(grep '^ready' "$WORK/idle.out")
    fi
    wait "$IDLE_PID" 2>/dev/null || FAILURES+=("memory: idle client: $(tr '\n' ' ' <"$WORK/idle.err" | cut -c1-300)")
    IDLE_PID=
    rm -f "$fifo"
}

IDLE_READY="idle sessions: not established"
idle_round "$SESSIONS"
RSS_WITH=$ROUND_RSS
sleep 5
RSS_AFTER=$(rss_kib "$KW_PID")
# A second round shows whether memory is reused (flat) or keeps growing (leak or fragmentation).
idle_round "$SESSIONS"
RSS_WITH2=$ROUND_RSS
sleep 5
RSS_AFTER2=$(rss_kib "$KW_PID")
if [[ -n $RSS_WITH ]]; then
    PER_SESSION=$(awk -v a="$RSS_WITH" -v b="$RSS_BEFORE" -v n="$SESSIONS" 'BEGIN { printf "%.1f", (a - b) / n }')
else
    PER_SESSION=NaN
fi
log "gateway RSS: before $RSS_BEFORE KiB, with $SESSIONS sessions ${RSS_WITH:-?} KiB, after ${RSS_AFTER:-?} KiB"

# --- recordings still verify after the load ---------------------------------------------------
log "verifying every recording"
VERIFY_T0=$(date +%s)
if timeout -k 5 600 "$KW" verify --all >"$WORK/verify.out" 2>&1; then
    VERIFY="$(tail -1 "$WORK/verify.out") ($(($(date +%s) - VERIFY_T0))s)"
else
    VERIFY="FAILED ($(($(date +%s) - VERIFY_T0))s): $(tail -3 "$WORK/verify.out" | tr '\n' ' ' | cut -c1-300)"
    FAILURES+=("keepwatch verify --all: $VERIFY")
fi
RECORDINGS_MIB=$(du -sm "$KEEPWATCH_DATA_DIR" | cut -f1)

# --- report ----------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "NaN" || b == "NaN" || b == 0 || a == "" || b == "") print "—"; else printf "%.2f×", a / b }'; }
verdict() { # value op bound
    awk -v v="$1" -v op="$2" -v b="$3" 'BEGIN {
        if (v == "NaN" || v == "") { print "FAIL"; exit }
        ok = (op == ">=") ? v >= b : (op == "<") ? v < b : v <= b
        print ok ? "pass" : "**MISS**" }'
}
ELAPSED=$(($(date +%s) - START_TS))

{
    echo "### Keepwatch benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPU $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(ssh -V 2>&1 | cut -d, -f1)"
    echo
    echo "| Measurement | Direct OpenSSH | ProxyJump | Keepwatch gateway | Jump ÷ direct | Gateway ÷ direct | Target | Result |"
    echo "|---|---:|---:|---:|---:|---:|---|---|"
    declare -A LABEL=(
        [down-zero]="Download ${SIZE_MIB} MiB zeros, MB/s"
        [down-rand]="Download ${SIZE_MIB} MiB random, MB/s"
        [up-rand]="Upload ${SIZE_MIB} MiB random, MB/s"
        [up-zero]="Upload ${SIZE_MIB} MiB zeros, MB/s"
        [sftp-get]="SFTP get ${SIZE_MIB} MiB random, MB/s"
        [sftp-put]="SFTP put ${SIZE_MIB} MiB random, MB/s"
    )
    for variant in "${VARIANTS[@]}"; do
        d=$(tput_median "$variant" direct)
        j=$(tput_median "$variant" jump)
        g=$(tput_median "$variant" gateway)
        r=$(awk -v a="$g" -v b="$d" 'BEGIN { if (a == "NaN" || b == "NaN") print "NaN"; else print a / b }')
        want=${TARGET[$variant]:-0.7}
        echo "| ${LABEL[$variant]} (median of $REPS) | $d | $j | $g | $(ratio "$j" "$d") | $(ratio "$g" "$d") | ≥ ${want}× | $(verdict "$r" ">=" "$want") |"
    done
    d50=$(lat direct p50_us) j50=$(lat jump p50_us) g50=$(lat gateway p50_us)
    d99=$(lat direct p99_us) j99=$(lat jump p99_us) g99=$(lat gateway p99_us)
    echo "| Keystroke echo p50, µs ($KEYSTROKES keys) | ${d50:-NaN} | ${j50:-NaN} | ${g50:-NaN} | $(ratio "$j50" "$d50") | $(ratio "$g50" "$d50") | | |"
    added=NaN
    [[ -n $g99 && -n $d99 ]] && added=$((g99 - d99))
    echo "| Keystroke echo p99, µs ($KEYSTROKES keys) | ${d99:-NaN} | ${j99:-NaN} | ${g99:-NaN} | $(ratio "$j99" "$d99") | $(ratio "$g99" "$d99") | added < 1000 µs (added: $added µs) | $(verdict "$added" "<" 1000) |"
    echo "| Gateway RSS per idle recorded session, KiB ($SESSIONS sessions) | — | — | $PER_SESSION | | | ≤ 150 KiB | $(verdict "$PER_SESSION" "<=" 150) |"
    echo
    echo "CPU seconds per GiB moved (median of the completed runs), by role: what each path costs the machine, whatever else it was doing."
    echo
    echo "| Transfer | Path | MB/s | OpenSSH client(s) | sshd(s) | Gateway | Total |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    for variant in "${VARIANTS[@]}"; do
        for mode in direct jump gateway; do
            c=$(col_median "$variant" "$mode" 6) sd=$(col_median "$variant" "$mode" 7) g=$(col_median "$variant" "$mode" 8)
            total=$(awk -v a="$c" -v b="$sd" -v d="$g" 'BEGIN { if (a == "NaN" || b == "NaN" || d == "NaN") print "n/a"; else printf "%.2f", a + b + d }')
            [[ $mode == gateway ]] || g=—
            echo "| ${LABEL[$variant]%%, MB/s} | $mode | $(tput_median "$variant" "$mode") | ${c/NaN/n\/a} | ${sd/NaN/n\/a} | ${g/NaN/n\/a} | $total |"
        done
    done
    echo
    echo "Throughput runs (MB/s = 10^6 B/s, in run order within each path):"
    for variant in "${VARIANTS[@]}"; do
        echo "- $variant: direct $(tput_all "$variant" direct); jump $(tput_all "$variant" jump); gateway $(tput_all "$variant" gateway)"
    done
    echo "- ciphers negotiated by the OpenSSH client: $(tr '\n' ';' <"$WORK/ciphers" | sed 's/;$//; s/;/; /g') (gateway→sshd leg: the gateway's own choice)"
    echo "- gateway RSS, KiB: before $RSS_BEFORE; with $SESSIONS idle sessions ${RSS_WITH:-?}; 5 s after they closed ${RSS_AFTER:-?}; with $SESSIONS again ${RSS_WITH2:-?}; 5 s after those closed ${RSS_AFTER2:-?}"
    echo "- $IDLE_READY (last round)"
    echo "- keepwatch verify --all: $VERIFY; data directory ${RECORDINGS_MIB} MiB"
    echo "- load average (1/5/15 min) at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg); wall time after the build ${ELAPSED}s"
    if ((${#FAILURES[@]})); then
        echo
        echo "Failures:"
        printf -- '- %s\n' "${FAILURES[@]}"
    fi
} | tee "$WORK/report.md"
[[ -n ${KW_BENCH_OUT:-} ]] && cp "$WORK/report.md" "$KW_BENCH_OUT"
((${#FAILURES[@]} == 0))
