#!/usr/bin/env python3
"""A tinyproto echo peer for msgchannel's interop tests, written from docs/framings.md ("Talking to a tinyproto peer").

usage: tinyproto_peer.py server [MAX]        listen on 127.0.0.1:0, print "PORT <n>", serve one client
       tinyproto_peer.py client PORT [MAX]   connect to 127.0.0.1:PORT
       tinyproto_peer.py echo                listen on 127.0.0.1:0, print "PORT <n>", serve every client
                                             in a thread of its own, as the seed's EchoServer does
It exchanges the init byte, transmits b'hello from tinyproto', then (half-duplex, like tinyproto's
connection thread) receives a message and transmits it back, until the other side closes. Sizes above
MAX (default 0xF0FFFFFF) are refused with 00. Prints "GOT <hex>", "REFUSED <size>", "EOF".
The echo server says nothing first and prints nothing per message: it is a target for `msgchannel bench`.
"""
import socket
import struct
import sys
import threading

OK, ERROR = b'\xff', b'\x00'


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def transmit(sock, body):
    sock.sendall(struct.pack('>I', len(body)))
    ack = recv_exact(sock, 1)
    if ack != OK:
        raise RuntimeError('message refused: %r' % ack)
    sock.sendall(body)


def receive(sock, maximum):
    """The next accepted message, or None at EOF."""
    while True:
        header = recv_exact(sock, 4)
        if header is None:
            return None
        (size,) = struct.unpack('>I', header)
        if size > maximum:
            print('REFUSED %d' % size, flush=True)
            sock.sendall(ERROR)
            continue
        sock.sendall(OK)
        return recv_exact(sock, size) if size else b''


def echo_client(sock):
    """One client of the echo server: the init byte each way, then every message back, until EOF."""
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(OK)
        if recv_exact(sock, 1) != OK:
            return
        try:
            while True:
                body = receive(sock, 0xF0FFFFFF)
                if body is None:
                    return
                transmit(sock, body)
        except (OSError, RuntimeError):
            return


def echo_server():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(('127.0.0.1', 0))
    srv.listen(128)
    print('PORT %d' % srv.getsockname()[1], flush=True)
    while True:
        sock, _ = srv.accept()
        threading.Thread(target=echo_client, args=(sock,), daemon=True).start()


def main():
    mode = sys.argv[1]
    if mode == 'echo':
        echo_server()
        return
    if mode == 'server':
        maximum = int(sys.argv[2], 0) if len(sys.argv) > 2 else 0xF0FFFFFF
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(('127.0.0.1', 0))
        srv.listen(1)
        print('PORT %d' % srv.getsockname()[1], flush=True)
        sock, _ = srv.accept()
        srv.close()
    else:
        maximum = int(sys.argv[3], 0) if len(sys.argv) > 3 else 0xF0FFFFFF
        sock = socket.create_connection(('127.0.0.1', int(sys.argv[2])))
    with sock:
        sock.sendall(OK)
        if recv_exact(sock, 1) != OK:
            print('INIT_ERROR', flush=True)
            sys.exit(3)
        transmit(sock, b'hello from tinyproto')
        while True:
            body = receive(sock, maximum)
            if body is None:
                break
            print('GOT %s' % body.hex(), flush=True)
            transmit(sock, body)
    print('EOF', flush=True)


if __name__ == '__main__':
    main()
