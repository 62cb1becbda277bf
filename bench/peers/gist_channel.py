# The Channel of the gist (shared/seeds/004_e55311049ece8a18.txt), ported to Python 3.
# Kept as the gist wrote it except where Python 3 or the benchmark needs otherwise; every change
# is marked "PORT:" and listed in bench/README.md.
import socket
from threading import Lock

### Outline of channel protocol
# To begin a message, the client or the server sends
# <CR> <LF> "MSG" <SPACE> <[0-9]+> <CR> <LF> <bytes>


def recv_line(socket, chunk_size=1):
    buffer = b""  # PORT: bytes, not str
    r = socket.recv(chunk_size)
    while True:
        if not r: raise RuntimeError("Socket was closed while reading line")
        buffer += r
        if buffer[-1:] == b"\n":  # PORT: bytes comparison (buffer[-1] is an int in Python 3)
            return buffer
        r = socket.recv(chunk_size)
    assert False, "Unreachable"


class Channel(object):
    @classmethod
    def connect(kls, ip, port):
        sock = socket.create_connection((ip, port))
        return kls(sock, ip, port)

    @classmethod
    def listen(kls, ip, port, reuse=True, echo=False, on_listen=None):
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if reuse:
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        lsock.bind((ip, port))
        lsock.listen(10)
        if echo: print("listening on {0}:{1}".format(ip, port))  # PORT: print()
        if on_listen: on_listen(lsock.getsockname()[1])  # PORT: report the port bound (port 0)
        while True:
            csock, addr = lsock.accept()
            ip, port = addr
            if echo: print("--> {0}:{1}".format(ip, port))
            yield kls(csock, ip, port)

    def __init__(self, socket, ip, port):
        self.ip = ip
        self.port = port
        self.socket = socket
        self.w_lock = Lock()
        self.r_lock = Lock()

    def iter_recv(self):
        while True:
            yield self.recv()

    def send(self, value):
        value = bytes(value)
        msg = "\r\nMSG {0}\r\n".format(len(value)).encode("ascii") + value  # PORT: encode the header
        try:
            self.w_lock.acquire()
            self.socket.sendall(msg)
        finally:
            self.w_lock.release()

    def recv(self):
        try:
            self.r_lock.acquire()
            crlf = self.socket.recv(2)
            if len(crlf) == 1:  # PORT: recv(2) may return one byte; the gist would desync here
                crlf += self.socket.recv(1)
            line = recv_line(self.socket).strip()
            type, length = line.split(b" ")  # PORT: bytes
            assert type == b"MSG"
            # PORT: the gist does a single self.socket.recv(int(length)), which returns short
            # for any body larger than what has arrived and desyncs the stream; read it whole.
            length = int(length)
            parts = []
            while length > 0:
                part = self.socket.recv(min(length, 1 << 20))
                if not part: raise RuntimeError("Socket was closed while reading a message")
                parts.append(part)
                length -= len(part)
            value = b"".join(parts)
            return value
        finally:
            self.r_lock.release()
