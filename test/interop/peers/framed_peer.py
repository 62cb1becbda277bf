#!/usr/bin/env python3
"""An echo peer for msgchannel's interop tests, written from the wire formats in docs/framings.md, not from msgchannel.

usage: framed_peer.py FORMAT server            listen on 127.0.0.1:0, print "PORT <n>", serve one client
       framed_peer.py FORMAT client PORT       connect to 127.0.0.1:PORT
FORMAT: ltprotocol[:LEN:TYPE] (struct codes B/H/I/Q, default H:B), int32, openflow, mp (multiprocessing wire).
On connect it sends a greeting (ltprotocol: its demo NumMsg(200), StrMsg("hello world!"), NumMsg(7)),
then echoes every frame back unchanged until the other side closes. Prints "GOT <type> <hex body>" per frame.
"""
import socket
import struct
import sys


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            if buf:
                raise EOFError('connection closed in the middle of a frame')
            return None
        buf += chunk
    return bytes(buf)


class LTProtocol:
    """[length][type][body], big-endian struct codes, the length counting the whole frame."""

    def __init__(self, len_type='H', type_type='B'):
        self.fmt = '>' + len_type + type_type
        self.hsize = struct.calcsize(self.fmt)

    def pack(self, type_, body):
        return struct.pack(self.fmt, self.hsize + len(body), type_) + body

    def read(self, sock):
        header = recv_exact(sock, self.hsize)
        if header is None:
            return None
        total, type_ = struct.unpack(self.fmt, header)
        if total < self.hsize:
            raise ValueError('length below the header size')
        return type_, recv_exact(sock, total - self.hsize)

    def greeting(self):
        return [(1, struct.pack('>I', 200)), (2, b'hello world!'), (1, struct.pack('>I', 7))]


class Int32:
    """Twisted's Int32StringReceiver: [u32 BE len][body]."""

    def pack(self, type_, body):
        return struct.pack('>I', len(body)) + body

    def read(self, sock):
        header = recv_exact(sock, 4)
        if header is None:
            return None
        (n,) = struct.unpack('>I', header)
        return 0, recv_exact(sock, n)

    def greeting(self):
        return [(0, b'hello from int32')]


class OpenFlow:
    """[u8 version][u8 type][u16 BE total length incl. the 8-byte header][u32 xid][payload].
    Mapped to msgchannel's openflow framing: type = version << 8 | oftype, body = xid + payload."""

    def pack(self, type_, body):
        xid, payload = body[:4], body[4:]
        return struct.pack('>BBH', type_ >> 8, type_ & 0xFF, 8 + len(payload)) + xid + payload

    def read(self, sock):
        header = recv_exact(sock, 8)
        if header is None:
            return None
        version, oftype, length, xid = struct.unpack('>BBHI', header)
        return (version << 8) | oftype, struct.pack('>I', xid) + recv_exact(sock, length - 8)

    def greeting(self):
        return [((4 << 8) | 0, struct.pack('>I', 1))]  # OFPT_HELLO, OpenFlow 1.3, xid 1


class MultiprocessingWire:
    """multiprocessing.connection: [i32 BE len][body]; -1 then [u64 BE len] for big bodies."""

    def pack(self, type_, body):
        n = len(body)
        if n > 0x7FFFFFFF:
            return struct.pack('!i', -1) + struct.pack('!Q', n) + body
        return struct.pack('!i', n) + body

    def read(self, sock):
        header = recv_exact(sock, 4)
        if header is None:
            return None
        (n,) = struct.unpack('!i', header)
        if n == -1:
            (n,) = struct.unpack('!Q', recv_exact(sock, 8))
        return 0, recv_exact(sock, n)

    def greeting(self):
        return [(0, b'hello from python')]


def make(fmt):
    name, _, rest = fmt.partition(':')
    if name == 'ltprotocol':
        return LTProtocol(*(rest.split(':') if rest else []))
    return {'int32': Int32, 'openflow': OpenFlow, 'mp': MultiprocessingWire}[name]()


def serve(proto, sock):
    for type_, body in proto.greeting():
        sock.sendall(proto.pack(type_, body))
    while True:
        frame = proto.read(sock)
        if frame is None:
            break
        type_, body = frame
        print('GOT %d %s' % (type_, body.hex()), flush=True)
        sock.sendall(proto.pack(type_, body))
    print('EOF', flush=True)


def main():
    proto = make(sys.argv[1])
    if sys.argv[2] == 'server':
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(('127.0.0.1', 0))
        srv.listen(1)
        print('PORT %d' % srv.getsockname()[1], flush=True)
        conn, _ = srv.accept()
        srv.close()
    else:
        conn = socket.create_connection(('127.0.0.1', int(sys.argv[3])))
    with conn:
        serve(proto, conn)


if __name__ == '__main__':
    main()
