#!/usr/bin/env python3
"""Hostile traffic against a running service on 127.0.0.1 (used by scripts/fuzz.sh).

Junk methods, paths and headers; header floods (too many, too large); slow clients that never
finish their headers while a normal client is timed. Bounded in count and time, loopback only.
Prints what it measured (requests, /metrics series, RSS, fds) and exits non-zero on any 5xx, a
crash, a starved client or a slow client the service did not close.
Usage: hostile_traffic.py PORT PID HEADER_TIMEOUT_SECONDS
"""
import os
import random
import socket
import string
import sys
import time

port, pid, header_timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
rnd = random.Random(14)
failures = []


def junk(n):
    return "".join(rnd.choice(string.ascii_uppercase) for _ in range(n))


def exchange(raw, timeout=10):
    """Sends raw bytes on a new connection; returns the status code, or 0 if closed unanswered."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def rss_kb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds():
    return len(os.listdir(f"/proc/{pid}/fd"))


def series():
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    body = data.split(b"\r\n\r\n", 1)[-1].decode()
    return sum(1 for line in body.splitlines() if line and not line.startswith("#"))


def check(kind, status, allowed):
    if status not in allowed:
        failures.append(f"{kind}: answered {status}")


sent = 0


def junk_request():
    method = junk(rnd.randint(1, 200))
    return f"{method} /{junk(30)}?{junk(10)}={junk(50)} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-{junk(20)}: {junk(200)}\r\nConnection: close\r\n\r\n"


# Warm up: every label combination junk can reach exists before the series are counted.
for _ in range(200):
    check("junk method", exchange(junk_request().encode()), range(400, 500))
    sent += 1
series()
series_before, rss_before = series(), rss_kb()
for _ in range(2000):
    check("junk method", exchange(junk_request().encode()), range(400, 500))
    sent += 1
for _ in range(100):
    many = "".join(f"X-{junk(8)}: {junk(20)}\r\n" for _ in range(150))
    check("150 headers", exchange(f"GET /items HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}\r\n".encode()), (0, 431))
    huge = f"X-Huge: {junk(100_000)}\r\n"
    check("100 kB header", exchange(f"GET /items HTTP/1.1\r\nHost: 127.0.0.1\r\n{huge}\r\n".encode()), (0, 431))
    sent += 2
series_after, rss_after = series(), rss_kb()

fds_before = fds()
slow = []
for _ in range(500):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    slow.append(s)
fds_peak = fds()
started = time.time()
status = exchange(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
waited = time.time() - started
check("normal client beside slow ones", status, (200,))
if waited > 0.5:
    failures.append(f"the normal client waited {waited:.2f}s beside 500 slow clients")
deadline = time.time() + header_timeout + 5
still_open = 0
for s in slow:
    s.settimeout(max(0.01, deadline - time.time()))
    try:
        if s.recv(1):
            still_open += 1
    except socket.timeout:
        still_open += 1
    except OSError:
        pass
    s.close()
if still_open:
    failures.append(f"{still_open} of 500 slow clients still open {header_timeout + 5:.0f}s later")

print(f"hostile traffic: {sent} junk/flood requests; /metrics series {series_before} -> {series_after}; "
      f"RSS {rss_before} kB -> {rss_after} kB; 500 slow clients: fds {fds_before} -> {fds_peak} at the peak, "
      f"normal client answered in {waited * 1000:.1f} ms, {500 - still_open} closed by the header timeout")
if series_after != series_before:
    failures.append(f"/metrics series grew from {series_before} to {series_after}")
for failure in failures[:20]:
    print("FAIL:", failure, file=sys.stderr)
sys.exit(1 if failures else 0)
