"""A small pure-Python PNG reader for tests: walks every chunk, checks each
CRC, inflates the IDAT stream and checks that it holds exactly the bytes the
IHDR promises.  It shares no code with bananafs (which uses libpng)."""
import struct
import zlib

SIG = b"\x89PNG\r\n\x1a\n"
# samples per pixel by colour type
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


class PNGError(Exception):
    pass


def walk(data):
    """Returns (width, height, {chunk type: count}, [tEXt/iTXt keywords]) or raises PNGError."""
    if data[:8] != SIG:
        raise PNGError("no PNG signature")
    pos, chunks, idat, keys = 8, {}, [], []
    ihdr = None
    ended = False
    while pos < len(data):
        if len(data) - pos < 12:
            raise PNGError(f"truncated chunk header at {pos}")
        n, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        if pos + 12 + n > len(data):
            raise PNGError(f"chunk {ctype!r} at {pos} runs past the end ({n} bytes)")
        body = data[pos + 8:pos + 8 + n]
        crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        if zlib.crc32(ctype + body) & 0xffffffff != crc:
            raise PNGError(f"bad CRC in chunk {ctype!r} at {pos}")
        chunks[ctype] = chunks.get(ctype, 0) + 1
        if pos == 8 and ctype != b"IHDR":
            raise PNGError("first chunk is not IHDR")
        if ctype == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype in (b"tEXt", b"iTXt", b"zTXt"):
            keys.append(body.split(b"\0", 1)[0].decode("latin-1"))
        elif ctype == b"IEND":
            ended = True
            pos += 12 + n
            break
        pos += 12 + n
    if not ended:
        raise PNGError("no IEND: the file is truncated")
    if pos != len(data):
        raise PNGError(f"{len(data) - pos} bytes after IEND")
    if not idat:
        raise PNGError("no IDAT")
    w, h, depth, ctype_, _comp, _filt, interlace = ihdr
    if w == 0 or h == 0:
        raise PNGError("zero pixel size")
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as e:
        raise PNGError(f"IDAT does not inflate: {e}")
    if interlace == 0:
        bpp_bits = depth * CHANNELS.get(ctype_, 0)
        if not bpp_bits:
            raise PNGError(f"bad colour type {ctype_}")
        want = h * (1 + (w * bpp_bits + 7) // 8)
        if len(raw) != want:
            raise PNGError(f"IDAT holds {len(raw)} bytes, IHDR needs {want}")
        stride = 1 + (w * bpp_bits + 7) // 8
        for row in range(h):
            if raw[row * stride] > 4:
                raise PNGError(f"bad filter type in row {row}")
    return w, h, chunks, keys


def walk_file(path):
    with open(path, "rb") as f:
        return walk(f.read())
