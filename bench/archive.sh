#!/usr/bin/env bash
# Keepwatch benchmark, archive mode: relay throughput of the gateway with recordings archived
# in S3 (a local single-node Garage) against recordings archived in the data directory, side
# by side in one run: a download of KW_BENCH_SIZE_MIB (256) MiB of random data through each
# gateway, KW_BENCH_REPS (3) times, interleaved; the median of each and their ratio, the time
# from the end of each S3 session until its recording is in the bucket and verified, and a
# `keepwatch verify --all` of both. See bench/README.md.
#
# Needs root (it starts sshd and creates the local user `kwbench`), and Garage (`cargo
# install --locked garage`); talks only to 127.0.0.1. KW_BENCH_SKIP_BUILD=1 reuses the
# release build; KW_BENCH_KEEP=1 keeps the work directory.
set -euo pipefail

REPS=${KW_BENCH_REPS:-3}
SIZE_MIB=${KW_BENCH_SIZE_MIB:-256}
SIZE=$((SIZE_MIB * 1024 * 1024))
BENCH_USER=kwbench
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
KW=$TARGET_DIR/release/keepwatch

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root: it starts sshd on loopback and creates the user $BENCH_USER"
GARAGE=$(command -v garage || echo "${CARGO_HOME:-$HOME/.cargo}/bin/garage")
[[ -x $GARAGE ]] || die "Garage is not installed: cargo install --locked garage"

if [[ ${KW_BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building keepwatch (release)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p keepwatch) || die "the release build failed"
fi

WORK=$(mktemp -d /tmp/keepwatch-bench-archive.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    local rc=$? p
    set +e
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    [[ ${KW_BENCH_KEEP:-0} == 1 ]] && log "kept $WORK" || rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { local i; for ((i = 0; i < 600; i++)); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# --- target sshd ----------------------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -f "$WORK/client_key"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/sshd_host_key"
cp "$WORK/client_key.pub" "$WORK/authorized_keys" && chmod 644 "$WORK/authorized_keys"
id "$BENCH_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$BENCH_USER"
USER_PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
echo "$BENCH_USER:$USER_PW" | chpasswd
mkdir -p /run/sshd
SSHD_PORT=$(free_port)
cat >"$WORK/sshd.conf" <<EOF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $WORK/sshd_host_key
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
PasswordAuthentication yes
UsePAM yes
StrictModes no
LogLevel ERROR
Subsystem sftp internal-sftp
EOF
/usr/sbin/sshd -D -f "$WORK/sshd.conf" -E "$WORK/sshd.log" &
PIDS+=($!)
wait_port "$SSHD_PORT" || die "sshd did not start"

# --- Garage ---------------------------------------------------------------------------------
RPC=$(free_port) S3=$(free_port) ADMIN=$(free_port)
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
EOF
g() { "$GARAGE" -c "$WORK/garage.toml" "$@"; }
RUST_LOG=garage=warn "$GARAGE" -c "$WORK/garage.toml" server >"$WORK/garage.log" 2>&1 &
PIDS+=($!)
for ((i = 0; i < 300; i++)); do g status >/dev/null 2>&1 && break; sleep 0.1; done
g layout assign -z dc1 -c 10G "$(g node id -q | cut -d@ -f1)" >/dev/null
g layout apply --version 1 >/dev/null
g bucket create kw-bench >/dev/null
KEY=$(g key create kw-bench)
export AWS_ACCESS_KEY_ID=$(sed -n 's/^ *Key ID: *//p' <<<"$KEY")
export AWS_SECRET_ACCESS_KEY=$(sed -n 's/^ *Secret key: *//p' <<<"$KEY")
g bucket allow --read --write --owner kw-bench --key kw-bench >/dev/null
wait_port "$S3" || die "garage did not serve S3"
log "garage on 127.0.0.1:$S3"

# --- two gateways ---------------------------------------------------------------------------
export KEEPWATCH_LOG=warn
declare -A GW
start_gateway() { # name: a data directory, alice, web01, and `keepwatch run`
    local name=$1 dir=$WORK/kw-$1 i port
    KEEPWATCH_DATA_DIR=$dir "$KW" init >/dev/null 2>&1
    if [[ $name == s3 ]]; then
        sed -i -e "s|^recordings = \"\"|recordings = \"s3://kw-bench/rec\"|" \
            -e "s|^endpoint = \"\"|endpoint = \"http://127.0.0.1:$S3\"|" \
            -e 's|^region = ""|region = "garage"|' -e 's|^allow_http = false|allow_http = true|' "$dir/keepwatch.toml"
        grep -q '^recordings = "s3://' "$dir/keepwatch.toml" || die "cannot configure the S3 archive"
    fi
    KEEPWATCH_DATA_DIR=$dir "$KW" user add alice --role user --ssh-key "$WORK/client_key.pub" >/dev/null
    echo "$USER_PW" | KEEPWATCH_DATA_DIR=$dir "$KW" target add web01 --host 127.0.0.1 --port "$SSHD_PORT" \
        --login "$BENCH_USER" --password-stdin --host-key "$(cut -d' ' -f1,2 "$WORK/sshd_host_key.pub")" >/dev/null
    KEEPWATCH_DATA_DIR=$dir "$KW" grant alice web01 >/dev/null
    KEEPWATCH_DATA_DIR=$dir "$KW" run --ssh-listen 127.0.0.1:0 --web-listen 127.0.0.1:0 2>"$WORK/run-$name.log" &
    PIDS+=($!)
    for ((i = 0; i < 300; i++)); do
        port=$(sed -n 's/^keepwatch: SSH gateway listening on .*:\([0-9]*\)$/\1/p' "$WORK/run-$name.log")
        [[ -n $port ]] && break
        sleep 0.1
    done
    [[ -n $port ]] || die "gateway $name did not start: $(cat "$WORK/run-$name.log")"
    GW[$name]=$port
}
start_gateway local
start_gateway s3
log "gateways: local archive on :${GW[local]}, S3 archive on :${GW[s3]}"

head -c "$SIZE" /dev/urandom >"$WORK/random.bin"
chmod 644 "$WORK/random.bin"
SSH_OPTS=(-i "$WORK/client_key" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)

# --- measure --------------------------------------------------------------------------------
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A RATES
ARCHIVE_SECS=()
for ((rep = 1; rep <= REPS; rep++)); do
    for name in local s3; do
        t0=$(date +%s.%N)
        got=$(ssh "${SSH_OPTS[@]}" -p "${GW[$name]}" alice@web01@127.0.0.1 "cat $WORK/random.bin" | wc -c)
        t1=$(date +%s.%N)
        [[ $got == "$SIZE" ]] || die "$name rep $rep: got $got of $SIZE bytes"
        rate=$(awk -v b="$SIZE" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.1f", b / (z - a) / 1e6 }')
        RATES[$name]+="$rate "
        log "rep $rep $name: $rate MB/s"
        if [[ $name == s3 ]]; then
            # Until the sealed recording is in the bucket, verified, and out of the spool.
            for ((i = 0; i < 6000; i++)); do
                [[ -z $(ls "$WORK/kw-s3/spool/"*.kwr 2>/dev/null) ]] && break
                sleep 0.05
            done
            t2=$(date +%s.%N)
            ARCHIVE_SECS+=("$(awk -v a="$t1" -v z="$t2" 'BEGIN { printf "%.1f", z - a }')")
        else
            sleep 1 # the local seal is a rename; let the gateway settle the same way
        fi
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
L=$(median "${RATES[local]}")
S=$(median "${RATES[s3]}")
for name in local s3; do
    KEEPWATCH_DATA_DIR=$WORK/kw-$name "$KW" verify --all >"$WORK/verify-$name.out" 2>&1 \
        || die "verify --all failed for the $name archive: $(cat "$WORK/verify-$name.out")"
done
SEGMENTS=$(g bucket info kw-bench 2>/dev/null | sed -n 's/^ *Objects: *//p' | head -1)

cat <<EOF

Relay throughput, recordings archived locally vs in S3 (Garage on the same host)
download of $SIZE_MIB MiB random data through the gateway, median of $REPS, interleaved
load average: $LOAD_START at the start, $LOAD_END at the end ($(nproc) cores)

| Archive | runs (MB/s) | median MB/s |
|---|---|---:|
| data directory (file://) | ${RATES[local]}| $L |
| S3, Garage (s3://) | ${RATES[s3]}| $S |
| S3 ÷ local | | $(awk -v s="$S" -v l="$L" 'BEGIN { printf "%.2f×", s / l }') |

S3 session end to recording archived and verified: ${ARCHIVE_SECS[*]} s; objects in the bucket: ${SEGMENTS:-?}
verify --all: both archives intact
EOF
