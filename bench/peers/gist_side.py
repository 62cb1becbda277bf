# One side of a benchmark run with the gist's Python Channel (see bench/side.mjs for the protocol).
#   python3 bench/peers/gist_side.py <recv|send> '<workload json>' [port]
import json
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gist_channel import Channel  # noqa: E402


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def pct(xs, p):
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def main():
    role, ctx = sys.argv[1], json.loads(sys.argv[2])
    count, size = ctx["count"], ctx["size"]
    if role == "recv":
        ch = next(Channel.listen("127.0.0.1", 0, on_listen=lambda p: out("READY %d" % p)))
        ch.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ctx["kind"] == "pingpong":
            for _ in range(count + ctx["warmup"]):
                ch.send(ch.recv())
            result = {}
        else:
            n = nbytes = 0
            while n < count:
                m = ch.recv()
                n += 1
                nbytes += len(m)
                if ctx["slow"] and n % 1000 == 0:
                    time.sleep(0.001)
            result = {"t1": str(time.monotonic_ns()), "n": n, "bytes": nbytes}
    else:
        ch = Channel.connect("127.0.0.1", int(sys.argv[3]))
        ch.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = b"a" * size
        if ctx["kind"] == "pingpong":
            rtts = []
            t0 = time.monotonic_ns()
            for _ in range(count + ctx["warmup"]):
                t = time.monotonic_ns()
                ch.send(body)
                ch.recv()
                rtts.append(time.monotonic_ns() - t)
            t1 = time.monotonic_ns()
            xs = sorted(x / 1000 for x in rtts[ctx["warmup"]:])
            result = {"t0": str(t0), "t1": str(t1), "p50us": pct(xs, 50), "p99us": pct(xs, 99), "n": len(xs)}
        else:
            t0 = time.monotonic_ns()
            for _ in range(count):
                ch.send(body)  # blocking sendall: the gist has no other way
            result = {"t0": str(t0)}
    result["rss"] = rss()
    out("RESULT " + json.dumps(result))


main()
