#!/usr/bin/env python3
# adversarial.py - bad clients against a running kvcache, while good clients
# keep working: the server must neither crash nor lose their data.
#
# SPDX-License-Identifier: MIT
#
#   adversarial.py --port PORT [--host 127.0.0.1] [--idle N] [--quick]
#
# Start kvcache with -c above --idle (the default 3000 idle connections need
# -c 4000) and -m 64 or more.  What it does, in order, while two "good"
# client threads set and read back their own keys all along (every reply
# checked):
#   - stores 500 keys it checks again at the very end;
#   - malformed and unknown commands, binary garbage, empty lines;
#   - keys over 250 bytes, keys with control characters;
#   - negative, huge and non-numeric lengths, flags, exptimes, deltas;
#   - values larger than the item limit (swallowed), wrong data terminators;
#   - clients that disconnect mid-command line, mid data block, or reset
#     the connection (SO_LINGER 0) with data in flight;
#   - lines longer than 2048 bytes without a newline (the server hangs up);
#   - a client that pipelines thousands of gets of a big value and never
#     reads the replies (the server must stop reading it, not grow);
#   - N idle connections held open at once, then more than -c allows
#     (memcached's "ERROR Too many open connections");
#   - random bytes on many short connections.
# Then: the 500 keys are intact, the good clients saw no error, the server
# answers "version", and stats shows the idle connections gone.
# Exit status 0 on success; failures are printed.
import argparse
import os
import random
import resource
import selectors
import socket
import struct
import sys
import threading
import time

failures = []
lock = threading.Lock()


def fail(msg):
    with lock:
        failures.append(msg)
    print("FAIL: " + msg, flush=True)


class Client:
    """A well-behaved client: send a command, read its complete reply."""

    def __init__(self, host, port, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _fill(self):
        d = self.sock.recv(1 << 16)
        if not d:
            raise ConnectionError("server closed the connection")
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def cmd(self, data):
        self.sock.sendall(data)
        return self.line()

    def set(self, key, value, flags=0, exptime=0):
        return self.cmd(b"set %s %d %d %d\r\n%s\r\n" % (key, flags, exptime, len(value), value))

    def get(self, key):
        self.sock.sendall(b"get %s\r\n" % key)
        line = self.line()
        if line == b"END":
            return None
        parts = line.split(b" ")
        if len(parts) != 4 or parts[0] != b"VALUE" or parts[1] != key:
            raise ValueError("bad VALUE line %r" % line[:100])
        data = self.exact(int(parts[3]) + 2)
        if data[-2:] != b"\r\n":
            raise ValueError("value not followed by CRLF")
        end = self.line()
        if end != b"END":
            raise ValueError("expected END, got %r" % end[:100])
        return data[:-2]


def good_client(host, port, ident, stop, counts):
    """Sets and reads back its own keys until stopped; every reply checked."""
    rng = random.Random(ident)
    n = 0
    try:
        c = Client(host, port)
        while not stop.is_set():
            key = b"good%d:%d" % (ident, n % 200)
            value = b"%d-%d-" % (ident, n) + bytes(rng.randrange(33, 127) for _ in range(rng.randrange(0, 300)))
            r = c.set(key, value)
            if r != b"STORED":
                fail("good client %d: set %r answered %r" % (ident, key, r))
                return
            got = c.get(key)
            if got != value:
                fail("good client %d: get %r returned %r, not what it stored" % (ident, key, got and got[:60]))
                return
            n += 1
        c.close()
    except Exception as e:  # noqa: BLE001 - any error is a failure here
        fail("good client %d: %s: %s" % (ident, type(e).__name__, e))
    counts[ident] = n


def raw(host, port, data, read=True, timeout=3.0, linger_reset=False):
    """Send data on a fresh connection, half-close, return what came back."""
    s = socket.create_connection((host, port), timeout=timeout)
    if linger_reset:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        s.close()
        return b""
    if not read:
        s.close()
        return b""
    out = b""
    try:
        s.shutdown(socket.SHUT_WR)
        while True:
            d = s.recv(1 << 16)
            if not d:
                break
            out += d
    except (socket.timeout, ConnectionResetError, OSError):
        pass
    s.close()
    return out


def expect(name, got, want):
    if got != want:
        fail("%s: expected %r, got %r" % (name, want[:200], got[:200]))


def attack_commands(host, port):
    expect("unknown commands", raw(host, port, b"bogus\r\nfoo bar baz\r\nGETS a\r\nx\r\n\r\n"), b"ERROR\r\n" * 5)
    expect("binary garbage", raw(host, port, b"\x80\x01\x00\x05\x00\x00\x00\x00\r\n\x00\xff\xfe\r\n"), b"ERROR\r\n" * 2)
    expect("too many tokens", raw(host, port, b"set " + b"a " * 40 + b"\r\n"), b"ERROR\r\n")
    k251 = b"k" * 251
    expect("key over 250 (get)", raw(host, port, b"get a " + k251 + b"\r\n"), b"CLIENT_ERROR bad command line format\r\n")
    expect("key over 250 (set)", raw(host, port, b"set " + k251 + b" 0 0 1\r\nx\r\n"),
           b"CLIENT_ERROR bad command line format\r\nERROR\r\n")
    expect("key over 250 (delete, incr, touch)",
           raw(host, port, b"delete " + k251 + b"\r\nincr " + k251 + b" 1\r\ntouch " + k251 + b" 1\r\n"),
           b"CLIENT_ERROR bad command line format\r\n" * 3)
    expect("control characters in a key", raw(host, port, b"set adv\x01\x02\x7f 0 0 1\r\nx\r\nget adv\x01\x02\x7f\r\n"),
           b"STORED\r\nVALUE adv\x01\x02\x7f 0 1\r\nx\r\nEND\r\n")
    expect("negative length", raw(host, port, b"set adv 0 0 -1\r\nx\r\n"), b"CLIENT_ERROR bad command line format\r\nERROR\r\n")
    expect("huge length", raw(host, port, b"set adv 0 0 2147483648\r\nx\r\n"), b"CLIENT_ERROR bad command line format\r\nERROR\r\n")
    expect("non-numeric length", raw(host, port, b"set adv 0 0 12z\r\nx\r\n"), b"CLIENT_ERROR bad command line format\r\nERROR\r\n")
    expect("bad flags and exptime", raw(host, port, b"set adv -1 0 1\r\nx\r\nset adv 0 1e9 1\r\nx\r\n"),
           b"CLIENT_ERROR bad command line format\r\nERROR\r\n" * 2)
    expect("bad deltas", raw(host, port, b"incr adv -1\r\nincr adv 99999999999999999999\r\nincr adv x\r\n"),
           b"CLIENT_ERROR invalid numeric delta argument\r\n" * 3)
    big = 2 * 1024 * 1024
    expect("value over the item limit", raw(host, port, b"set adv 0 0 %d\r\n%s\r\nget adv\r\n" % (big, b"v" * big), timeout=20),
           b"SERVER_ERROR object too large for cache\r\nEND\r\n")
    expect("wrong data terminator", raw(host, port, b"set adv 0 0 3\r\nabcde\r\nset adv 0 0 3\r\nabc\n\nget adv\r\n"),
           b"CLIENT_ERROR bad data chunk\r\nERROR\r\nCLIENT_ERROR bad data chunk\r\nEND\r\n")
    expect("line without newline over 2048 bytes", raw(host, port, b"x" * 5000), b"")
    expect("HTTP request", raw(host, port, b"GET / HTTP/1.1\r\nHost: kvcache\r\n\r\n"), b"")


def attack_disconnects(host, port):
    for i in range(200):
        cut = [b"set adv%d 0 0 1000\r\n%s" % (i, b"d" * (i % 900)),   # mid data block
               b"get adv%d adv%d" % (i, i),                             # mid command line
               b"set adv%d 0 0 5 noreply\r\nab" % i,
               b"gets " + b"k " * (i * 10),
               b"incr"][i % 5]
        raw(host, port, cut, read=False, linger_reset=(i % 2 == 0))


def attack_slow_reader(host, port, client):
    # A 500 kB value, and a client that asks for it 2000 times (1 GB of
    # replies) and never reads: the server must stop reading it.
    value = b"s" * 500_000
    if client.set(b"adv:big", value) != b"STORED":
        fail("could not store the big value")
        return
    s = socket.create_connection((host, port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    sent = 0
    request = b"get adv:big\r\n" * 100
    deadline = time.time() + 5
    while sent < 20 and time.time() < deadline:
        try:
            s.send(request)
            sent += 1
        except BlockingIOError:
            time.sleep(0.05)
    time.sleep(0.5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def attack_idle(host, port, n, max_conns_probe):
    socks = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection((host, port), timeout=10))
    except OSError as e:
        fail("could only open %d of %d idle connections: %s" % (len(socks), n, e))
    # with them all open, a fresh client still gets served
    c = Client(host, port)
    if c.cmd(b"version\r\n")[:8] != b"VERSION ":
        fail("no VERSION while %d connections are idle" % len(socks))
    # The kernel completes a handshake before the server accepts it, so a
    # busy (or sanitized) server may still be accepting: ask until it has.
    deadline = time.time() + 10
    while True:
        c.sock.sendall(b"stats\r\n")
        curr = None
        while True:
            line = c.line()
            if line == b"END":
                break
            if line.startswith(b"STAT curr_connections "):
                curr = int(line.split()[2])
        if (curr is not None and curr >= len(socks)) or time.time() > deadline:
            break
        time.sleep(0.1)
    if curr is None or curr < len(socks):
        fail("stats curr_connections %r with %d idle connections open (after 10 s)" % (curr, len(socks)))
    c.close()
    if max_conns_probe:
        # past -c: memcached's refusal, then the close
        extra = [socket.create_connection((host, port), timeout=5) for _ in range(max_conns_probe)]
        refused = 0
        sel = selectors.DefaultSelector()  # epoll: descriptors past 1024
        for s in extra:
            sel.register(s, selectors.EVENT_READ)
        deadline = time.time() + 2
        while sel.get_map() and time.time() < deadline:
            for key, _ in sel.select(max(0.0, deadline - time.time())):
                sel.unregister(key.fileobj)
                try:
                    if key.fileobj.recv(100) == b"ERROR Too many open connections\r\n":
                        refused += 1
                except OSError:
                    pass
        sel.close()
        for s in extra:
            s.close()
        if refused == 0:
            fail("no connection refused past -c (%d tried)" % max_conns_probe)
        else:
            print("  %d of %d connections past -c were refused" % (refused, max_conns_probe), flush=True)
    for s in socks:
        s.close()
    return len(socks)


def attack_random(host, port, count, rng):
    for _ in range(count):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2048)))
        if rng.random() < 0.5:  # mostly protocol-looking noise
            words = [b"set", b"get", b"gets", b"cas", b"incr", b"decr", b"touch", b"append", b"delete",
                     b"flush_all", b"noreply", b"0", b"-1", b"4294967296", b"\r\n", b"\n", b"k", b" "]
            data = b" ".join(rng.choice(words) for _ in range(rng.randrange(1, 60)))
        # never a flush_all: it would take the good clients' keys
        data = data.replace(b"flush_all", b"flush_one")
        raw(host, port, data, timeout=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--idle", type=int, default=3000)
    ap.add_argument("--max-conns-probe", type=int, default=0,
                    help="open this many more connections past --idle, expecting refusals (server -c below their sum)")
    ap.add_argument("--quick", action="store_true", help="fewer random connections")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    print("adversarial: seed %d (--seed to replay the random part)" % seed, flush=True)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.idle + args.max_conns_probe + 200
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))

    host, port = args.host, args.port
    keeper = Client(host, port)
    kept = {}
    for i in range(500):
        key = b"keep:%d" % i
        kept[key] = b"value %d " % i + bytes(rng.randrange(33, 127) for _ in range(rng.randrange(0, 100)))
        expect("set " + key.decode(), keeper.set(key, kept[key]), b"STORED")

    stop = threading.Event()
    counts = {}
    goods = [threading.Thread(target=good_client, args=(host, port, i, stop, counts)) for i in range(2)]
    for t in goods:
        t.start()

    steps = [
        ("malformed commands, bad keys, bad numbers, oversized values", lambda: attack_commands(host, port)),
        ("disconnects mid-command", lambda: attack_disconnects(host, port)),
        ("a client that never reads", lambda: attack_slow_reader(host, port, keeper)),
        ("%d idle connections" % args.idle, lambda: attack_idle(host, port, args.idle, args.max_conns_probe)),
        ("random bytes", lambda: attack_random(host, port, 100 if args.quick else 400, rng)),
    ]
    for name, fn in steps:
        t0 = time.time()
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            fail("%s: %s: %s" % (name, type(e).__name__, e))
        print("  %-62s %.1f s" % (name, time.time() - t0), flush=True)

    stop.set()
    for t in goods:
        t.join()
    # everything stored before the attacks is intact
    try:
        checker = Client(host, port)
        for key, value in kept.items():
            got = checker.get(key)
            if got != value:
                fail("%r was %r, now %r" % (key, value[:40], got and got[:40]))
                break
        if checker.cmd(b"version\r\n")[:8] != b"VERSION ":
            fail("no VERSION at the end")
        checker.close()
    except Exception as e:  # noqa: BLE001
        fail("final check: %s: %s" % (type(e).__name__, e))
    keeper.close()
    print("adversarial: good clients made %s set+get rounds; %d failures"
          % ("/".join(str(counts.get(i, 0)) for i in range(2)), len(failures)), flush=True)
    for i in range(2):
        if counts.get(i, 0) < 10:
            fail("good client %d made only %d rounds" % (i, counts.get(i, 0)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
