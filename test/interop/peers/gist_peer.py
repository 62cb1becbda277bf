#!/usr/bin/env python3
"""A peer that speaks the Channel gist's wire format, written from the format itself:
    CR LF "MSG" SP <decimal length> CR LF <length bytes>
It reads exactly (the gist's single recv(n) returns short under load; this one loops).

    gist_peer.py server              listen on 127.0.0.1:0, print "PORT n", echo each message
                                     with b"py:" prepended, one client, until it closes
    gist_peer.py client PORT SIZE..  send one message per SIZE (byte i = i % 251), then read
                                     one reply per message and print "<len> <sha256>"
"""
import hashlib
import socket
import sys


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("socket closed mid-message")
        buf += chunk
    return bytes(buf)


def recv_line(sock):
    line = bytearray()
    while not line.endswith(b"\n"):
        b = sock.recv(1)
        if not b:
            raise EOFError("socket closed mid-header")
        line += b
        if len(line) > 64:
            raise ValueError("header too long")
    return bytes(line)


def recv_msg(sock):
    first = sock.recv(2)
    if not first:
        return None
    if len(first) == 1:
        first += recv_exact(sock, 1)
    assert first == b"\r\n", first
    kind, length = recv_line(sock).strip().split(b" ")
    assert kind == b"MSG", kind
    return recv_exact(sock, int(length))


def send_msg(sock, body):
    sock.sendall(b"\r\nMSG %d\r\n" % len(body) + body)


def main():
    if sys.argv[1] == "server":
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        print("PORT %d" % lsock.getsockname()[1], flush=True)
        csock, _ = lsock.accept()
        while True:
            body = recv_msg(csock)
            if body is None:
                break
            send_msg(csock, b"py:" + body)
        csock.close()
        lsock.close()
    else:
        sock = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
        sizes = [int(a) for a in sys.argv[3:]]
        for n in sizes:
            send_msg(sock, bytes(i % 251 for i in range(n)))
        for _ in sizes:
            body = recv_msg(sock)
            print(len(body), hashlib.sha256(body).hexdigest(), flush=True)
        sock.close()


if __name__ == "__main__":
    main()
