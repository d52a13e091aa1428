"""Is a downloaded file the file GINA announced? MD5 streamed, then an HDF5 open.

Both checks read in fixed-size pieces, so memory does not grow with the file
(a 1 GB geolocation file costs the same few MB as a 1 MB band file). The
downloader feeds a :class:`PrefixDigest` as bytes are written, so the check after
the transfer reads only what arrived out of order (usually nothing): the last files
of a run are placed that much sooner.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

#: Bytes read at a time: big enough for disk throughput, small enough for memory.
READ_SIZE = 1024 * 1024


class VerifyError(ValueError):
    """The file is not what was announced (wrong MD5, not HDF5)."""


def md5sum(
    path: str | os.PathLike,
    read_size: int = READ_SIZE,
    after_read: Callable[[int], None] | None = None,
) -> str:
    """Hex MD5 of a file, read in pieces of ``read_size`` bytes.

    ``after_read(count)`` is called after each piece: verify-sdr paces its reading
    there (a rate limit) and stops there (time budget, SIGTERM) by raising.
    """
    return _hash_rest(hashlib.md5(), path, 0, read_size, after_read)


def _hash_rest(
    digest,
    path: str | os.PathLike,
    offset: int,
    read_size: int = READ_SIZE,
    after_read: Callable[[int], None] | None = None,
) -> str:
    """Feed ``digest`` the file's bytes from ``offset`` on, in pieces; its hex value."""
    buffer = bytearray(read_size)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as stream:
        stream.seek(offset)
        while count := stream.readinto(buffer):
            digest.update(view[:count])
            if after_read is not None:
                after_read(count)
    return digest.hexdigest()


class PrefixDigest:
    """MD5 of a file's first ``length`` bytes, fed with the writes as they happen.

    Writes in file order extend it; a write further on (another Range segment) is
    left to :func:`md5sum` to read back from disk; a write into bytes already hashed
    (a server that ignored Range, so the file starts again from byte 0) starts it over.
    """

    def __init__(self):
        self.md5 = hashlib.md5()
        self.length = 0

    def wrote(self, offset: int, data) -> None:
        """Note ``data`` written at ``offset``."""
        if offset < self.length:
            self.md5, self.length = hashlib.md5(), 0
        if offset == self.length:
            self.md5.update(data)
            self.length += len(data)


def _md5_from(path: str | os.PathLike, prefix: PrefixDigest) -> str | None:
    """Hex MD5 of the file: the prefix, then the rest read from disk (None: no prefix)."""
    if prefix.length == 0 or os.path.getsize(path) < prefix.length:
        return None
    return _hash_rest(prefix.md5.copy(), path, prefix.length)


def check_hdf5(path: str | os.PathLike) -> None:
    """Raise VerifyError unless h5py can open the file and read its root group."""
    import h5py  # imported here: the stand-in and the CLI do not need it to start

    try:
        with h5py.File(path, "r") as h5:
            list(h5.keys())
    except (OSError, ValueError) as error:
        raise VerifyError(f"not a readable HDF5 file: {error}") from None


def verify(path: str | os.PathLike, expected_md5: str, prefix: PrefixDigest | None = None) -> None:
    """Raise VerifyError unless the file has the expected MD5 and opens as HDF5.

    ``prefix``: what the download hashed already. A file is never rejected on it
    alone: a mismatch is checked again by reading the whole file.
    """
    expected_md5 = expected_md5.lower()
    actual = _md5_from(path, prefix) if prefix is not None else None
    if actual != expected_md5:
        actual = md5sum(path)
    if actual != expected_md5:
        size = os.path.getsize(path)
        raise VerifyError(f"MD5 {actual} of {size} bytes differs from announced {expected_md5}")
    check_hdf5(path)
