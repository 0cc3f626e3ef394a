#!/usr/bin/env bash
# Flywheel benchmark: the gateway (capture on) side by side with nginx as a plain
# reverse proxy and with no proxy at all, all three in front of the same mock
# upstream, in one run: a small-payload case, then a realistic one (1-4 KB
# conversations, ~1.4 KB answers with usage details). See bench/README.md.
#
# Usage: bench/run.sh            (env knobs: see the block below and bench/README.md)
#
# Choices, stated:
# - Load generator: oha (pinned, `cargo install --locked` into bench/.tools, once).
#   It builds from crates.io in ~7-8 min on 2 cores the first time, which is
#   acceptable for a one-off install, and it gives us what wrk does not: JSON
#   output with the status-code distribution (needed for the capture check),
#   open-loop rate limiting with coordinated-omission correction (-q with
#   --latency-correction) and POST bodies without a Lua script.
# - nginx runs with `worker_processes auto` (= nproc), the usual deployment, and
#   flywheel runs its default of one serving thread per CPU (server.workers, each
#   a single-threaded tokio runtime) plus its capture writer thread. Both may use every core. nginx has access_log off
#   (the leanest plain proxy; NGINX_ACCESS_LOG=1 turns on a buffered access log)
#   and keepalive_requests raised so neither side closes client connections
#   mid-run.
# - The load generator, the mock and the proxy share the same cores: closed-loop
#   req/s is therefore a whole-system figure; the proxy's own CPU per request
#   (utime+stime from /proc) is the cleaner measure of its cost. Absolute numbers
#   move with machine noise; the ratios measured side by side in one run are the
#   point.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
REPO=$(cd "$BENCH_DIR/.." && pwd)

# ---- knobs -------------------------------------------------------------------
DURATION=${DURATION:-24}              # seconds of closed loop per target (all rounds)
CONNS=${CONNS:-32}                    # closed-loop connections
OPEN_DURATION=${OPEN_DURATION:-12}    # seconds of open loop per target (all rounds)
OPEN_RATE=${OPEN_RATE:-1000}          # open-loop request rate (req/s)
OPEN_CONNS=${OPEN_CONNS:-50}          # open-loop connections
WARMUP=${WARMUP:-2}                   # seconds of warm-up load per target
ROUNDS=${ROUNDS:-6}                   # closed/open-loop time is split into this many turns
STREAM_REQUESTS=${STREAM_REQUESTS:-200}   # measured streaming requests per target
STREAM_CONTROL_REQUESTS=${STREAM_CONTROL_REQUESTS:-100}  # same, client asks for usage itself (0: skip)
STREAM_MOCK=${STREAM_MOCK:-chunks=20,chunk_delay_ms=5}
CASES=${CASES:-small realistic}       # which payload cases to run, in this order
# Realistic case: 1-4 KB chat bodies (bench/payloads.py, oha picks one per request), answers
# of ~900 bytes of prose with usage details, streams of 40 chunks.
REAL_DURATION=${REAL_DURATION:-12}    # seconds of closed loop per target (all rounds)
REAL_OPEN_DURATION=${REAL_OPEN_DURATION:-12}  # seconds of open loop per target (all rounds)
REAL_MOCK=${REAL_MOCK:-prose=900,usage_details}
REAL_STREAM_REQUESTS=${REAL_STREAM_REQUESTS:-100}
REAL_STREAM_MOCK=${REAL_STREAM_MOCK:-prose=1200,usage_details,chunks=40,chunk_delay_ms=2}
PROFILE=${PROFILE:-0}                 # 1: extra closed-loop run on flywheel under `perf record`
SKIP_BUILD=${SKIP_BUILD:-0}           # 1: use the existing target/release/flywheel
# FW_BIN=path: run that flywheel binary (gateway and mock) instead of building one
OHA_VERSION=${OHA_VERSION:-1.16.0}
TOOLS=${TOOLS:-$BENCH_DIR/.tools}
OUT=${OUT:-$BENCH_DIR/out}

CHAT_PATH=/v1/chat/completions
BODY='{"model":"m","messages":[{"role":"user","content":"hello"}]}'
STREAM_BODY='{"model":"m","stream":true,"messages":[{"role":"user","content":"hello"}]}'
# Control: flywheel adds stream_options.include_usage=true to streaming requests that lack
# it (to record token usage), so through flywheel the upstream sends one more event (the
# usage chunk), which flywheel strips from the client's stream. With the client asking for
# usage itself, all three targets get byte-identical upstream streams: that isolates the
# proxy's own cost.
STREAM_BODY_USAGE='{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello"}]}'

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- 1. tools ----------------------------------------------------------------
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
apt_pkgs=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || apt_pkgs+=(nginx-light)
command -v python3 >/dev/null 2>&1 || apt_pkgs+=(python3)
[ -x /usr/bin/time ] || apt_pkgs+=(time)
command -v pgrep >/dev/null 2>&1 || apt_pkgs+=(procps)
command -v curl >/dev/null 2>&1 || apt_pkgs+=(curl)
command -v getconf >/dev/null 2>&1 || apt_pkgs+=(libc-bin)
if [ "$PROFILE" = 1 ] && ! command -v perf >/dev/null 2>&1; then apt_pkgs+=(linux-perf); fi
if [ ${#apt_pkgs[@]} -gt 0 ]; then
    log "installing with apt: ${apt_pkgs[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${apt_pkgs[@]}"
    # Debian's package may start the system nginx; we never use it and leave it be.
fi
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust: rustup)"

OHA=$TOOLS/bin/oha
if [ ! -x "$OHA" ] || ! "$OHA" --version 2>/dev/null | grep -q " $OHA_VERSION\$"; then
    log "installing oha $OHA_VERSION into $TOOLS (one-off, several minutes on 2 cores)"
    cargo install oha --version "$OHA_VERSION" --locked --root "$TOOLS"
fi

# ---- 2. build ----------------------------------------------------------------
FW=${FW_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/flywheel}
if [ "$SKIP_BUILD" != 1 ] && [ -z "${FW_BIN:-}" ]; then
    log "building flywheel (release)"
    (cd "$REPO" && cargo build --release --quiet)
fi
[ -x "$FW" ] || die "$FW missing"

# ---- 3. processes ------------------------------------------------------------
WORK=$(mktemp -d /tmp/flywheel-bench.XXXXXX)
RAW=$OUT/raw
mkdir -p "$OUT"
rm -rf "$RAW"
mkdir -p "$RAW"
META=$RAW/meta.env
: >"$META"
meta() { printf '%s=%s\n' "$1" "$2" >>"$META"; }

MOCK_PID= NGINX_PID= FW_PID= PERF_PID= SAMPLER_PID=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in $SAMPLER_PID $PERF_PID $FW_PID $NGINX_PID $MOCK_PID; do
        if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for pid in $SAMPLER_PID $PERF_PID $FW_PID $NGINX_PID $MOCK_PID; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() { # url: wait up to 10 s for any HTTP answer
    for _ in $(seq 100); do
        curl -s -o /dev/null -m 1 "$1" && return 0
        sleep 0.1
    done
    die "nothing answers at $1"
}

MOCK_PORT=$(free_port); NGINX_PORT=$(free_port); FW_PORT=$(free_port)
while [ "$NGINX_PORT" = "$MOCK_PORT" ]; do NGINX_PORT=$(free_port); done
while [ "$FW_PORT" = "$MOCK_PORT" ] || [ "$FW_PORT" = "$NGINX_PORT" ]; do FW_PORT=$(free_port); done

export FLYWHEEL_LOG=warn
log "mock upstream on 127.0.0.1:$MOCK_PORT"
"$FW" mock-upstream --listen "127.0.0.1:$MOCK_PORT" >"$RAW/mock.log" 2>&1 &
MOCK_PID=$!
wait_http "http://127.0.0.1:$MOCK_PORT/v1/models"

ACCESS_LOG="access_log off;"
[ "${NGINX_ACCESS_LOG:-0}" = 1 ] && ACCESS_LOG="access_log $WORK/nginx-access.log combined buffer=64k flush=1s;"
nginx_conf "$WORK" "$MOCK_PORT" "$NGINX_PORT" "$ACCESS_LOG"
log "nginx on 127.0.0.1:$NGINX_PORT (worker_processes auto)"
"$NGINX" -e "$WORK/nginx-error.log" -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' \
    >"$RAW/nginx.out" 2>&1 &
NGINX_PID=$!
wait_http "http://127.0.0.1:$NGINX_PORT/v1/models"

DB=$WORK/flywheel.db
ADMIN_TOKEN=bench-$$
log "flywheel on 127.0.0.1:$FW_PORT (capture to $DB)"
FLYWHEEL_ADMIN_TOKEN=$ADMIN_TOKEN "$FW" serve --listen "127.0.0.1:$FW_PORT" \
    --upstream "http://127.0.0.1:$MOCK_PORT/v1" --db "$DB" >"$RAW/flywheel.log" 2>&1 &
FW_PID=$!
wait_http "http://127.0.0.1:$FW_PORT/metrics"

declare -A URL=(
    [direct]="http://127.0.0.1:$MOCK_PORT$CHAT_PATH"
    [nginx]="http://127.0.0.1:$NGINX_PORT$CHAT_PATH"
    [flywheel]="http://127.0.0.1:$FW_PORT$CHAT_PATH"
)
TARGETS=(direct nginx flywheel)

# ---- helpers -----------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
nginx_pids() { echo "$NGINX_PID" $(pgrep -P "$NGINX_PID" || true); }
proxy_pids() {
    case $1 in
        nginx) nginx_pids ;;
        flywheel) echo "$FW_PID" ;;
        *) echo ;;
    esac
}
cpu_ticks() { # sum of utime+stime (fields 14, 15 of /proc/PID/stat) over PIDs
    local total=0 pid u s
    for pid in "$@"; do
        read -r u s < <(proc_ticks "$pid"; echo) || true
        total=$((total + ${u:-0} + ${s:-0}))
    done
    echo "$total"
}
machine_ticks() { # "busy total" ticks over all CPUs, from the cpu line of /proc/stat
    awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit}' /proc/stat
}
hwm_kb() { # VmHWM (peak RSS) in kB, summed over PIDs
    local total=0 pid v
    for pid in "$@"; do
        v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
# The case being run sets these: oha's body arguments and any extra request headers.
BODY_ARGS=(-d "$BODY")
CASE_ARGS=()
oha_run() { # name outfile seconds [extra oha args...]; bounded by -z and timeout(1)
    local target=$1 out=$2 secs=$3
    shift 3
    timeout -k 5 $((secs + 60)) "$OHA" --no-tui --output-format json -z "${secs}s" -w -t 10s \
        -m POST -H 'content-type: application/json' "${BODY_ARGS[@]}" ${CASE_ARGS[@]+"${CASE_ARGS[@]}"} \
        "$@" "${URL[$target]}" >"$out" 2>"$out.err" || die "oha failed for $target (see $out.err)"
}

# ---- 4. measurements ---------------------------------------------------------
# Once a second (at most 15 min): flywheel's capture queue depth (from /metrics, cheap) and RSS,
# to tell a capture backlog from steady growth when reading the peak RSS.
(
    for _ in $(seq 900); do
        q=$(curl -s -m 1 "http://127.0.0.1:$FW_PORT/metrics" |
            awk '$1=="flywheel_capture_queue_depth" {print $2}') || true
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$FW_PID/status" 2>/dev/null) || break
        echo "$(date +%s) ${q:-?} $rss"
        sleep 1
    done
) >"$RAW/flywheel_samples.txt" 2>/dev/null &
SAMPLER_PID=$!
meta loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta clk_tck "$CLK_TCK"
meta nginx_processes "$(nginx_pids | wc -w)"

# a. closed loop, b. open loop. Each is split into ROUNDS slices and the targets take turns
# (order rotated every round), so a burst of background load hits all of them alike.
rotated() { # round -> the targets, rotated by round
    local r=$1 i n=${#TARGETS[@]}
    for i in $(seq 0 $((n - 1))); do echo "${TARGETS[$(((i + r) % n))]}"; done
}
capture_depth() { # flywheel's capture queue depth from /metrics (empty if it does not answer)
    curl -s -m 1 "http://127.0.0.1:$FW_PORT/metrics" |
        awk '$1=="flywheel_capture_queue_depth" {print $2}' || true
}
drain_capture() { # wait (at most 60 s) until flywheel's capture queue is empty
    local d
    for _ in $(seq 600); do
        d=$(capture_depth)
        [ -n "$d" ] && [ "$d" != 0 ] || return 0
        sleep 0.1
    done
    log "flywheel's capture queue still holds $d records after 60 s"
}
run_load() { # prefix label closed_seconds open_seconds: warm-up, closed and open loop of one case
    local p=$1 label=$2 duration=$3 open_duration=$4 r t pids before after mbefore mafter started
    for t in "${TARGETS[@]}"; do
        log "$label warm-up: $t (${WARMUP}s)"
        oha_run "$t" "$RAW/${p}warmup_$t.json" "$WARMUP" -c "$CONNS"
    done
    drain_capture
    local slice=$(((duration + ROUNDS - 1) / ROUNDS))
    for r in $(seq 1 "$ROUNDS"); do
        for t in $(rotated "$r"); do
            log "$label closed loop, round $r/$ROUNDS: $t, $CONNS connections, ${slice}s"
            pids=$(proxy_pids "$t")
            before=$(cpu_ticks $pids)
            mbefore=$(machine_ticks)
            oha_run "$t" "$RAW/${p}closed_${t}_$r.json" "$slice" -c "$CONNS"
            mafter=$(machine_ticks)
            if [ "$t" = flywheel ]; then
                # When the capture writer falls behind, the records left in its queue are work
                # for this turn's requests: wait for it so that it counts in flywheel's CPU per
                # request, and so that it does not eat into the next target's turn.
                started=$(date +%s%N)
                meta "${p}backlog_${t}_$r" "$(capture_depth)"
                drain_capture
                meta "${p}drain_ms_${t}_$r" "$((($(date +%s%N) - started) / 1000000))"
            fi
            after=$(cpu_ticks $pids)
            [ -z "$pids" ] || meta "${p}cpu_ticks_closed_${t}_$r" "$((after - before))"
            meta "${p}machine_busy_closed_${t}_$r" "$(echo $mbefore $mafter |
                awk '{b = $3 - $1; t = $4 - $2; printf "%.3f", t ? b / t : 0}')"
        done
    done
    local oslice=$(((open_duration + ROUNDS - 1) / ROUNDS))
    for r in $(seq 1 "$ROUNDS"); do
        for t in $(rotated "$r"); do
            log "$label open loop, round $r/$ROUNDS: $t, $OPEN_RATE req/s, $OPEN_CONNS connections, ${oslice}s"
            oha_run "$t" "$RAW/${p}open_${t}_$r.json" "$oslice" -c "$OPEN_CONNS" -q "$OPEN_RATE" \
                --latency-correction
            [ "$t" != flywheel ] || drain_capture
        done
    done
    meta "${p}duration" "$((slice * ROUNDS))"
    meta "${p}open_duration" "$((oslice * ROUNDS))"
}
stream_args=()
for t in "${TARGETS[@]}"; do stream_args+=("$t=${URL[$t]}"); done
run_stream() { # outfile requests warmup x-mock [stream_client body args...]: c. streaming
    local out=$1 requests=$2 warmup=$3 mock=$4
    shift 4
    timeout -k 5 300 python3 "$BENCH_DIR/stream_client.py" --requests "$requests" --warmup "$warmup" \
        --deadline 240 --header "x-mock: $mock" "$@" "${stream_args[@]}" \
        >"$out" 2>"${out%.json}.err" || die "streaming client failed (see ${out%.json}.err)"
}
reset_peak_rss() { # so that each case reports its own peak (VmHWM); best effort
    local pid
    for pid in $FW_PID $(nginx_pids); do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done
}
record_rss() { # prefix: peak RSS of flywheel and nginx so far
    meta "${1}rss_flywheel_kb" "$(hwm_kb "$FW_PID")"
    meta "${1}rss_nginx_kb" "$(hwm_kb $(nginx_pids))"
    meta "${1}rss_nginx_worker_max_kb" "$(for p in $(pgrep -P "$NGINX_PID"); do hwm_kb "$p"; done | sort -n | tail -1)"
}

for c in $CASES; do
    case $c in
    small)
        BODY_ARGS=(-d "$BODY"); CASE_ARGS=()
        run_load "" small "$DURATION" "$OPEN_DURATION"
        # c. streaming: one keep-alive connection per target, requests round-robin across targets
        log "small streaming: $STREAM_REQUESTS requests per target, x-mock: $STREAM_MOCK (round-robin over targets)"
        run_stream "$RAW/stream.json" "$STREAM_REQUESTS" 10 "$STREAM_MOCK" --body "$STREAM_BODY"
        if [ "$STREAM_CONTROL_REQUESTS" -gt 0 ]; then
            log "small streaming control: $STREAM_CONTROL_REQUESTS requests per target, client sends include_usage"
            run_stream "$RAW/stream_usage.json" "$STREAM_CONTROL_REQUESTS" 5 "$STREAM_MOCK" \
                --body "$STREAM_BODY_USAGE"
        fi
        meta stream_requests "$STREAM_REQUESTS"; meta stream_mock "$STREAM_MOCK"
        meta stream_control_requests "$STREAM_CONTROL_REQUESTS"
        ;;
    realistic)
        python3 "$BENCH_DIR/payloads.py" >"$WORK/bodies.jsonl"
        python3 "$BENCH_DIR/payloads.py" --stream >"$WORK/stream_bodies.jsonl"
        BODY_ARGS=(-Z "$WORK/bodies.jsonl"); CASE_ARGS=(-H "x-mock: $REAL_MOCK")
        run_load real_ realistic "$REAL_DURATION" "$REAL_OPEN_DURATION"
        log "realistic streaming: $REAL_STREAM_REQUESTS requests per target, x-mock: $REAL_STREAM_MOCK"
        run_stream "$RAW/real_stream.json" "$REAL_STREAM_REQUESTS" 6 "$REAL_STREAM_MOCK" \
            --body-file "$WORK/stream_bodies.jsonl"
        meta real_mock "$REAL_MOCK"; meta real_stream_mock "$REAL_STREAM_MOCK"
        meta real_stream_requests "$REAL_STREAM_REQUESTS"
        meta real_body_sizes "$(python3 "$BENCH_DIR/payloads.py" --sizes)"
        # One answer of each kind from the mock, to report their sizes.
        answer_bytes() { # bodies-file x-mock
            head -1 "$1" | curl -s -m 5 -H 'content-type: application/json' -H "x-mock: $2" \
                --data-binary @- "${URL[direct]}" -o /dev/null -w '%{size_download}' || true
        }
        meta real_answer_bytes "$(answer_bytes "$WORK/bodies.jsonl" "$REAL_MOCK")"
        meta real_stream_bytes "$(answer_bytes "$WORK/stream_bodies.jsonl" "$REAL_STREAM_MOCK")"
        ;;
    *) die "unknown case in CASES: $case (small, realistic)" ;;
    esac
    record_rss "${c}_"
    reset_peak_rss
    BODY_ARGS=(-d "$BODY"); CASE_ARGS=()
done
meta cases "$CASES"

# optional: profile flywheel under closed-loop load (not part of the table's numbers)
if [ "$PROFILE" = 1 ]; then
    log "profile: perf record on flywheel during ${DURATION}s of closed-loop load"
    # DWARF call graphs: the release build has debug info but no frame pointers.
    perf record -e cpu-clock -F 199 --call-graph dwarf,16384 -p "$FW_PID" -o "$RAW/perf.data" \
        -- sleep "$DURATION" >"$RAW/perf-record.log" 2>&1 &
    PERF_PID=$!
    oha_run flywheel "$RAW/profile_flywheel.json" "$DURATION" -c "$CONNS"
    wait "$PERF_PID" || true
    PERF_PID=
    {
        echo "# share of flywheel's CPU samples by thread"
        perf report -i "$RAW/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$'
        echo "# top functions by self time"
        perf report -i "$RAW/perf.data" --no-children --sort dso,symbol --stdio -g none \
            --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' | cut -c1-200 | head -50
    } >"$OUT/perf-top.txt" || true
    perf report -i "$RAW/perf.data" --children --sort symbol --stdio -g none --percent-limit 1 \
        2>/dev/null | grep -v '^#' | grep -v '^$' | grep -v '(inlined)' | cut -c1-200 | head -150 \
        >"$OUT/perf-children.txt" || true
fi

meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"

# e. peak RSS (before SIGTERM)
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=
meta max_queue_depth "$(awk '$2 != "?" {print $2}' "$RAW/flywheel_samples.txt" | sort -n | tail -1)"
meta rss_flywheel_now "$(awk '/^(RssAnon|RssFile|RssShmem):/ {printf "%s %d; ", $1, $2/1024}' "/proc/$FW_PID/status")"

# d. capture check
curl -s -m 5 "http://127.0.0.1:$FW_PORT/metrics" >"$RAW/flywheel_metrics.txt" || true
curl -s -m 5 -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$FW_PORT/admin/v1/stats" \
    >"$RAW/flywheel_stats_before_sigterm.json" || true
meta dropped_total "$(awk '$1=="flywheel_capture_dropped_total" {print $2}' "$RAW/flywheel_metrics.txt")"
log "SIGTERM to flywheel, waiting for it to drain"
kill -TERM "$FW_PID"
fw_rc=timeout
for _ in $(seq 600); do
    if ! kill -0 "$FW_PID" 2>/dev/null; then
        fw_rc=0; wait "$FW_PID" || fw_rc=$?
        break
    fi
    sleep 0.1
done
meta flywheel_exit "$fw_rc"
[ "$fw_rc" = timeout ] || FW_PID=
meta captured "$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM interactions").fetchone()[0])' "$DB")"

# machine and versions
meta nproc "$(nproc)"
meta cpu_model "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
meta kernel "$(uname -sr)"
meta nginx_version "$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')"
meta oha_version "$("$OHA" --version | awk '{print $2}')"
if [ -n "${FW_BIN:-}" ]; then
    meta flywheel_commit "binary $FW_BIN (checkout at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown))"
else
    meta flywheel_commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo '+dirty')"
fi
meta flywheel_built "$(date -u -r "$FW" +%Y-%m-%dT%H:%M:%SZ)"
meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta rounds "$ROUNDS"; meta conns "$CONNS"
meta open_rate "$OPEN_RATE"; meta open_conns "$OPEN_CONNS"

# ---- 5. report ---------------------------------------------------------------
python3 "$BENCH_DIR/report.py" "$RAW" | tee "$OUT/results.md"
log "written to $OUT/results.md (raw data in $RAW)"
