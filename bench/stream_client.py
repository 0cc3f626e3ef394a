#!/usr/bin/env python3
"""Streaming latency client for bench/run.sh (stdlib only).

Keeps one HTTP/1.1 keep-alive connection per target and sends the same
streaming chat request to every target in turn (round-robin), so the targets
see the same machine noise. For each request it records:

  ttfb  - from the last byte of the request written to the first byte of the
          response *body* (the first SSE event), in ms;
  total - from the same start to the end of the body (chunked terminator or
          Content-Length reached), in ms.

Usage: stream_client.py --requests N --warmup W --header 'x-mock: ...' \
           (--body JSON | --body-file FILE) NAME=http://127.0.0.1:PORT/path [NAME=URL ...]
With --body-file (one body per line) the rounds take the lines in turn, every
target getting the same body within a round.
Prints one JSON object: {NAME: {"ok": answered, "errors": n, "ttfb": [...], "total": [...]}}.
The whole run is bounded by --deadline seconds.
"""

import argparse
import json
import socket
import sys
import time
from urllib.parse import urlsplit


class Conn:
    def __init__(self, host, port, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = None
        self.buf = b""

    def connect(self):
        self.close()
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed by peer")
        self.buf += data

    def _read_line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def request(self, raw):
        """Sends raw bytes, returns (status, ttfb_s, total_s, keep_alive)."""
        if self.sock is None:
            self.connect()
        self.sock.sendall(raw)
        t0 = time.perf_counter()
        status_line = self._read_line()
        status = int(status_line.split()[1])
        headers = {}
        while True:
            line = self._read_line()
            if not line:
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        keep_alive = headers.get("connection", "").lower() != "close"
        t_first = None
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self._read_line().split(b";")[0], 16)
                if size == 0:
                    # trailers until the empty line
                    while self._read_line():
                        pass
                    break
                if t_first is None:
                    # the chunk-size line arrived together with its first data bytes
                    # (or right before them); count the first byte of chunk data
                    if not self.buf:
                        self._fill()
                    t_first = time.perf_counter()
                self._read_exact(size)
                self._read_line()
        elif "content-length" in headers:
            n = int(headers["content-length"])
            if n:
                if not self.buf:
                    self._fill()
                t_first = time.perf_counter()
                self._read_exact(n)
        else:
            # read to close
            keep_alive = False
            try:
                while True:
                    if not self.buf:
                        self._fill()
                    if t_first is None:
                        t_first = time.perf_counter()
                    self.buf = b""
            except ConnectionError:
                pass
        t_end = time.perf_counter()
        if t_first is None:
            t_first = t_end
        return status, t_first - t0, t_end - t0, keep_alive


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--header", action="append", default=[])
    bodies = p.add_mutually_exclusive_group(required=True)
    bodies.add_argument("--body")
    bodies.add_argument("--body-file")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--deadline", type=float, default=180.0)
    p.add_argument("targets", nargs="+")
    a = p.parse_args()

    if a.body_file:
        with open(a.body_file, "rb") as f:
            bodies = [line.rstrip(b"\r\n") for line in f if line.strip()]
    else:
        bodies = [a.body.encode()]
    targets = []
    for spec in a.targets:
        name, _, url = spec.partition("=")
        u = urlsplit(url)
        raws = []
        for body in bodies:
            head = (
                f"POST {u.path or '/'} HTTP/1.1\r\n"
                f"Host: {u.hostname}:{u.port}\r\n"
                "Content-Type: application/json\r\n"
                "Accept: text/event-stream\r\n"
                f"Content-Length: {len(body)}\r\n"
            )
            for h in a.header:
                head += h + "\r\n"
            raws.append((head + "\r\n").encode() + body)
        targets.append((name, Conn(u.hostname, u.port, a.timeout), raws))

    res = {name: {"ok": 0, "errors": 0, "non2xx": 0, "ttfb": [], "total": []} for name, _, _ in targets}
    stop_at = time.monotonic() + a.deadline
    for i in range(a.warmup + a.requests):
        if time.monotonic() > stop_at:
            print(f"stream_client: deadline reached after {i} rounds", file=sys.stderr)
            break
        for name, conn, raws in targets:
            r = res[name]
            try:
                status, ttfb, total, keep = conn.request(raws[i % len(raws)])
            except (OSError, ValueError, IndexError) as e:
                r["errors"] += 1
                print(f"stream_client: {name}: {e!r}", file=sys.stderr)
                conn.close()
                continue
            r["ok"] += 1
            if not 200 <= status < 300:
                r["non2xx"] += 1
            if not keep:
                conn.close()
            if i >= a.warmup:
                r["ttfb"].append(ttfb * 1000.0)
                r["total"].append(total * 1000.0)
    for _, conn, _ in targets:
        conn.close()
    json.dump(res, sys.stdout)
    print()


if __name__ == "__main__":
    main()
