#!/usr/bin/env bash
# Closed-loop A/B of two flywheel builds beside nginx, in one run: the mock
# upstream (from build A), nginx as a plain reverse proxy and the two gateways
# take turns under the same load, and each is reported against nginx with its
# CPU per request (user and system) and the mock's. On a shared machine this
# is the way to tell whether a change helps: runs drift by 10% and more, the
# ratios within one run much less.
#
#   bench/ab.sh BUILD_A BUILD_B [ROUNDS] [SECONDS]     (defaults 3 rounds of 4 s)
#   AENV=FLYWHEEL_SERVER_WORKERS=1 bench/ab.sh target/release/flywheel target/release/flywheel
#   KEEPALIVE=0 bench/ab.sh A B                        (a new connection per request)
#
#   REALISTIC=1 bench/ab.sh A B                        (1-4 KB chat bodies from
#                                                       bench/payloads.py, answers of
#                                                       ~900 characters, as bench/run.sh)
#
# AENV / BENV: one NAME=value set in that gateway's environment. Needs nginx
# and oha (bench/run.sh installs both; TOOLS as there).
set -uo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
A=${1:?usage: bench/ab.sh BUILD_A BUILD_B [ROUNDS] [SECONDS]}
B=${2:?usage: bench/ab.sh BUILD_A BUILD_B [ROUNDS] [SECONDS]}
ROUNDS=${3:-3}
SECS=${4:-4}
CONNS=${CONNS:-32}
OHA=${TOOLS:-$BENCH_DIR/.tools}/bin/oha
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[ -x "$OHA" ] || { echo "oha missing: run bench/run.sh once to install it" >&2; exit 2; }
[ -x "$NGINX" ] || { echo "nginx missing: run bench/run.sh once to install it" >&2; exit 2; }
KEEP=()
[ "${KEEPALIVE:-1}" = 0 ] && KEEP=(--disable-keepalive)

W=$(mktemp -d /tmp/flywheel-ab.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
MOCK_PORT=$(free_port); NGINX_PORT=$(free_port); A_PORT=$(free_port); B_PORT=$(free_port)
BODY_ARGS=(-d '{"model":"m","messages":[{"role":"user","content":"hello"}]}')
if [ "${REALISTIC:-0}" = 1 ]; then
    python3 "$BENCH_DIR/payloads.py" >"$W/bodies.jsonl"
    BODY_ARGS=(-Z "$W/bodies.jsonl" -H "x-mock: ${REAL_MOCK:-prose=900,usage_details}")
fi
export FLYWHEEL_LOG=warn

"$A" mock-upstream --listen "127.0.0.1:$MOCK_PORT" >"$W/mock.log" 2>&1 &
MOCK=$!
nginx_conf "$W" "$MOCK_PORT" "$NGINX_PORT"
"$NGINX" -e "$W/nginx-error.log" -p "$W" -c "$W/nginx.conf" -g 'daemon off;' &
NG=$!
env ${AENV:+"$AENV"} "$A" serve --listen "127.0.0.1:$A_PORT" --upstream "http://127.0.0.1:$MOCK_PORT/v1" --db "$W/a.db" >"$W/a.log" 2>&1 &
PA=$!
env ${BENV:+"$BENV"} "$B" serve --listen "127.0.0.1:$B_PORT" --upstream "http://127.0.0.1:$MOCK_PORT/v1" --db "$W/b.db" >"$W/b.log" 2>&1 &
PB=$!
for p in $MOCK_PORT $NGINX_PORT $A_PORT $B_PORT; do
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$p/v1/models" && break; sleep 0.1; done
done

declare -A PORT=([nginx]=$NGINX_PORT [A]=$A_PORT [B]=$B_PORT)
declare -A PID=([nginx]=$NG [A]=$PA [B]=$PB)
declare -A REQ USR SYS MOCKCPU
# user and system clock ticks of a process and its children (nginx's workers)
ticks() {
    local u=0 s=0 q uu ss
    for q in $1 $(pgrep -P "$1"); do
        read -r uu ss < <(proc_ticks "$q"; echo) || true
        u=$((u + ${uu:-0})); s=$((s + ${ss:-0}))
    done
    echo "$u $s"
}
load() { # url seconds -> requests answered
    "$OHA" --no-tui --output-format json -z "${2}s" -c "$CONNS" "${KEEP[@]}" -m POST \
        -H 'content-type: application/json' "${BODY_ARGS[@]}" "$1" |
        python3 -c 'import json,sys; print(sum(json.load(sys.stdin)["statusCodeDistribution"].values()))'
}
for t in nginx A B; do
    load "http://127.0.0.1:${PORT[$t]}/v1/chat/completions" 1 >/dev/null
    REQ[$t]=0; USR[$t]=0; SYS[$t]=0; MOCKCPU[$t]=0
done
for r in $(seq "$ROUNDS"); do
    for t in nginx A B; do
        read -r u0 s0 < <(ticks "${PID[$t]}"); read -r mu0 ms0 < <(ticks "$MOCK")
        n=$(load "http://127.0.0.1:${PORT[$t]}/v1/chat/completions" "$SECS")
        read -r u1 s1 < <(ticks "${PID[$t]}"); read -r mu1 ms1 < <(ticks "$MOCK")
        REQ[$t]=$((REQ[$t] + n)); USR[$t]=$((USR[$t] + u1 - u0)); SYS[$t]=$((SYS[$t] + s1 - s0))
        MOCKCPU[$t]=$((MOCKCPU[$t] + mu1 - mu0 + ms1 - ms0))
        echo "round $r $t: $((n / SECS)) req/s" >&2
    done
done
tick=$(getconf CLK_TCK)
for t in nginx A B; do
    python3 - "$t" "${REQ[$t]}" "${REQ[nginx]}" "${USR[$t]}" "${SYS[$t]}" "${MOCKCPU[$t]}" "$tick" "$((ROUNDS * SECS))" <<'EOF'
import sys
t, n, ng, u, s, m, tick, secs = sys.argv[1], *map(int, sys.argv[2:])
us = lambda ticks: ticks * 1e6 / tick / max(n, 1)
print(f"{t:6} {n / secs:8.0f} req/s  {n / max(ng, 1):.3f}x nginx  "
      f"cpu {us(u + s):5.1f} us/req (user {us(u):.1f}, sys {us(s):.1f})  mock {us(m):.1f} us/req")
EOF
done
