"""Reading IDX files, the format of MNIST and Fashion-MNIST, gzip-compressed or plain.

An IDX file is two zero bytes, a type code, the number of dimensions n, n
big-endian uint32 sizes, then the values, big-endian, row-major.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from longdeps.errors import LongdepsError

#: IDX type code -> numpy dtype (big-endian)
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in the IDX file ``path`` (``.gz`` or plain), native byte order, writable.

    E.g. ``train-images-idx3-ubyte.gz`` -> uint8 ``(60000, 28, 28)``. A file
    that is not IDX, or whose size does not match its header, raises a
    one-line LongdepsError naming it.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise LongdepsError(f"{path}: not a readable gzip file ({err})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _DTYPES:
        raise LongdepsError(f"{path}: not an IDX file (magic number {raw[:4].hex()}; expected 0000, a type code in "
                            f"{', '.join(f'{code:02x}' for code in _DTYPES)}, then the number of dimensions)")
    ndim = raw[3]
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise LongdepsError(f"{path}: {len(raw)} bytes, too short for the header of a {ndim}-dimensional IDX array")
    shape = struct.unpack(f">{ndim}I", raw[4:start])
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = start + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise LongdepsError(f"{path}: {len(raw)} bytes, expected {expected} for a {dtype.name} array of shape "
                            f"{shape}; the file is truncated or corrupted")
    return np.frombuffer(raw, dtype, offset=start).reshape(shape).astype(dtype.newbyteorder("="))
