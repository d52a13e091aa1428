"""A full disk under /viirs: a clear error, nothing placed, nothing lost, recovery with space.

The base directory is a small tmpfs (tmp/ and sdr/ must share a file system for the
atomic rename; log/ and state/ are bind-mounted from a roomy one, see ROOMY), the
collector runs on it under its real supervisord.conf.
A filler file takes all but a little of the space; mirror_gina (the crontab's
command) then cannot write its downloads: each file's error is logged and mailed,
no partial file is left in tmp/ or placed in sdr/, and nothing is held against
the files. Once the filler is gone the next run fetches every file, and each
product of the granule reaches a worker as a task.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from system_helpers import (
    PRODUCTS,
    Worker,
    assert_sdr_holds_only_verified_files,
    granules_in,
    run_mirror,
    wait_until,
)

from avoviirscollector.standins import synthetic_sdr

pytestmark = pytest.mark.system

SIZE_MB = 24
#: Bytes left free after filling: room for logs and state files, not for a download.
LEFT_FREE = 512 * 1024


#: Directories of the base kept off the small disk (bind-mounted from a roomy one): the
#: daemons' logs and the recorder's history grow with the machine's load, and on the full
#: disk their writes raced the mirror's for the LEFT_FREE bytes, so the mirror's own state
#: writes (poll state, outage record) sometimes failed too and the run's errors were not
#: the downloads' alone (issue 14.12: "could not list GINA's products" once under load).
#: Only tmp/ and sdr/ (one file system: the atomic rename) are on the full disk.
ROOMY = ("log", "state")


def _mount(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *argv], capture_output=True, text=True)


def _unmount(path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def small_disk(short_dir):
    """A tmpfs of SIZE_MB as the base directory, log/ and state/ bind-mounted from elsewhere;
    unmounted after the collector stopped."""
    base = short_dir / "viirs"
    base.mkdir()
    mounted = _mount("-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(base))
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    bound = []
    try:
        for name in ROOMY:
            (short_dir / f"roomy-{name}").mkdir()
            (base / name).mkdir()
            done = _mount("--bind", str(short_dir / f"roomy-{name}"), str(base / name))
            assert done.returncode == 0, done.stderr
            bound.append(base / name)
        yield base
    finally:
        for path in reversed(bound):
            _unmount(path)
        _unmount(base)


def free_bytes(path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def test_full_disk_places_nothing_mails_a_clear_error_and_next_run_completes(
    small_disk, gina, start_collector, smtp_server
):
    names = sorted(
        p.name for p in synthetic_sdr.make_pass(gina.directory, "npp", granules=1, size=1_000_000)
    )
    collector = start_collector(base=small_disk, gina=gina)
    assert all(os.stat(small_disk / n).st_dev != os.stat(small_disk).st_dev for n in ROOMY)
    filler = small_disk / "tmp" / "filler"
    with open(filler, "wb") as stream:
        os.posix_fallocate(stream.fileno(), 0, free_bytes(small_disk) - LEFT_FREE)

    full = run_mirror(collector)

    assert full.returncode == 0, "GINA was listed; the files failed"
    assert list(collector.sdr_dir.iterdir()) == []
    assert not [p for p in (small_disk / "tmp").rglob("*") if p.is_file() and p.suffix == ".part"]
    errors = [line for line in full.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == len(names)
    assert all("No space left on device" in e and "the next run tries it" in e for e in errors)
    (mail,) = [m for m in smtp_server.wait_for(1) if "mirror_gina" in m["Subject"]]
    assert mail.get_content().count("No space left on device") == len(names)

    filler.unlink()
    worker = Worker(collector.task_port)
    worker.start()
    try:
        again = run_mirror(collector)
        assert again.returncode == 0, again.stderr[-2000:]
        assert sorted(assert_sdr_holds_only_verified_files(collector.sdr_dir, gina)) == names
        wait_until(lambda: len(granules_in(worker.done)) == len(PRODUCTS), 30, "the tasks")
    finally:
        worker.stop()
    assert sorted(task.subject.rsplit("/", 1)[1] for task in worker.done) == sorted(PRODUCTS)
