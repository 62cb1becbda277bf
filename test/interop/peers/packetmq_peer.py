#!/usr/bin/env python3
"""A packetmq peer written from the wire format in docs/typed.md ("Talking to a packetmq peer"), for the interop tests.

Frames are Twisted Int32StringReceiver frames, [u32 BE len][u16 BE id][msgpack], with
MAX_LENGTH 99999. Every string it packs is a byte string, so msgpack writes it as bin, as
packetmq's Python 2 u-msgpack did (map keys included).

usage: packetmq_peer.py server|client PORT adaptive(0|1) IDBASE
  server: listen on 127.0.0.1:PORT (0 = any), print "PORT n", serve one connection.
  client: connect to 127.0.0.1:PORT.
  IDBASE: this side's ids: chat:say=IDBASE, chat:echo=IDBASE+1, chat:quit=IDBASE+2.
Application: chat:say {text} -> answers chat:echo {text: TEXT upper-cased, seen: n};
chat:quit {reason} -> softquit with that reason. Prints ACTIVE, IDS ..., SOFTQUIT <reason>, CLOSED.
"""
import socket
import struct
import sys

import msgpack

MAX_LENGTH = 99999
RESERVED = {b"packetmq:handshake_init": 0, b"packetmq:softquit": 1,
            b"packetmq:handshake_pubids": 2, b"packetmq:handshake_finish": 3}


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)  # bytes -> bin, like Python 2's str


def unpack(data):
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def key(d, name):
    """Look a key up whether the peer packed it as str or bin."""
    if name in d:
        return d[name]
    return d.get(name.encode())


def text(v):
    return v.decode() if isinstance(v, bytes) else v


class Conn:
    def __init__(self, sock, adaptive, idbase):
        self.sock = sock
        self.buf = b""
        self.adaptive = adaptive
        self.ids = dict(RESERVED)
        self.ids.update({b"chat:say": idbase, b"chat:echo": idbase + 1, b"chat:quit": idbase + 2})
        self.state = "connMade"
        self.seen = 0

    def send(self, name, payload):
        body = struct.pack("!H", self.ids[name]) + pack(payload)
        self.sock.sendall(struct.pack("!I", len(body)) + body)

    def read_frame(self):
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack("!I", self.buf[:4])
                if n > MAX_LENGTH:
                    raise ValueError("frame above MAX_LENGTH")
                if len(self.buf) >= 4 + n:
                    frame, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    (pid,) = struct.unpack("!H", frame[:2])
                    return pid, unpack(frame[2:])
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def softquit(self, reason):
        self.state = "softquitted"
        print("SENT-SOFTQUIT", reason.decode(), flush=True)
        self.send(b"packetmq:softquit", {b"reason": reason})

    def run(self):
        self.send(b"packetmq:handshake_init", {b"version": 1})
        while True:
            got = self.read_frame()
            if got is None:
                break
            pid, data = got
            by_id = {v: k for k, v in self.ids.items()}
            name = by_id.get(pid)
            if pid == 0:
                if self.state != "connMade":
                    continue
                if key(data, "version") != 1:
                    self.softquit(b"reason.versionmismatch")
                    continue
                self.state = "idcheck"
                self.send(b"packetmq:handshake_pubids", {b"adapt": self.adaptive, b"idmap": self.ids})
            elif pid == 2:
                if self.state != "idcheck":
                    continue
                if key(data, "adapt") == self.adaptive:
                    self.softquit(b"reason.sameadaptivepolicy")
                    continue
                if self.adaptive:
                    theirs = {(k.encode() if isinstance(k, str) else k): v for k, v in key(data, "idmap").items()}
                    if set(theirs) != set(self.ids):
                        self.softquit(b"reason.nonequalpackets")
                        continue
                    self.ids = theirs
                print("IDS", " ".join("%s=%d" % (k.decode(), v) for k, v in sorted(self.ids.items())), flush=True)
                self.send(b"packetmq:handshake_finish", None)
                self.state = "active"
                print("ACTIVE", flush=True)
            elif pid == 3:
                print("GOT-FINISH", flush=True)
            elif pid == 1:
                print("SOFTQUIT", text(key(data, "reason")), flush=True)
                break
            elif self.state != "active":
                print("DROPPED", pid, flush=True)
            elif name == b"chat:say":
                self.seen += 1
                self.send(b"chat:echo", {b"text": text(key(data, "text")).upper().encode(), b"seen": self.seen})
            elif name == b"chat:quit":
                self.softquit(key(data, "reason").encode() if isinstance(key(data, "reason"), str) else key(data, "reason"))
            else:
                print("UNKNOWN", pid, flush=True)
        self.sock.close()
        print("CLOSED", flush=True)


def main():
    role, port, adaptive, idbase = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
    if role == "server":
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(1)
        srv.settimeout(10)
        print("PORT", srv.getsockname()[1], flush=True)
        sock, _ = srv.accept()
        srv.close()
    else:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(10)
    Conn(sock, adaptive, idbase).run()


if __name__ == "__main__":
    main()
