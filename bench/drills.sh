#!/usr/bin/env bash
# Keepwatch failure drills (issue 10): kill -9 under load, storage failures, many sessions and a
# flood, each against a throwaway loopback sshd and a fresh gateway in its own data directory.
# Each drill states its pass condition and prints its figure; the run ends with one Markdown
# table and exits 0 only if every drill passed. See bench/README.md ("Failure drills").
#
# Needs root (sshd, a local user, tmpfs/loop mounts for the storage drill); talks only to
# 127.0.0.x. Knobs (environment), defaults in brackets:
#   KW_DRILLS            drills to run, in order [crash storage many flood]
#   KW_DRILL_CRASH_SESSIONS [100]  KW_DRILL_CRASH_ROUNDS [3]
#   KW_DRILL_STORAGE_SESSIONS [10] (per storage case)
#   KW_DRILL_MANY_SESSIONS [500]   KW_DRILL_MANY_SECS [600] (each session's output time)
#   KW_DRILL_FLOOD_SESSIONS [20]   KW_DRILL_FLOOD_PHASE_SECS [40]
#   KW_DRILL_FLOOD_SILENT [2000]   KW_DRILL_FLOOD_LOGINS [200] (wrong passwords per second)
#   KW_DRILL_FLOOD_ALIASES [16]    (loopback addresses of the second flood)
#   KW_DRILL_DEADLINE_SCALE [1]    (multiplies every drill's deadline)
#   KW_BENCH_SKIP_BUILD=1, CARGO_TARGET_DIR (release build; default ./target),
#   KW_DRILL_KEEP=1 (keep the work directory), KW_DRILL_OUT=FILE (also write the report there)
set -euo pipefail

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
ROOT=$(cd "$(dirname "$SELF")/.." && pwd)
# shellcheck source=bench/drills-lib.sh
source "$ROOT/bench/drills-lib.sh"

export DRILLS=${KW_DRILLS:-crash storage many flood}
export CRASH_SESSIONS=${KW_DRILL_CRASH_SESSIONS:-100}
export CRASH_ROUNDS=${KW_DRILL_CRASH_ROUNDS:-3}
export STORAGE_SESSIONS=${KW_DRILL_STORAGE_SESSIONS:-10}
export MANY_SESSIONS=${KW_DRILL_MANY_SESSIONS:-500}
export MANY_SECS=${KW_DRILL_MANY_SECS:-600}
export FLOOD_SESSIONS=${KW_DRILL_FLOOD_SESSIONS:-20}
export FLOOD_PHASE_SECS=${KW_DRILL_FLOOD_PHASE_SECS:-40}
export FLOOD_SILENT=${KW_DRILL_FLOOD_SILENT:-2000}
export FLOOD_LOGINS=${KW_DRILL_FLOOD_LOGINS:-200}
export FLOOD_ALIASES=${KW_DRILL_FLOOD_ALIASES:-16}
SCALE=${KW_DRILL_DEADLINE_SCALE:-1}
export DRILL_USER=kwdrill
# The recorder's default flush interval: what a crash (or a failed write) may lose. Loss is
# measured on the producer's clock, which stamps a line per 100 ms tick: the bound allows
# one tick of resolution.
export FLUSH_MS=1000
export LOSS_BOUND_MS=$((FLUSH_MS + 100))
export KEEPWATCH_LOG=${KEEPWATCH_LOG:-warn}

# ==== the drills (each runs as `drills.sh __drill NAME` in its own process group) =============

# The producer's pace for drills 1 and 2: 10 lines of ~100 bytes every 100 ms, 10 kB/s a session.
LOAD_PACE=(--lines-per-tick 10 --tick-ms 100 --pad 60)

# load_start TAG N [ARGS...]: drill-load in the background against the running gateway;
# sets LOAD_PID and LOAD_OUT (its stdout; the per-session report is $WORK/TAG.tsv).
load_start() {
    local tag=$1 n=$2
    shift 2
    LOAD_OUT=$WORK/$tag.load.out
    : >"$LOAD_OUT"
    "$KWB" drill-load --key "$WORK/client_key" --endpoint "alice@web01@127.0.0.1:$GW_PORT" \
        --sessions "$n" --tag-prefix "$tag" --report "$WORK/$tag.tsv" "$@" \
        >"$LOAD_OUT" 2>"$WORK/$tag.load.err" &
    LOAD_PID=$!
    track_pid "$LOAD_PID"
}

load_ready() { grep -q '^ready' "$LOAD_OUT"; }

# report_awk FILE [AWK OPTIONS...] PROGRAM: awk over a drill-load report, its columns by name
# in c["name"] (the header line is skipped).
report_awk() {
    local file=$1
    shift
    local prog=${*: -1}
    awk -F'\t' "${@:1:$#-1}" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next } '"$prog" "$file"
}

# load_wait SECONDS: waits for the running drill-load to end; after SECONDS it is stopped
# (SIGTERM: it closes its sessions and still writes its report). Returns 1 if it had to be.
load_wait() {
    local rc=0
    if ! wait_until "$1" "the sessions to end" gone "$LOAD_PID"; then
        kill -TERM "$LOAD_PID" 2>/dev/null || true
        rc=1
    fi
    wait "$LOAD_PID" 2>/dev/null || log "drill-load failed: $(tail -3 "${LOAD_OUT%.out}.err")"
    LOAD_PID=
    return $rc
}

random_s() { # MIN_MS MAX_MS: a random number of seconds between them, as 1.234
    local ms=$(($1 + RANDOM % ($2 - $1 + 1)))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

drill_crash() {
    new_datadir crash
    local r delay reports=() moments=()
    for ((r = 1; r <= CRASH_ROUNDS; r++)); do
        start_gateway
        load_start "c$r" "$CRASH_SESSIONS" "${LOAD_PACE[@]}" --deadline-s 900
        if ((r == 2)); then
            # One round dies while sessions are still being set up.
            delay=$(random_s 500 3000)
            nap "$delay"
            moments+=("round $r: ${delay}s after the clients started (mid-setup)")
        else
            wait_until 300 "$CRASH_SESSIONS sessions producing" load_ready ||
                die "round $r: the sessions did not start: $(tail -3 "$WORK/c$r.load.err")"
            delay=$(random_s 200 5000)
            nap "$delay"
            moments+=("round $r: ${delay}s after all $CRASH_SESSIONS produced")
        fi
        log "round $r: kill -9 the gateway (pid $GW_PID)"
        kill9_gateway
        load_wait 120 || log "round $r: some sessions outlived the gateway?"
        cat "$LOAD_OUT" >&2
        reports+=(--report "$WORK/c$r.tsv")
    done
    start_gateway # recovery seals what the crashes left
    local recovered
    recovered=$(cat "$KEEPWATCH_DATA_DIR".run.*.log | sed -n 's/^keepwatch: sealed \([0-9]*\) interrupted.*/\1/p' | awk '{ n += $1 } END { print n + 0 }')
    local check
    check=$("$KWB" drill-check --data-dir "$KEEPWATCH_DATA_DIR" "${reports[@]}" \
        --status closed,interrupted --max-loss-ms "$LOSS_BOUND_MS" --out "$WORK/crash.check.tsv")
    echo "$check" >&2
    verify_all
    stop_gateway
    local l1 l2 verdict=pass
    l1=$(grep '^check sessions' <<<"$check")
    l2=$(grep '^check unrecorded' <<<"$check")
    [[ $(field "$(grep '^check verdict' <<<"$check")" verdict) == pass && $VERIFY_OK == 1 ]] || verdict="**FAIL**"
    local figure
    figure="$(field "$l1" sessions) sessions over $CRASH_ROUNDS crashes ($(field "$l1" statuses)); recovery sealed ${recovered} at the restarts; loss max $(field "$l2" unrecorded_bytes_max) B / $(field "$l2" loss_ms_max) ms, median $(field "$l2" unrecorded_bytes_median) B / $(field "$l2" loss_ms_median) ms (of 10 kB/s per session); recorded but never delivered max $(field "$l2" recorded_undelivered_bytes_max) B; verify --all: $([[ $VERIFY_OK == 1 ]] && echo ok || echo "FAILED: $VERIFY_LINE")"
    result "1. kill -9 under load ($CRASH_SESSIONS sessions × $CRASH_ROUNDS rounds)" \
        "every session \`closed\` or \`interrupted\` after recovery; \`verify --all\` passes; output a client got beyond its recording ≤ one flush interval (${FLUSH_MS} ms, measured to the producer's 100 ms tick)" \
        "$figure. Kill moments: $(
            IFS=';'
            echo "${moments[*]}"
        )" "$verdict"
    grep '^check problem' <<<"$check" >&2 || true
}

# storage_case NAME HOW: one storage failure on a live gateway with $STORAGE_SESSIONS sessions.
# The caller has mounted (or not) the spool; `fault_NAME` breaks it, `mend_NAME` repairs it.
storage_case() {
    local name=$1 what=$2
    start_gateway
    load_start "s$name" "$STORAGE_SESSIONS" "${LOAD_PACE[@]}" --deadline-s 900
    wait_until 120 "$STORAGE_SESSIONS sessions producing" load_ready ||
        die "$name: the sessions did not start: $(tail -3 "$WORK/s$name.load.err")"
    nap 2.5 # some chunks written first
    local t_fault
    t_fault=$(date +%s%6N)
    log "$name: $what"
    "fault_$name"
    local ended=1
    load_wait 30 || ended=0
    cat "$LOAD_OUT" >&2
    # How long output kept reaching clients after the fault (the producer's clock), and
    # whether every client saw the gateway's message.
    local after_ms told
    after_ms=$(report_awk "$WORK/s$name.tsv" -v t="$t_fault" '$c["last_ts_us"] > 0 { d = ($c["last_ts_us"] - t) / 1000; if (d > m) m = d } END { printf "%.0f", m }')
    told=$(report_awk "$WORK/s$name.tsv" '$c["stderr"] ~ /the recording failed, so the session was ended/ { n++ } END { print n + 0 }')
    local active_now
    active_now=$(active_sessions)
    "mend_$name"
    local probe serving=no
    probe=$(gw_ssh 'echo still-$((6*7))' 2>&1) || true
    [[ $probe == still-42 ]] && serving=yes
    log "$name: a new session after the repair: $serving ($probe)"
    stop_gateway
    start_gateway # recovery seals the failed sessions from what reached the disk
    local check
    if [[ $name == gone ]]; then
        # The recordings were deleted with the directory: nothing to compare; the sessions
        # must still be listed, and verify must name exactly their missing recordings.
        check=$("$KWB" drill-check --data-dir "$KEEPWATCH_DATA_DIR" --report "$WORK/s$name.tsv" \
            --status closed,interrupted --out "$WORK/s$name.check.tsv" || true)
    else
        check=$("$KWB" drill-check --data-dir "$KEEPWATCH_DATA_DIR" --report "$WORK/s$name.tsv" \
            --status closed,interrupted --max-loss-ms "$LOSS_BOUND_MS" --out "$WORK/s$name.check.tsv" || true)
    fi
    echo "$check" >&2
    verify_all
    stop_gateway
    CASE_ENDED=$ended CASE_TOLD=$told CASE_AFTER_MS=$after_ms CASE_ACTIVE=$active_now
    CASE_SERVING=$serving CASE_CHECK=$check
}

# (a) a small tmpfs over spool/, filled up.
fault_full() { cat /dev/zero >"$KEEPWATCH_DATA_DIR/spool/filler" 2>/dev/null || true; }
mend_full() { rm -f "$KEEPWATCH_DATA_DIR/spool/filler"; }
# (b) an ext4 spool that goes read-only: the kernel refuses `mount -o remount,ro` while the
# gateway has files open for writing, so the drill does what an I/O error does with
# errors=remount-ro (ext4's trigger_fs_error); the repair is unmount, fsck, mount.
fault_ro() {
    if mount -o remount,ro "$KEEPWATCH_DATA_DIR/spool" 2>"$WORK/remount.err"; then
        REMOUNT_NOTE="mount -o remount,ro succeeded"
    else
        REMOUNT_NOTE="mount -o remount,ro refused ($(tr '\n' ' ' <"$WORK/remount.err" | cut -c1-80)), so the kernel's errors=remount-ro was triggered instead"
        echo 1 >"/sys/fs/ext4/$(basename "$RO_DEV")/trigger_fs_error"
    fi
}
mend_ro() {
    local spool=$KEEPWATCH_DATA_DIR/spool
    wait_until 30 "the spool to be unmountable" umount "$spool" || umount -l "$spool"
    e2fsck -fy "$RO_IMG" >/dev/null 2>&1 || true
    mount -o loop,errors=remount-ro "$RO_IMG" "$spool"
    RO_DEV=$(findmnt -no SOURCE "$spool")
}
# (c) the spool directory removed (a plain directory: a mount point cannot be removed).
fault_gone() { rm -rf "$KEEPWATCH_DATA_DIR/spool"; }
mend_gone() { mkdir -p "$KEEPWATCH_DATA_DIR/spool"; }

storage_row() { # LETTER TITLE REPAIR EXTRA_NOTE
    local l1 l2 verdict=pass why=() cond figure missing=0 others=0
    l1=$(grep '^check sessions' <<<"$CASE_CHECK" || true)
    l2=$(grep '^check unrecorded' <<<"$CASE_CHECK" || true)
    ((CASE_ENDED == 1)) || why+=("sessions went on after the fault")
    ((CASE_TOLD == STORAGE_SESSIONS)) || why+=("$CASE_TOLD of $STORAGE_SESSIONS clients saw the message")
    [[ $CASE_SERVING == yes ]] || why+=("no new session after the repair")
    cond="every live session ends, the client seeing \`the recording failed, so the session was ended\`; a new session works after $3, without a restart"
    if [[ $1 == c ]]; then
        # The recordings went with the directory: what counts is how long output went on
        # unrecorded, and that the sessions are still listed and reported, not dropped.
        missing=$(grep -c 'recording missing' "$VERIFY_OUT" || true)
        others=$(($(grep -c '^session ' "$VERIFY_OUT" || true) - missing))
        ((${CASE_AFTER_MS:-999999} <= LOSS_BOUND_MS)) || why+=("output went on ${CASE_AFTER_MS} ms after the removal")
        ((missing == STORAGE_SESSIONS && others == 0)) || why+=("verify named $missing missing recordings (want $STORAGE_SESSIONS) and $others other problems")
        [[ ,$(field "$l1" statuses), == *,interrupted:$STORAGE_SESSIONS,* ]] || why+=("statuses after the restart: $(field "$l1" statuses)")
        cond+="; output stops within one flush interval of the removal; after a restart the sessions are listed \`interrupted\` and \`verify --all\` names exactly their missing recordings"
        figure="$CASE_TOLD of $STORAGE_SESSIONS clients told; output reached clients up to ${CASE_AFTER_MS} ms after the removal; $CASE_ACTIVE left \`active\` until the restart; new session after the repair: $CASE_SERVING; after the restart $(field "$l1" statuses), verify: $missing missing recordings, $others other problems"
    else
        [[ $(field "$(grep '^check verdict' <<<"$CASE_CHECK" || true)" verdict) == pass ]] || why+=("$(grep '^check problem' <<<"$CASE_CHECK" | head -2 | cut -c16- | tr '\n' ' ')")
        [[ $VERIFY_OK == 1 ]] || why+=("verify --all: $VERIFY_LINE")
        cond+="; output a client got beyond its recording ≤ one flush interval; after recovery every session \`closed\`/\`interrupted\` and \`verify --all\` passes"
        figure="$CASE_TOLD of $STORAGE_SESSIONS clients told; beyond the recording: max $(field "$l2" unrecorded_bytes_max) B / $(field "$l2" loss_ms_max) ms (median $(field "$l2" unrecorded_bytes_median) B / $(field "$l2" loss_ms_median) ms); last output $CASE_AFTER_MS ms after the fault; $CASE_ACTIVE left \`active\` until the restart; new session after the repair: $CASE_SERVING; after recovery $(field "$l1" statuses), verify: $([[ $VERIFY_OK == 1 ]] && echo ok || echo failed)"
    fi
    ((${#why[@]} == 0)) || verdict="**FAIL**: $(
        IFS=';'
        echo "${why[*]}"
    )"
    result "2$1. storage: $2" "$cond" "$figure$4" "$verdict"
}

drill_storage() {
    # (a) full: a 16 MiB tmpfs over spool/.
    new_datadir sfull
    mkdir -p "$KEEPWATCH_DATA_DIR/spool"
    mount -t tmpfs -o size=16m tmpfs "$KEEPWATCH_DATA_DIR/spool"
    track_mount "$KEEPWATCH_DATA_DIR/spool"
    storage_case full "filling the 16 MiB tmpfs under spool/"
    umount "$KEEPWATCH_DATA_DIR/spool" || umount -l "$KEEPWATCH_DATA_DIR/spool"
    storage_row a "disk full (tmpfs)" "freeing space" ""

    # (b) read-only: a 64 MiB ext4 image, mounted with errors=remount-ro.
    new_datadir sro
    RO_IMG=$WORK/spool-ro.img
    mkdir -p "$KEEPWATCH_DATA_DIR/spool"
    truncate -s 64M "$RO_IMG"
    mkfs.ext4 -q -F "$RO_IMG"
    mount -o loop,errors=remount-ro "$RO_IMG" "$KEEPWATCH_DATA_DIR/spool"
    track_mount "$KEEPWATCH_DATA_DIR/spool"
    RO_DEV=$(findmnt -no SOURCE "$KEEPWATCH_DATA_DIR/spool")
    REMOUNT_NOTE=
    storage_case ro "making the spool read-only"
    umount "$KEEPWATCH_DATA_DIR/spool" || umount -l "$KEEPWATCH_DATA_DIR/spool"
    storage_row b "spool read-only (ext4)" "unmount, fsck, mount" "; $REMOUNT_NOTE"

    # (c) removed: the data directory's own spool/.
    new_datadir sgone
    storage_case gone "rm -rf spool/"
    storage_row c "spool directory removed" "mkdir spool" ""
}

drill_many() {
    new_datadir many
    start_gateway
    # 2 lines of ~100 bytes every 100 ms: 2 kB/s a session, 1 MB/s for 500.
    load_start many "$MANY_SESSIONS" --lines-per-tick 2 --tick-ms 100 --pad 60 \
        --duration-s "$MANY_SECS" --deadline-s $((MANY_SECS + 600)) \
        --gateway-pid "$GW_PID" --sample-secs 5 --samples "$WORK/many.rss.tsv"
    wait_until 600 "$MANY_SESSIONS sessions producing" load_ready ||
        die "the sessions did not start: $(tail -3 "$WORK/many.load.err")"
    load_wait $((MANY_SECS + 900)) || log "drill-load had to be stopped"
    cat "$LOAD_OUT" >&2
    wait_until 300 "every session sealed" test "$(active_sessions)" -eq 0 || true
    local check
    check=$("$KWB" drill-check --data-dir "$KEEPWATCH_DATA_DIR" --report "$WORK/many.tsv" \
        --status closed --exact --out "$WORK/many.check.tsv")
    echo "$check" >&2
    verify_all
    stop_gateway
    local load rate gw l1 verdict=pass why=()
    load=$(grep '^load sessions' "$LOAD_OUT")
    rate=$(grep '^load rate_bps' "$LOAD_OUT" || true)
    gw=$(grep '^gateway ' "$LOAD_OUT" || true)
    l1=$(grep '^check sessions' <<<"$check")
    [[ $(field "$load" exit) == "$MANY_SESSIONS" ]] || why+=("$(field "$load" exit) of $MANY_SESSIONS ended by themselves")
    [[ $(field "$l1" exact) == "$MANY_SESSIONS" ]] || why+=("recorded = delivered for $(field "$l1" exact) of $MANY_SESSIONS")
    [[ $(field "$(grep '^check verdict' <<<"$check")" verdict) == pass ]] || why+=("$(grep '^check problem' <<<"$check" | head -2 | cut -c14- | tr '\n' ' ')")
    awk -v r="$(field "$rate" slowest_vs_median)" 'BEGIN { exit !(r >= 0.9) }' || why+=("slowest session at $(field "$rate" slowest_vs_median)× the median")
    awk -v g="$(field "$rate" max_gap_ms)" 'BEGIN { exit !(g <= 5000) }' || why+=("a session stalled $(field "$rate" max_gap_ms) ms")
    local growth="$(field "$gw" steady_growth_pct)%"
    [[ $growth == n/a% ]] && growth="n/a (under 100 s of steady samples)"
    # Judged only on a run long enough to have a steady state (drill-load says n/a otherwise).
    [[ $(field "$gw" steady_growth_pct) == n/a ]] ||
        awk -v g="$(field "$gw" steady_growth_pct)" 'BEGIN { exit !(g <= 10) }' ||
        why+=("RSS grew $(field "$gw" steady_growth_pct)% under steady load")
    [[ $VERIFY_OK == 1 ]] || why+=("verify --all: $VERIFY_LINE")
    ((${#why[@]} == 0)) || verdict="**FAIL**: $(
        IFS=';'
        echo "${why[*]}"
    )"
    result "3. many sessions ($MANY_SESSIONS × ${MANY_SECS}s)" \
        "every session runs to its end (exit 0); recorded bytes = delivered bytes for every session; gateway RSS flat under steady load (≤ 10% growth from the first to the last quarter, after a fifth for warm-up); slowest session ≥ 0.9× the median throughput and no gap > 5 s; \`verify --all\` passes" \
        "$(field "$load" exit) of $MANY_SESSIONS ran to the end, $(field "$load" bytes) B delivered; exact for $(field "$l1" exact); RSS before $(field "$gw" rss_before_kib) KiB, with sessions max $(field "$gw" rss_max_with_sessions_kib) KiB (peak VmHWM $(field "$gw" hwm_kib) KiB), $(field "$gw" per_session_kib) KiB per session, steady growth $growth; gateway CPU $(field "$gw" cpu_s) s; throughput median $(field "$rate" median) B/s, slowest $(field "$rate" slowest) B/s ($(field "$rate" slowest_vs_median)×); longest gap $(field "$rate" max_gap_ms) ms (median of per-session maxima $(field "$rate" median_max_gap_ms) ms); $(grep '^ready' "$LOAD_OUT" | cut -d' ' -f2-); verify: $([[ $VERIFY_OK == 1 ]] && echo ok || echo failed)" \
        "$verdict"
}

drill_flood() {
    new_datadir flood
    start_gateway
    local many=127.0.0.1 i
    for ((i = 2; i <= FLOOD_ALIASES; i++)); do many+=",127.0.0.$i"; done
    local out=$WORK/flood.out
    # Three floods, each against the same live sessions and between two quiet phases: the
    # issue's flood from one address, the same from many addresses, and the wrong passwords
    # alone (so they reach the check).
    timeout -k 10 $((FLOOD_PHASE_SECS * 8 + 300)) "$KWB" drill-flood --key "$WORK/client_key" \
        --endpoint "alice@web01@127.0.0.1:$GW_PORT" --sessions "$FLOOD_SESSIONS" \
        --reference "direct=$DRILL_USER@127.0.0.1:$SSHD_PORT" --phase-s "$FLOOD_PHASE_SECS" \
        --flood "one-address:127.0.0.1:$FLOOD_SILENT:$FLOOD_LOGINS" \
        --flood "many-addresses:$many:$FLOOD_SILENT:$FLOOD_LOGINS" \
        --flood "logins-only:$many:0:$FLOOD_LOGINS" \
        --probe-password-file "$WORK/alice.pw" \
        --gateway-pid "$GW_PID" --data-dir "$KEEPWATCH_DATA_DIR" >"$out" 2>"$WORK/flood.err" ||
        die "drill-flood failed: $(tail -3 "$WORK/flood.err")"
    cat "$out" >&2
    local alive=yes
    alive "$GW_PID" || alive=no
    verify_all
    stop_gateway
    p99() { field "$(grep "^phase $1 group=$2 " "$out" || true)" p99_us; }
    sil() { field "$(grep "^phase $1 flood silent" "$out" || true)" "$2"; }
    lg() { field "$(grep "^phase $1 flood logins" "$out" || true)" "$2"; }
    ph() { field "$(grep "^phase $1 flood=" "$out" || true)" "$2"; }
    probes() { # PHASE KIND: "ok/n"
        local l
        l=$(grep "^phase $1 probe=$2 " "$out" || true)
        echo "$(field "$l" logins_ok)/$(sed -n 's/.* of \([0-9]*\) .*/\1/p' <<<"$l")"
    }
    # Each flood against the quiet phases on either side of it (quiet-1, flood, quiet-2, ...).
    local lost verdict=pass why=() phase figure i=1 before after ref
    lost=$(field "$(grep '^typists lost' "$out" || true)" lost)
    figure="echo p99 through the gateway, each flood between two quiet phases:"
    for phase in one-address many-addresses logins-only; do
        before=$(p99 "quiet-$i" gateway) after=$(p99 "quiet-$((i + 1))" gateway)
        ref=$(awk -v a="$before" -v b="$after" 'BEGIN { if (a > 0 && b > 0) printf "%.0f", (a + b) / 2 }')
        awk -v f="$(p99 $phase gateway)" -v q="$ref" 'BEGIN { exit !(q > 0 && f > 0 && f <= 2 * q) }' ||
            why+=("$phase: p99 $(p99 $phase gateway) µs vs $ref µs quiet")
        figure+=" $phase $(p99 $phase gateway) µs vs quiet $before/$after µs ($(awk -v f="$(p99 $phase gateway)" -v q="$ref" 'BEGIN { if (q > 0) printf "%.2f", f / q }')×; direct sshd $(p99 $phase direct) vs $(p99 "quiet-$i" direct)/$(p99 "quiet-$((i + 1))" direct) µs);"
        i=$((i + 1))
    done
    figure+=" sessions lost: $lost."
    [[ $lost == 0 ]] || why+=("$lost typists lost their session")
    [[ $alive == yes ]] || why+=("the gateway died")
    [[ $VERIFY_OK == 1 ]] || why+=("verify --all: $VERIFY_LINE")
    ((${#why[@]} == 0)) || verdict="**FAIL**: $(
        IFS=';'
        echo "${why[*]}"
    )"
    for phase in one-address many-addresses logins-only; do
        figure+=" **$phase**: gateway CPU $(ph $phase gateway_cpu_pct)% (machine $(ph $phase machine_busy_pct)%); silent connections held at most $(sil $phase held_max) (per address $(sil $phase held_max_per_source)), $(sil $phase refused_at_accept) turned away at accept, $(sil $phase closed_after_grace) closed at the grace time; wrong passwords $(lg $phase per_s)/s: $(lg $phase rejected) rejected (p50 $(lg $phase reject_p50_ms) ms), $(lg $phase refused_at_accept) turned away at accept, $(lg $phase timeouts) timed out; new key logins from 127.0.0.1 $(probes $phase key_from_127.0.0.1), from 127.0.0.200 $(probes $phase key_from_127.0.0.200); alice's password login $(probes $phase password_from_127.0.0.200); audit rows $(ph $phase audit_rows) ($(ph $phase login_refused_rows) login_refused)."
    done
    figure+=" Quiet: gateway CPU $(ph quiet-1 gateway_cpu_pct)%, key logins $(probes quiet-1 key_from_127.0.0.1), password $(probes quiet-1 password_from_127.0.0.200); password after the floods: $(probes quiet-4 password_from_127.0.0.200)."
    result "4. flood ($FLOOD_SILENT silent connections + $FLOOD_LOGINS wrong passwords/s, from 127.0.0.1, then $FLOOD_ALIASES addresses; then the passwords alone) with $FLOOD_SESSIONS live sessions" \
        "keystroke echo p99 of the $FLOOD_SESSIONS sessions under each flood ≤ 2× that of the quiet phases before and after it (their mean); none disconnected; default \`[limits]\`" \
        "$figure" "$verdict"
}

# A drill's own cleanup: its clients, its gateway, its mounts.
drill_cleanup() {
    local rc=$?
    set +e
    [[ -n ${LOAD_PID:-} ]] && stop_pid "$LOAD_PID" 10
    [[ -n ${GW_PID:-} ]] && stop_pid "$GW_PID" 15
    local m
    for m in $(awk '$1 == "mount" { print $2 }' "$WORK/state" 2>/dev/null); do
        mountpoint -q "$m" && { umount "$m" 2>/dev/null || umount -l "$m"; }
    done
    exit "$rc"
}

if [[ ${1:-} == __drill ]]; then
    trap drill_cleanup EXIT
    trap 'log "drill $2 stopped"; exit 143' TERM INT
    "drill_$2"
    exit 0
fi

# ==== the harness =============================================================================

[[ $(id -u) == 0 ]] || die "run as root: it starts sshd, adds the user $DRILL_USER and mounts a tmpfs and a loop device"
for drill in $DRILLS; do
    declare -F "drill_$drill" >/dev/null || die "no drill named $drill (drills: crash storage many flood)"
done
need_pkgs=()
[[ -x /usr/sbin/sshd ]] || need_pkgs+=(openssh-server)
command -v ssh >/dev/null || need_pkgs+=(openssh-client)
command -v mkfs.ext4 >/dev/null || need_pkgs+=(e2fsprogs)
command -v setsid >/dev/null || need_pkgs+=(util-linux)
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export KW=$TARGET_DIR/release/keepwatch
export KWB=$TARGET_DIR/release/keepwatch-bench
if [[ ${KW_BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building keepwatch and keepwatch-bench (release) into $TARGET_DIR"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p keepwatch -p keepwatch-bench) ||
        die "the release build failed"
fi
[[ -x $KW && -x $KWB ]] || die "missing $KW or $KWB (build them, or unset KW_BENCH_SKIP_BUILD)"

WORK=$(mktemp -d /tmp/keepwatch-drills.XXXXXX)
chmod 755 "$WORK"
export WORK
: >"$WORK/state"
: >"$WORK/results.tsv"

harness_cleanup() {
    local rc=$? pid m
    trap - EXIT INT TERM
    set +e
    for pid in $(awk '$1 == "pid" { print $2 }' "$WORK/state" | sort -u); do stop_pid "$pid" 5; done
    for m in $(awk '$1 == "mount" { print $2 }' "$WORK/state" | sort -u); do
        mountpoint -q "$m" && { umount "$m" 2>/dev/null || umount -l "$m"; }
    done
    if [[ ${KW_DRILL_KEEP:-0} == 1 ]]; then
        log "kept the work directory $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap harness_cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
START_TS=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
setup_world
write_ssh_config
export SSHD_PORT DRILL_PW
log "sshd (target) on 127.0.0.1:$SSHD_PORT; work directory $WORK"

# deadline_for DRILL: seconds it may take before it counts as hung.
deadline_for() {
    local s
    case $1 in
    crash) s=$((CRASH_ROUNDS * 420 + 600)) ;;
    storage) s=1500 ;;
    many) s=$((MANY_SECS + 2100)) ;;
    flood) s=$((FLOOD_PHASE_SECS * 8 + 600)) ;;
    esac
    echo $((s * SCALE))
}

# Runs one drill in its own process group; kills the group at its deadline.
run_drill() {
    local name=$1 deadline t0 pid rc=0 before
    deadline=$(deadline_for "$name")
    before=$(wc -l <"$WORK/results.tsv")
    log "=== drill $name (deadline ${deadline}s) ==="
    t0=$(date +%s)
    setsid bash "$SELF" __drill "$name" > >(tee "$WORK/$name.log" >&2) 2>&1 &
    pid=$!
    echo "pid $pid" >>"$WORK/state"
    while alive "$pid"; do
        if (($(date +%s) - t0 > deadline)); then
            log "drill $name passed its ${deadline}s deadline; stopping it"
            kill -TERM -- "-$pid" 2>/dev/null || true
            nap 20
            kill -KILL -- "-$pid" 2>/dev/null || true
            result "$name" "finishes within ${deadline}s" "hung: stopped at the deadline" "**FAIL**"
            break
        fi
        nap 1
    done
    wait "$pid" 2>/dev/null || rc=$?
    if (($(wc -l <"$WORK/results.tsv") == before)); then
        result "$name" "runs to its verdict" "the drill failed (exit $rc): $(grep -av '^ *$' "$WORK/$name.log" | tail -2 | tr '\n' ' ' | cut -c1-300)" "**FAIL**"
    fi
    log "drill $name took $(($(date +%s) - t0))s"
}

for drill in $DRILLS; do
    run_drill "$drill"
done

ELAPSED=$(($(date +%s) - START_TS))
{
    echo "### Keepwatch failure drills — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPU $(lscpu | sed -n 's/^Model name: *//p' | head -1), commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo
    echo "| Drill | Pass condition | Figure | Result |"
    echo "|---|---|---|---|"
    awk -F'\t' '{ gsub(/\|/, "\\|"); printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$WORK/results.tsv"
    echo
    echo "Load average (1/5/15 min) at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg); wall time ${ELAPSED}s; flush interval ${FLUSH_MS} ms (the default)."
} | tee "$WORK/report.md"
[[ -n ${KW_DRILL_OUT:-} ]] && cp "$WORK/report.md" "$KW_DRILL_OUT"
! grep -q 'FAIL' "$WORK/results.tsv"
