#!/usr/bin/env python3
"""png_check.py FILE WIDTH HEIGHT [RRGGBB...]: FILE is a PNG of that size that
is not blank, decoded with zlib alone (no PIL): at least 16 distinct colours,
at least 3% of the pixels differ from the most common one (the background),
the file is well above a blank page's size, and each RRGGBB given covers at
least 50 pixels exactly (a bar's fill, say). Prints what it found; exit 1 on
failure."""
import struct
import sys
import zlib
from collections import Counter


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG (bad signature)")
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if zlib.crc32(kind + chunk) != struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]:
            raise ValueError(f"bad CRC in chunk {kind!r}")
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        elif kind == b"IEND":
            break
        pos += 12 + n
    if not ihdr:
        raise ValueError("no IHDR")
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {ctype}, interlace {interlace})")
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    if len(raw) != h * (stride + 1):
        raise ValueError("image data has the wrong length")
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                upleft = prev[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + paeth(left, prev[i], upleft)) & 255
        elif f != 0:
            raise ValueError(f"bad filter type {f} in row {y}")
        rows.append(bytes(line))
        prev = line
    counts = Counter()
    for line in rows:
        counts.update(line[i:i + 3] for i in range(0, stride, bpp))
    return w, h, counts


def main():
    path, want_w, want_h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    colours = [bytes.fromhex(c) for c in sys.argv[4:]]
    with open(path, "rb") as f:
        data = f.read()
    try:
        w, h, counts = decode(data)
    except (ValueError, zlib.error, struct.error) as e:
        print(f"  {path}: {e}", file=sys.stderr)
        return 1
    total = w * h
    bg, bg_n = counts.most_common(1)[0]
    other = 1 - bg_n / total
    print(f"  {path}: {w}x{h}, {len(data)} bytes, {len(counts)} colours, "
          f"{other:.1%} of pixels not the background #{bg.hex()}"
          + "".join(f", #{c.hex()}: {counts.get(c, 0)} px" for c in colours))
    ok = True
    if (w, h) != (want_w, want_h):
        print(f"  expected {want_w}x{want_h}", file=sys.stderr)
        ok = False
    if len(data) < 15000:
        print("  too small for a page with content (a blank page is a few KB)", file=sys.stderr)
        ok = False
    if len(counts) < 16 or other < 0.03:
        print("  looks blank: too few colours or almost all background", file=sys.stderr)
        ok = False
    for c in colours:
        if counts.get(c, 0) < 50:
            print(f"  colour #{c.hex()} missing (fewer than 50 pixels)", file=sys.stderr)
            ok = False
    return 0 if ok else 1


sys.exit(main())
