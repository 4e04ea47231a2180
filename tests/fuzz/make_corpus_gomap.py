#!/usr/bin/env python3
"""Write the seed corpus of gomap_fuzz (tests/fuzz/corpus-gomap/).

The input format is described at the top of gomap_fuzz.c.  Run from
anywhere: python3 tests/fuzz/make_corpus_gomap.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus-gomap")

PUT, DEL, GET, STEP, RESTART, BULK, UNBULK, FAULT, CLEAR = 0, 5, 8, 10, 11, 12, 13, 14, 15


def header(seed, hint_byte=0):
    return struct.pack("<Q", seed) + bytes([hint_byte])


def key(b):
    assert len(b) <= 40
    return bytes([len(b)]) + b


def recent(i):
    return bytes([0xF0 | i])


def longkey(fill):
    return bytes([0x80 | 20]) + fill[:8].ljust(8, b"\0")


inputs = {}

p = header(0x1234)
for i in range(12):
    p += bytes([PUT]) + key(b"k%d" % i)
p += bytes([GET]) + key(b"k3") + bytes([GET]) + key(b"nope")
p += bytes([DEL]) + key(b"k3") + bytes([DEL]) + key(b"k3") + bytes([GET]) + recent(0)
p += bytes([PUT]) + key(b"") + bytes([GET]) + key(b"") + bytes([DEL]) + key(b"")
inputs["basic"] = p

p = header(0xdeadbeefcafef00d)
p += bytes([BULK, 100, STEP, STEP, BULK, 100, STEP, BULK, 200])
p += bytes([STEP] * 40)
p += bytes([UNBULK, 255, STEP, UNBULK, 90, STEP] + [STEP] * 30)
inputs["grow-shrink-iterate"] = p

p = header(0x5555)
for i in range(30):
    p += bytes([PUT]) + longkey(b"L%03d" % i)
    if i % 4 == 0:
        p += bytes([FAULT, i % 7, PUT]) + key(b"short%d" % i)
    if i % 5 == 0:
        p += bytes([FAULT, 0, PUT]) + longkey(b"F%03d" % i)
p += bytes([FAULT, 1, BULK, 20, DEL]) + recent(2)
inputs["long-keys-faults"] = p

p = header(0x77, 128 | 40)  # hint 320
p += bytes([BULK, 60, STEP, STEP, STEP, CLEAR, 0, STEP, BULK, 10] + [STEP] * 50)
p += bytes([RESTART] + [STEP] * 50 + [CLEAR, 0, FAULT, 0, BULK, 4])
inputs["hint-clear-iterate"] = p

p = header(0x9999)
for i in range(200):
    op = [PUT, DEL, GET, PUT, STEP][i % 5]
    if op == STEP:
        p += bytes([STEP])
    elif i % 3 == 0:
        p += bytes([op]) + recent(i % 16)
    else:
        p += bytes([op]) + key(bytes([i % 7]) * (i % 13))
inputs["mixed-recent"] = p

os.makedirs(OUT, exist_ok=True)
for name, data in inputs.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print("wrote %d inputs to %s" % (len(inputs), OUT))
