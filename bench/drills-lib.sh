# Sourced by bench/drills.sh (the harness and each drill it runs): the throwaway world the
# drills share — a loopback sshd as the target, the local user it logs in as, one key for
# every client — and the gateway's life cycle in a fresh data directory per drill. Follows
# bench/run.sh's setup. Every process and mount made here is written to $WORK/state so the
# harness can clean up after a drill it had to kill.

log() { printf 'drills: %s\n' "$*" >&2; }
die() {
    printf 'drills: error: %s\n' "$*" >&2
    exit 1
}

# Remembers a process or a mount for the harness's last-resort cleanup.
track_pid() { echo "pid $1" >>"$WORK/state"; }
track_mount() { echo "mount $1" >>"$WORK/state"; }

# alive PID: the process runs (an exited child not yet waited for does not count).
alive() {
    [[ -n $1 ]] && kill -0 "$1" 2>/dev/null || return 1
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $state != Z ]]
}
gone() { ! alive "$1"; }

# stop_pid PID [GRACE]: TERM, wait up to GRACE seconds, then KILL.
stop_pid() {
    local pid=$1 grace=${2:-5} i
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# A sleep that a signal interrupts (bash runs traps only between foreground commands).
nap() {
    sleep "$1" &
    wait $! 2>/dev/null || true
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s; fails with WHAT after SECONDS.
wait_until() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 5; i++)); do
        "$@" && return 0
        nap 0.2
    done
    log "timed out after ${secs}s waiting for $what"
    return 1
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- the shared world: keys, the target user, sshd (called once by the harness) --------------
setup_world() {
    ssh-keygen -q -t ed25519 -N '' -C kw-drills-client -f "$WORK/client_key"
    ssh-keygen -q -t ed25519 -N '' -C kw-drills-sshd -f "$WORK/sshd_host_key"
    cp "$WORK/client_key.pub" "$WORK/authorized_keys"
    chmod 644 "$WORK/authorized_keys"
    if ! id "$DRILL_USER" >/dev/null 2>&1; then
        log "creating the local user $DRILL_USER"
        useradd -m -s /bin/bash "$DRILL_USER"
    fi
    DRILL_PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    echo "$DRILL_USER:$DRILL_PW" | chpasswd
    mkdir -p /run/sshd
    chmod 755 /run/sshd
    local try port cfg pid
    for try in 1 2 3 4 5 6 7 8; do
        port=$((20000 + RANDOM % 30000))
        port_in_use "$port" && continue
        cfg=$WORK/sshd.conf
        # Room for the many-sessions drill: every session is one sshd connection.
        cat >"$cfg" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $WORK/sshd_host_key
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
PubkeyAuthentication yes
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
        /usr/sbin/sshd -t -f "$cfg" || die "sshd rejects its config $cfg"
        /usr/sbin/sshd -D -f "$cfg" -E "$WORK/sshd.log" &
        pid=$!
        if wait_until 10 "sshd on port $port" port_in_use "$port" && alive "$pid"; then
            SSHD_PID=$pid
            SSHD_PORT=$port
            track_pid "$pid"
            return 0
        fi
        stop_pid "$pid" 2
    done
    die "could not start sshd; see $WORK/sshd.log"
}

# --- a drill's gateway ---------------------------------------------------------------------------

# new_datadir NAME: a fresh data directory with alice (the client key, and the password in
# $WORK/alice.pw), target web01 (the sshd, host key pinned, vaulted password) and the grant;
# exports KEEPWATCH_DATA_DIR.
new_datadir() {
    export KEEPWATCH_DATA_DIR=$WORK/$1
    "$KW" init >"$WORK/$1.init.out" 2>&1 || die "keepwatch init failed: $(cat "$WORK/$1.init.out")"
    [[ -s $WORK/alice.pw ]] || head -c 15 /dev/urandom | base64 | tr -d '/+=' >"$WORK/alice.pw"
    "$KW" user add alice --role user --ssh-key "$WORK/client_key.pub" --password-stdin \
        <"$WORK/alice.pw" >/dev/null
    echo "$DRILL_PW" | "$KW" target add web01 --host 127.0.0.1 --port "$SSHD_PORT" --login "$DRILL_USER" \
        --password-stdin --host-key "$(cut -d' ' -f1,2 "$WORK/sshd_host_key.pub")" >/dev/null
    "$KW" grant alice web01 >/dev/null
}

# start_gateway: `keepwatch run` on free ports in $KEEPWATCH_DATA_DIR; sets GW_PID, GW_PORT, GW_LOG.
start_gateway() {
    local i
    GW_LOG=$KEEPWATCH_DATA_DIR.run.$(date +%s%N).log
    : >"$GW_LOG"
    "$KW" run --ssh-listen 127.0.0.1:0 --web-listen 127.0.0.1:0 2>"$GW_LOG" &
    GW_PID=$!
    track_pid "$GW_PID"
    for ((i = 0; i < 600; i++)); do
        GW_PORT=$(sed -n 's/^keepwatch: SSH gateway listening on .*:\([0-9]*\)$/\1/p' "$GW_LOG" || true)
        [[ -n $GW_PORT ]] && return 0
        alive "$GW_PID" || die "the gateway exited: $(tail -5 "$GW_LOG")"
        nap 0.1
    done
    die "the gateway did not report its SSH address within 60s: $(tail -5 "$GW_LOG")"
}

# stop_gateway: SIGTERM (it seals live sessions `terminated`), then waits.
stop_gateway() {
    [[ -n ${GW_PID:-} ]] || return 0
    stop_pid "$GW_PID" 30
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=
}

# kill9_gateway: a crash.
kill9_gateway() {
    kill -KILL "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=
}

# gw_ssh COMMAND: one OpenSSH exec through the gateway, bounded.
gw_ssh() {
    timeout -k 5 60 ssh -F "$WORK/ssh_config" -p "$GW_PORT" alice@web01@127.0.0.1 "$@" </dev/null
}

write_ssh_config() {
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
EOF
}

# active_sessions: how many sessions the database calls active.
active_sessions() {
    { "$KW" sessions --active --json 2>/dev/null || true; } | { grep -o '"id"' || true; } | wc -l
}

# verify_all: `keepwatch verify --all`, bounded; sets VERIFY_OK (1/0), VERIFY_LINE (its last
# line) and VERIFY_OUT (the file with all of it).
verify_all() {
    local out=$KEEPWATCH_DATA_DIR.verify.out
    if timeout -k 5 900 "$KW" verify --all >"$out" 2>&1; then
        VERIFY_OK=1
    else
        VERIFY_OK=0
    fi
    VERIFY_OUT=$out
    VERIFY_LINE=$(tail -1 "$out" | tr -d '\r' | cut -c1-200)
}

# result DRILL CONDITION FIGURE VERDICT: one row of the summary table.
result() {
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$WORK/results.tsv"
    log "result: $1: $4 — $3"
}

# field LINE KEY: the value of KEY=VALUE in a `keepwatch-bench` output line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1" | head -1; }
