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
# prints (Ir(N2) - Ir(N1)) / (N2 - N1): the per-request cost without startup,
# in all and split between the serving threads and the capture writer. The
# serving threads' count repeats within a few hundred instructions; the
# writer's moves by a few thousand with the size of its batches (a commit
# costs as much as many rows), which follows the machine's timing, so judge a
# writer change by several runs or by examples/insert_bench.
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
  FLYWHEEL_LOG=warn ${ENVX:-} valgrind --tool=callgrind --separate-threads=yes \
    --callgrind-out-file="$dir/cg.out" \
    "$B" serve --listen 127.0.0.1:19301 --upstream http://127.0.0.1:19300/v1 --db "$dir/f.db" \
    >/dev/null 2>"$dir/vg.log" & local gw=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:19301/healthz && break; sleep 0.3; done
  "$OHA" -n "$n" -c 4 -m POST -H 'content-type: application/json' \
    -d '{"model":"m","messages":[{"role":"user","content":"hello"}]}' --no-tui \
    http://127.0.0.1:19301/v1/chat/completions >/dev/null
  kill -TERM "$gw"; wait "$gw" || true
  kill "$mock"; wait "$mock" 2>/dev/null || true
  # One file per thread: the writer's is the one that ran the writer loop.
  local f t serving=0 writer=0
  for f in "$dir"/cg.out-*; do
    t=$(grep -E '^(summary|totals):' "$f" | head -1 | awk '{print $2}')
    if grep -q 'capture::writer::Writer::run' "$f"; then
      writer=$((writer + t))
    else
      serving=$((serving + t))
    fi
  done
  echo "$serving $writer"
  rm -rf "$dir"
}

read -r sa wa < <(count "$N1")
read -r sb wb < <(count "$N2")
per() { echo $(( ($2 - $1) / (N2 - N1) )); }
echo "instructions per request: $(per $((sa + wa)) $((sb + wb)))  (serving threads $(per "$sa" "$sb"), capture writer $(per "$wa" "$wb"))"
