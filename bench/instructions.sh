#!/usr/bin/env bash
# Instructions the gateway executes per request, counted by valgrind's
# callgrind: repeatable to a fraction of a percent, unlike wall-clock runs on a
# shared machine, so it is the way to A/B a change meant to be faster.
#
#   bench/instructions.sh                 # current target/release/flywheel
#   B=/tmp/other-build bench/instructions.sh
#   ENVX="env FLYWHEEL_PRIVACY_REDACT=false" bench/instructions.sh
#
# It runs N1 and then N2 requests (small non-streaming chat, 4 connections) and
# prints (Ir(N2) - Ir(N1)) / (N2 - N1): the per-request cost without startup.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-target/release/flywheel}
OHA=${OHA:-bench/.tools/bin/oha}
N1=${N1:-2000}
N2=${N2:-6000}
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
[ -x "$OHA" ] || { echo "oha missing: run bench/run.sh once to install it" >&2; exit 2; }
[ -x "$B" ] || cargo build --release --locked

count() {
  local n=$1 dir
  dir=$(mktemp -d)
  "$B" mock-upstream --listen 127.0.0.1:19300 >/dev/null 2>&1 & local mock=$!
  FLYWHEEL_LOG=warn ${ENVX:-} valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" \
    "$B" serve --listen 127.0.0.1:19301 --upstream http://127.0.0.1:19300/v1 --db "$dir/f.db" \
    >/dev/null 2>"$dir/vg.log" & local gw=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:19301/healthz && break; sleep 0.3; done
  "$OHA" -n "$n" -c 4 -m POST -H 'content-type: application/json' \
    -d '{"model":"m","messages":[{"role":"user","content":"hello"}]}' --no-tui \
    http://127.0.0.1:19301/v1/chat/completions >/dev/null
  kill -TERM "$gw"; wait "$gw" || true
  kill "$mock"; wait "$mock" 2>/dev/null || true
  grep -E '^(summary|totals):' "$dir/cg.out" | head -1 | awk '{print $2}'
  rm -rf "$dir"
}

a=$(count "$N1")
b=$(count "$N2")
echo "instructions per request: $(( (b - a) / (N2 - N1) ))  (Ir $N1 req: $a, $N2 req: $b)"
