#!/usr/bin/env python3
"""Peak memory of the gateway under three attacks on its buffers.

Each attack runs against a fresh `flywheel serve` (release build) in front of
a small upstream served by this script, with one client key configured:

  bodies     30 connections without a key, each announcing a 10 MiB body
             (the default limit) and sending all of it but its last byte
  h2         one h2c connection (prior knowledge) carrying --streams (20)
             streams of 10 MiB bodies each, with a valid key
  responses  two concurrent embeddings calls whose upstream answers 400 MiB
             of JSON each, read by the client at full speed

For each it prints the gateway's VmHWM (peak RSS) before and after the attack
and its VmRSS a few seconds later, read from /proc. Standard library only.

    cargo build --release
    python3 bench/memory.py [--flywheel target/release/flywheel] [bodies h2 responses]
"""

import argparse
import hashlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = "bench-memory-key"
MIB = 1024 * 1024
BODY = 10 * MIB - 1
RESPONSE = 400 * MIB


class Upstream(BaseHTTPRequestHandler):
    """Reads any request whole; answers embeddings with RESPONSE bytes of
    JSON written in blocks, anything else with a small chat completion."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        while n > 0:
            n -= len(self.rfile.read(min(n, MIB)))
        if self.path.endswith("/embeddings"):
            head = b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":"'
            tail = b'"}],"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(RESPONSE))
            self.end_headers()
            self.wfile.write(head)
            left = RESPONSE - len(head) - len(tail)
            block = b"A" * MIB
            try:
                while left > 0:
                    chunk = block[: min(left, MIB)]
                    self.wfile.write(chunk)
                    left -= len(chunk)
                self.wfile.write(tail)
            except OSError:
                pass
            return
        body = (
            b'{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,'
            b'"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],'
            b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
        )
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) // 1024
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Gateway:
    def __init__(self, binary, upstream_port, workdir):
        self.port = free_port()
        key_hash = hashlib.sha256(KEY.encode()).hexdigest()
        cfg = os.path.join(workdir, "flywheel.toml")
        with open(cfg, "w") as f:
            f.write(
                f'[server]\nlisten = "127.0.0.1:{self.port}"\n'
                f'[upstream]\nurl = "http://127.0.0.1:{upstream_port}/v1"\n'
                f'[capture]\ndb = "{workdir}/flywheel.db"\n'
                f'[[auth.keys]]\nname = "bench"\nsha256 = "{key_hash}"\n'
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
        env["FLYWHEEL_LOG"] = "warn"
        self.proc = subprocess.Popen(
            [binary, "serve", "-c", cfg],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(workdir, "flywheel.log"), "w"),
        )
        for _ in range(200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("flywheel did not start")
        # A few ordinary calls first, so the baseline is a warm gateway.
        for _ in range(20):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            c.request(
                "POST",
                "/v1/chat/completions",
                body=b'{"model":"m","messages":[{"role":"user","content":"hi"}]}',
                headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
            )
            c.getresponse().read()

    def status(self):
        return status(self.proc.pid)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def attack_bodies(port):
    """30 unauthenticated connections, each announcing 10 MiB and sending
    all but the last byte (a gateway that reads bodies before it checks the
    key holds them until its body timeout)."""
    answers = []

    def one():
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n"
            f"content-type: application/json\r\ncontent-length: {BODY + 1}\r\n\r\n".encode()
        )
        block = b"a" * (64 * 1024)
        sent = 0
        try:
            while sent < BODY:
                n = min(len(block), BODY - sent)
                s.sendall(block[:n])
                sent += n
        except OSError:
            pass
        try:
            s.settimeout(70)
            answers.append(s.recv(64).split(b"\r\n")[0].decode(errors="replace"))
        except OSError as e:
            answers.append(f"error {e}")
        s.close()

    threads = [threading.Thread(target=one) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summarize(answers)


def hpack_int(n, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if n < limit:
        return bytes([first | n])
    out = [first | limit]
    n -= limit
    while n >= 128:
        out.append((n & 127) | 128)
        n >>= 7
    out.append(n)
    return bytes(out)


def hpack_literal(name, value):
    """A header as a literal without indexing, with a literal name."""
    name, value = name.encode(), value.encode()
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def classify(body):
    """What an answer was, told by its body (no HPACK decoder needed)."""
    for needle, label in [
        (b"chat.completion", "200"), (b'"overloaded"', "503 overloaded"),
        (b"payload_too_large", "413"), (b"invalid_api_key", "401"),
    ]:
        if needle in body:
            return label
    return "other"


def attack_h2(port, streams):
    """One h2c connection, `streams` streams of 10 MiB bodies each, sent as
    fast as HTTP/2 flow control lets them (a small client of its own)."""
    s = socket.create_connection(("127.0.0.1", port))
    lock = threading.Condition()
    state = {"conn": 65535, "initial": 65535, "window": {}, "body": {}, "done": set()}

    def frame(kind, flags, stream, payload=b""):
        return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload

    def send(data):
        with lock:
            s.sendall(data)

    def read_exact(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def reader():
        try:
            while True:
                head = read_exact(9)
                length, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
                stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                payload = read_exact(length)
                with lock:
                    if kind == 4 and not flags & 1:  # SETTINGS
                        for i in range(0, len(payload), 6):
                            ident = int.from_bytes(payload[i : i + 2], "big")
                            value = int.from_bytes(payload[i + 2 : i + 6], "big")
                            if ident == 4:
                                delta = value - state["initial"]
                                state["initial"] = value
                                for k in state["window"]:
                                    state["window"][k] += delta
                        s.sendall(frame(4, 1, 0))
                    elif kind == 8:  # WINDOW_UPDATE
                        inc = int.from_bytes(payload, "big") & 0x7FFFFFFF
                        if stream == 0:
                            state["conn"] += inc
                        elif stream in state["window"]:
                            state["window"][stream] += inc
                    elif kind == 1 and flags & 1:  # HEADERS ending the stream
                        state["done"].add(stream)
                    elif kind == 0:  # DATA
                        state["body"][stream] = state["body"].get(stream, b"") + payload[:4096]
                        if flags & 1:
                            state["done"].add(stream)
                    elif kind == 3:  # RST_STREAM
                        state["done"].add(stream)
                    elif kind == 6 and not flags & 1:  # PING
                        s.sendall(frame(6, 1, 0, payload))
                    elif kind == 7:  # GOAWAY
                        raise EOFError
                    if kind == 0 and length:
                        # Take responses as fast as they come.
                        s.sendall(frame(8, 0, 0, length.to_bytes(4, "big")))
                        s.sendall(frame(8, 0, stream, length.to_bytes(4, "big")))
                    lock.notify_all()
        except (EOFError, OSError):
            with lock:
                state["closed"] = True
                lock.notify_all()

    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0))
    threading.Thread(target=reader, daemon=True).start()
    body = b'{"model":"m","messages":[{"role":"user","content":"' + b"a" * (BODY - 100) + b'"}]}'
    ids = [1 + 2 * i for i in range(streams)]
    sent = {}
    for sid in ids:
        block = b"".join(
            hpack_literal(k, v)
            for k, v in [
                (":method", "POST"), (":scheme", "http"), (":path", "/v1/chat/completions"),
                (":authority", f"127.0.0.1:{port}"), ("authorization", f"Bearer {KEY}"),
                ("content-type", "application/json"), ("content-length", str(len(body))),
            ]
        )
        with lock:
            state["window"][sid] = state["initial"]
        send(frame(1, 4, sid, block))
        sent[sid] = 0
    deadline = time.time() + 300
    while time.time() < deadline:
        with lock:
            if state.get("closed"):
                break
            live = [i for i in ids if i not in state["done"] and sent[i] < len(body)]
            if not live:
                break
            ready = [i for i in live if state["window"][i] > 0]
            if not ready or state["conn"] <= 0:
                lock.wait(1)
                continue
            for sid in ready:
                n = min(16384, state["window"][sid], state["conn"], len(body) - sent[sid])
                if n <= 0:
                    continue
                end = sent[sid] + n == len(body)
                s.sendall(frame(0, 1 if end else 0, sid, body[sent[sid] : sent[sid] + n]))
                sent[sid] += n
                state["window"][sid] -= n
                state["conn"] -= n
    with lock:
        while len(state["done"]) < streams and not state.get("closed") and time.time() < deadline:
            lock.wait(1)
        answers = [classify(state["body"].get(i, b"")) for i in ids]
    s.close()
    return summarize(answers)


def attack_responses(port):
    """Two concurrent embeddings calls answered with 400 MiB each."""
    answers = []

    def one():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request(
            "POST",
            "/v1/embeddings",
            body=b'{"model":"m","input":"x"}',
            headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
        )
        r = c.getresponse()
        n = 0
        while True:
            chunk = r.read(MIB)
            if not chunk:
                break
            n += len(chunk)
        answers.append(f"{r.status} {n // MIB} MiB")

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summarize(answers)


def summarize(answers):
    counts = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    return ", ".join(f"{n}× {a}" for a, n in sorted(counts.items()))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    default_bin = os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(here, "..", "target")), "release", "flywheel"
    )
    p.add_argument("--flywheel", default=default_bin)
    p.add_argument("--streams", type=int, default=20, help="h2 streams (default 20)")
    p.add_argument("--settle", type=float, default=5.0, help="seconds before VmRSS is read after")
    p.add_argument("attacks", nargs="*", default=["bodies", "h2", "responses"])
    args = p.parse_args()

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    upstream.daemon_threads = True
    threading.Thread(target=upstream.serve_forever, daemon=True).start()

    print("| attack | answers | VmHWM before (MB) | VmHWM peak (MB) | VmRSS after (MB) |")
    print("|---|---|---|---|---|")
    for name in args.attacks:
        with tempfile.TemporaryDirectory() as work:
            gw = Gateway(args.flywheel, upstream.server_address[1], work)
            try:
                before = gw.status()["VmHWM"]
                if name == "bodies":
                    answers = attack_bodies(gw.port)
                elif name == "h2":
                    answers = attack_h2(gw.port, args.streams)
                elif name == "responses":
                    answers = attack_responses(gw.port)
                else:
                    raise SystemExit(f"unknown attack {name}")
                peak = gw.status()["VmHWM"]
                time.sleep(args.settle)
                after = gw.status()["VmRSS"]
            finally:
                gw.stop()
            print(f"| {name} | {answers} | {before} | {peak} | {after} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
