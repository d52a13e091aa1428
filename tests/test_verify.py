"""verify.py: the MD5 a download hashes as it writes, finished from disk, never trusted alone."""

from __future__ import annotations

import datetime as dt
import hashlib
import os

import pytest

from avoviirscollector import verify
from avoviirscollector.standins import synthetic_sdr

CONTENT = os.urandom(3 * verify.READ_SIZE + 12345)
TRUE_MD5 = hashlib.md5(CONTENT).hexdigest()


def written(tmp_path, pieces):
    """A file written piece by piece at the given offsets, and the prefix fed alongside."""
    path, prefix = tmp_path / "file.part", verify.PrefixDigest()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        for offset, end in pieces:
            os.pwrite(fd, CONTENT[offset:end], offset)
            prefix.wrote(offset, CONTENT[offset:end])
    finally:
        os.close(fd)
    return path, prefix


def test_writes_in_file_order_hash_the_whole_file_as_it_is_written(tmp_path):
    step = 100_000
    _, prefix = written(tmp_path, [(o, o + step) for o in range(0, len(CONTENT), step)])
    assert prefix.length == len(CONTENT), "nothing left to read back"
    assert prefix.md5.hexdigest() == TRUE_MD5


def test_a_second_range_segment_is_read_back_from_disk(tmp_path):
    middle = len(CONTENT) // 2
    path, prefix = written(tmp_path, [(middle, len(CONTENT)), (0, middle)])  # out of order
    assert prefix.length == middle
    assert verify._md5_from(path, prefix) == TRUE_MD5


def test_rewriting_hashed_bytes_starts_the_prefix_over(tmp_path):
    # Range ignored after a split: the whole file comes again from byte 0 (downloader.Plan).
    _, prefix = written(tmp_path, [(0, 500_000), (0, 200_000)])
    assert prefix.length == 200_000
    assert prefix.md5.hexdigest() == hashlib.md5(CONTENT[:200_000]).hexdigest()


def test_a_prefix_that_disagrees_with_the_disk_never_rejects_a_good_file(tmp_path):
    path = synthetic_sdr.make_sdr_file(tmp_path, "SVI05", "npp", dt.datetime(2026, 12, 1))
    wrong = verify.PrefixDigest()
    wrong.wrote(0, b"not what is on disk")
    verify.verify(path, verify.md5sum(path), wrong)  # read again in full: accepted

    with pytest.raises(verify.VerifyError, match="differs from announced"):
        verify.verify(path, "0" * 32, wrong)
