#!/usr/bin/env bash
# An evaluation of 1,000 examples x 2 versions against the mock upstream at
# concurrency 16 (each call answered in DELAY_MS, 80 by default): its wall
# time, and the live path's p99 (open loop, 1000 req/s, SECS seconds) while
# it runs, beside the same load with no evaluation running, in one run.
#
#   bench/eval.sh                 (FW_BIN=path to use a built binary)
#
# Needs oha (bench/run.sh installs it; TOOLS as there).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
OHA=${TOOLS:-$BENCH_DIR/.tools}/bin/oha
[ -x "$OHA" ] || { echo "oha missing: run bench/run.sh once to install it" >&2; exit 2; }
FW=${FW_BIN:-$REPO/target/release/flywheel}
[ -n "${FW_BIN:-}" ] || (cd "$REPO" && cargo build --release --quiet)
EXAMPLES=${EXAMPLES:-1000}
CONCURRENCY=${CONCURRENCY:-16}
SECS=${SECS:-5}
# How long the mock takes to answer an evaluation call, like a model would;
# the live load goes to a model that is no route, answered at once, so its
# p99 is the gateway's.
DELAY_MS=${DELAY_MS:-80}

W=$(mktemp -d /tmp/flywheel-eval.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
MOCK_PORT=$(free_port); PORT=$(free_port)
export FLYWHEEL_LOG=warn FLYWHEEL_ADMIN_TOKEN=bench FLYWHEEL_URL="http://127.0.0.1:$PORT"
cat >"$W/flywheel.toml" <<TOML
[upstream]
url = "http://127.0.0.1:$MOCK_PORT/v1"
[capture]
db = "$W/flywheel.db"
[[routes]]
name = "bot"
[[routes.versions]]
name = "v1"
upstream = "http://127.0.0.1:$MOCK_PORT/v1"
upstream_model = "mock:prose=600,delay_ms=${DELAY_MS}"
[[routes.versions]]
name = "v2"
upstream = "http://127.0.0.1:$MOCK_PORT/v1"
upstream_model = "mock:prose=700,delay_ms=${DELAY_MS}"
[[routes.scorers]]
name = "similar"
kind = "rouge_l"
[[routes.scorers]]
name = "f1"
kind = "token_f1"
[routes.gate]
primary = "similar"
TOML
"$FW" mock-upstream --listen "127.0.0.1:$MOCK_PORT" >"$W/mock.log" 2>&1 &
"$FW" serve --config "$W/flywheel.toml" --listen "127.0.0.1:$PORT" >"$W/gw.log" 2>&1 &
for p in $MOCK_PORT $PORT; do
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$p/healthz" && break; sleep 0.1; done
done

# Twice the examples as distinct captured questions; half go to the eval split.
python3 - "$PORT" "$((EXAMPLES * 2))" <<'PY'
import http.client, json, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
def send(part):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(part, n, 32):
        body = json.dumps({"model": "bot", "messages": [
            {"role": "system", "content": "You are the support assistant of Example Corp."},
            {"role": "user", "content": f"Question {i}: how do I configure feature {i * 7919 % 10007} for team {i}?"}]})
        c.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
        c.getresponse().read()
threads = [threading.Thread(target=send, args=(k,)) for k in range(32)]
for t in threads: t.start()
for t in threads: t.join()
PY
sleep 1
DS=$(curl -s -X POST "$FLYWHEEL_URL/admin/v1/datasets" -H "authorization: Bearer bench" \
    -H 'content-type: application/json' \
    -d '{"spec":{"route":"bot","split":{"eval_ratio":0.5},"dedupe":{"near":false}}}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

BODY='{"model":"live","messages":[{"role":"user","content":"hello"}]}'
load() { # seconds -> p99 ms of the live path at 1000 req/s
    "$OHA" --no-tui --output-format json -z "${1}s" -q 1000 -c 50 -m POST \
        -H 'content-type: application/json' -d "$BODY" "$FLYWHEEL_URL/v1/chat/completions" |
        python3 -c 'import json,sys; print(round(json.load(sys.stdin)["latencyPercentiles"]["p99"]*1000, 3))'
}
quiet=$(load "$SECS")
(
    start=$(date +%s.%N)
    "$FW" eval run --route bot --candidate v2 --dataset "$DS" --limit "$EXAMPLES" \
        --concurrency "$CONCURRENCY" --json >"$W/eval.json" 2>"$W/eval.err" || true
    python3 -c "import time; print(round(time.time() - $start, 2))" >"$W/eval.secs"
) &
EVAL=$!
busy=$(load "$SECS")
wait $EVAL
n=$(python3 -c "import json; print(json.load(open('$W/eval.json'))['summary']['examples'])")
echo "evaluation: $n examples x 2 versions, concurrency $CONCURRENCY: $(cat "$W/eval.secs") s wall"
echo "live path p99 at 1000 req/s, ${SECS} s each: ${quiet} ms with no evaluation, ${busy} ms while one ran" \
    "(added $(python3 -c "print(round($busy - $quiet, 3))") ms)"
