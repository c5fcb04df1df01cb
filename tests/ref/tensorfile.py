#!/usr/bin/env python3
"""tensorfile.py - the "DTNS" tensor file format shared by dartsc (runtime/tensorfile.c)
and the Python reference (tests/ref/darts_ref.py).

Layout, all little-endian:
    header   : b"DTNS", u32 version = 1, u32 count, u32 reserved = 0
    tensor   : u32 name_len, name (utf-8, no NUL), u32 dtype (0 float32, 1 int32),
               u32 ndim (0..4), u64 dims[ndim], numel*4 bytes of data (C order)
    trailer  : u32 zlib.crc32 of every byte before it

API:
    read(path)  -> OrderedDict name -> numpy array (float32 / int32), in file order
    write(path, items)  items: iterable of (name, array) or a mapping; written atomically

CLI:
    tensorfile.py --selftest-write PATH   write the fixed file the C test asserts
    tensorfile.py --dump PATH             print a summary of a file
"""
import collections
import os
import struct
import sys
import zlib

import numpy as np

MAGIC = b"DTNS"
VERSION = 1
MAX_NAME = 4096
MAX_NDIM = 4
DT_F32 = 0
DT_I32 = 1
_DTYPES = {DT_F32: np.dtype("<f4"), DT_I32: np.dtype("<i4")}


class TensorFileError(Exception):
    pass


def read(path):
    """Read a DTNS file; returns an OrderedDict name -> numpy array (copies, writable)."""
    with open(path, "rb") as f:
        buf = f.read()
    base = os.path.basename(path)

    def fail(msg):
        raise TensorFileError("%s: %s" % (base, msg))

    n = len(buf)
    if n < 20:
        fail("truncated: %d bytes, smaller than header + CRC (20)" % n)
    if buf[:4] != MAGIC:
        fail("bad magic %r (expected b'DTNS')" % buf[:4])
    version, count, reserved = struct.unpack_from("<III", buf, 4)
    if version != VERSION:
        fail("unsupported version %d (expected %d)" % (version, VERSION))
    if reserved != 0:
        fail("reserved header field is %d (expected 0)" % reserved)
    want = struct.unpack_from("<I", buf, n - 4)[0]
    got = zlib.crc32(buf[: n - 4]) & 0xFFFFFFFF
    if want != got:
        fail("bad CRC: stored 0x%08x, computed 0x%08x" % (want, got))
    end = n - 4
    off = 16
    out = collections.OrderedDict()

    def need(k, what):
        if k > end - off:
            fail("truncated: %s needs %d bytes at offset %d, file has %d" % (what, k, off, end))

    for t in range(count):
        need(4, "tensor #%d name length" % t)
        (nl,) = struct.unpack_from("<I", buf, off)
        off += 4
        if nl == 0 or nl > MAX_NAME:
            fail("tensor #%d: name length %d out of range 1..%d" % (t, nl, MAX_NAME))
        need(nl, "tensor #%d name" % t)
        try:
            name = buf[off: off + nl].decode("utf-8")
        except UnicodeDecodeError:
            fail("tensor #%d: name is not valid utf-8" % t)
        if "\0" in name:
            fail("tensor #%d: name contains NUL" % t)
        off += nl
        need(8, "tensor '%s' dtype/ndim" % name)
        dtype, ndim = struct.unpack_from("<II", buf, off)
        off += 8
        if dtype not in _DTYPES:
            fail("tensor '%s': unknown dtype %d" % (name, dtype))
        if ndim > MAX_NDIM:
            fail("tensor '%s': ndim %d > %d" % (name, ndim, MAX_NDIM))
        need(8 * ndim, "tensor '%s' dims" % name)
        dims = struct.unpack_from("<%dQ" % ndim, buf, off)
        off += 8 * ndim
        numel = 1
        for d in dims:
            numel *= d
            if numel > (1 << 61):
                fail("tensor '%s': dims %s overflow" % (name, list(dims)))
        nbytes = numel * 4
        need(nbytes, "tensor '%s'" % name)
        if name in out:
            fail("duplicate tensor name '%s'" % name)
        arr = np.frombuffer(buf, dtype=_DTYPES[dtype], count=numel, offset=off).reshape(dims)
        out[name] = arr.astype(arr.dtype.newbyteorder("="), copy=True)
        off += nbytes
    if off != end:
        fail("trailing garbage: %d bytes after the last tensor at offset %d" % (end - off, off))
    return out


def _encode(name, arr):
    arr = np.asarray(arr)
    if arr.dtype.kind == "f":
        dt, arr = DT_F32, arr.astype("<f4")
    elif arr.dtype.kind in "iub":
        if arr.size and (arr.min() < -(2 ** 31) or arr.max() >= 2 ** 31):
            raise TensorFileError("tensor '%s': integer values do not fit int32" % name)
        dt, arr = DT_I32, arr.astype("<i4")
    else:
        raise TensorFileError("tensor '%s': unsupported dtype %s" % (name, arr.dtype))
    if arr.ndim > MAX_NDIM:
        raise TensorFileError("tensor '%s': ndim %d > %d" % (name, arr.ndim, MAX_NDIM))
    nb = name.encode("utf-8")
    if not nb or len(nb) > MAX_NAME or b"\0" in nb:
        raise TensorFileError("bad tensor name %r" % name)
    head = struct.pack("<I", len(nb)) + nb + struct.pack("<II", dt, arr.ndim)
    head += struct.pack("<%dQ" % arr.ndim, *arr.shape)
    return head + np.ascontiguousarray(arr).tobytes()


def write(path, items):
    """Write (name, array) pairs (or a mapping) atomically: path.tmp, fsync, rename."""
    if hasattr(items, "items"):
        items = items.items()
    parts = []
    seen = set()
    for name, arr in items:
        if name in seen:
            raise TensorFileError("duplicate tensor name '%s'" % name)
        seen.add(name)
        parts.append(_encode(name, arr))
    body = MAGIC + struct.pack("<III", VERSION, len(parts), 0) + b"".join(parts)
    body += struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    d = os.path.dirname(os.path.abspath(path))
    try:
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def selftest_items():
    """The fixed content of --selftest-write; tests/test_tensorfile.c asserts exactly this."""
    return [
        ("scalar", np.array(3.5, dtype=np.float32)),                       # ndim 0
        ("vec_i32", np.array([-7, 0, 1, 2147483647], dtype=np.int32)),     # ndim 1
        ("mat", np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5 - 1),   # 2x3: -1,-0.5,0,.5,1,1.5
        ("grad/cube", np.arange(24, dtype=np.float32).reshape(2, 3, 4)),   # 0..23
        ("four", np.full((1, 2, 1, 2), -2.25, dtype=np.float32)),
        ("empty", np.zeros((0, 3), dtype=np.float32)),                     # numel 0
    ]


def main(argv):
    if len(argv) == 3 and argv[1] == "--selftest-write":
        write(argv[2], selftest_items())
        return 0
    if len(argv) == 3 and argv[1] == "--dump":
        for k, v in read(argv[2]).items():
            flat = v.reshape(-1)
            print("%-50s %-5s %-20s %s" % (k, v.dtype, list(v.shape), flat[:4]))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except TensorFileError as e:
        sys.stderr.write("tensorfile: %s\n" % e)
        sys.exit(1)
