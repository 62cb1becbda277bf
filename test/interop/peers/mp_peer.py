#!/usr/bin/env python3
"""Python's own multiprocessing.connection Listener / Client, as an echo peer for msgchannel's tests.

usage: mp_peer.py server [AUTHKEY]        Listener(('127.0.0.1', 0)), prints "PORT <n>", serves one client
       mp_peer.py client PORT [AUTHKEY]   Client(('127.0.0.1', PORT))
After authenticating it prints "READY", sends b'hello from python', then echoes every message with
send_bytes until the other side closes ("EOF"). A failed authentication prints "AUTH_ERROR <msg>", exit 3.
"""
import sys
from multiprocessing.connection import AuthenticationError, Client, Listener


def echo(conn):
    print('READY', flush=True)
    conn.send_bytes(b'hello from python')
    while True:
        try:
            data = conn.recv_bytes()
        except EOFError:
            break
        print('GOT %s' % data.hex(), flush=True)
        conn.send_bytes(data)
    print('EOF', flush=True)


def main():
    mode = sys.argv[1]
    args = sys.argv[2:]
    try:
        if mode == 'server':
            authkey = args[0].encode() if args else None
            with Listener(('127.0.0.1', 0), authkey=authkey) as listener:
                print('PORT %d' % listener.address[1], flush=True)
                conn = listener.accept()
        else:
            authkey = args[1].encode() if len(args) > 1 else None
            conn = Client(('127.0.0.1', int(args[0])), authkey=authkey)
    except AuthenticationError as e:
        print('AUTH_ERROR %s' % e, flush=True)
        sys.exit(3)
    with conn:
        echo(conn)


if __name__ == '__main__':
    main()
