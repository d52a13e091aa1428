"""Taking over the original collector's volume (issue 17): the first start on it.

The volume is built as the original leaves it when the observatory stops its container:
three days of sdr/ files (six passes of Suomi-NPP and NOAA-20, every band our products
use, realistic names, mtimes a few minutes after each granule, the newest pass 45
minutes old), two of them truncated by an interrupted copy and one zero-filled (a crash
before the data reached the disk), a partial download and two queue lock files of its
mirror in tmp/, an elements/noaa.txt, its supervisord.log belonging to UID 12345 (mode
0644) and one of its AUTO child logs (0600), and no state/. GINA (the stand-in) lists
the true files of the last 48 hours; the older ones it no longer lists.

The collector starts under the real supervisord.conf and crontab, without any of root's
capabilities (helpers.privileges), so the foreign log is read-only to it as to the
container's UID 2001. Building the volume gives every file a fresh ctime, as a restore or
``chown -R`` does in the field: "old" can only be judged by the files' mtimes.

Checked: no task for any of the original's granules; a granule landing afterwards (once
trollstalker's catch-up and the gatherers' replay at start have run, so an old task
would already be queued) is a task within seconds and the first a worker gets; the
truncated and zero-filled files are in quarantine/ with their bytes intact and GINA's
files are back in sdr/; the partial download is fetched; the foreign log is moved aside
and the collector logs under its own name; every other file of the volume has the bytes,
size, mtime, mode and owner it had.

Which rule each assertion needs: "no task for the original's granules" the first-start
rule of issue 17 (helper ``recovery``); "within seconds and the first a worker gets"
that same rule for the original's passes younger than VIIRS_STALE_TASK_HOURS (3: they
would stay ahead of the new granule) and newest granule first (helper ``broker``) for
the older ones. The task assertions come last, so the adoption's own are checked first.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path

import pytest
from helpers.privileges import drop_capabilities, effective_capabilities, is_root
from system_helpers import PRODUCTS, granule_start, granules_in, land, wait_until, write_granule

from avoviirscollector import verify
from avoviirscollector.broker.task_client import TaskClient
from avoviirscollector.operator.collector_process import GATHERERS
from avoviirscollector.standins.celestrak import TleStandin, sample_elements

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not is_root(), reason="needs root to own files as another UID"),
]

OTHER_UID = 12345
#: Hours before now of the original's passes (two granules each), over three days.
PASSES_HOURS_AGO = (0.75, 5, 26, 30, 50, 70)
#: GINA lists the files younger than this; older ones only get the HDF5 check.
LISTED_HOURS = 48
SIZE = 40_000
#: Seconds from a granule's files landing in sdr/ to its task being available.
TASK_WITHIN = 15.0


def inventory(base: Path) -> dict[str, tuple]:
    """Every regular file below ``base``: (md5, size, mtime_ns, mode, uid)."""
    found = {}
    for path in base.rglob("*"):
        info = path.lstat()
        if path.is_file() and not path.is_symlink():
            found[str(path.relative_to(base))] = (
                verify.md5sum(path),
                info.st_size,
                info.st_mtime_ns,
                info.st_mode,
                info.st_uid,
            )
    return found


def build_volume(base: Path, gina_dir: Path, now: dt.datetime) -> dict:
    """The original's volume; what the test must know about it."""
    sdr, tmp, staging = base / "sdr", base / "tmp", base.parent / "staging"
    for directory in (sdr, tmp, base / "log", base / "elements", staging):
        directory.mkdir(parents=True)
    passes = []
    for index, hours in enumerate(PASSES_HOURS_AGO):
        platform = ("npp", "j01")[index % 2]
        origin = now - dt.timedelta(hours=hours)
        orbit = (70000, 36000)[index % 2] - int(hours / 1.7)
        target = gina_dir if hours < LISTED_HOURS else staging
        granules = []
        for number in range(2):
            start = granule_start(number, origin)
            paths = write_granule(target, platform, start, orbit, SIZE)
            for path in paths:
                copy = sdr / path.name
                shutil.copyfile(path, copy)
                arrived = (start + dt.timedelta(minutes=12)).replace(tzinfo=dt.UTC).timestamp()
                os.utime(copy, (arrived, arrived))
            granules.append({p.name[:5]: p.name for p in paths})
        passes.append(granules)
    truncated = [passes[0][0]["SVI05"], passes[1][0]["GMTCO"]]
    zero_filled = passes[1][1]["SVM15"]
    for name in truncated:
        with open(sdr / name, "r+b") as stream:
            stream.truncate(SIZE * 6 // 10)
    mtime = (sdr / zero_filled).stat().st_mtime
    (sdr / zero_filled).write_bytes(b"\0" * SIZE)
    os.utime(sdr / zero_filled, (mtime, mtime))
    partial = passes[0][1]["SVM03"]  # the original was downloading it when it was stopped
    (tmp / partial).write_bytes((sdr / partial).read_bytes()[: SIZE // 3])
    (sdr / partial).unlink()
    locks = ["viirs-moderate-snpp.lock", "noaa20_GITCO-SVI01-SVI04-SVI05.lock"]
    for name in locks:
        (tmp / name).write_text("4711\n")
    shutil.rmtree(staging)
    return {
        "bad": [*truncated, zero_filled],
        "partial": partial,
        "leftovers": [f"tmp/{partial}", *(f"tmp/{name}" for name in locks)],
    }


def add_original_logs_and_elements(base: Path, tle: TleStandin) -> None:
    log = base / "log"
    (log / "supervisord.log").write_text("2026-11-30 23:59:01,000 INFO supervisord started\n")
    os.chown(log / "supervisord.log", OTHER_UID, OTHER_UID)
    (log / "supervisord.log").chmod(0o644)
    auto = log / "trollstalker-stdout---supervisor-3f9x2a.log"
    auto.write_text("the original's trollstalker\n")
    os.chown(auto, OTHER_UID, OTHER_UID)
    auto.chmod(0o600)
    elements = base / "elements" / "noaa.txt"  # as the original's wget -N left it
    elements.write_bytes(tle.body)
    os.utime(elements, (tle.last_modified, tle.last_modified))


@pytest.fixture
def tle():
    server = TleStandin(sample_elements())
    server.set_body(sample_elements(), last_modified=time.time() - 7200)
    server.start()
    yield server
    server.stop()


def new_granule_at_the_head(client: TaskClient, start: dt.datetime, since: float, timeout: float):
    """Peek (just testing) until the head task is the granule starting at ``start``:
    (seconds it took or None, the granules seen at the head meanwhile)."""
    seen = set()
    while time.monotonic() - since < timeout:
        task = client.request(list(PRODUCTS), just_testing=True)
        if task is not None:
            heads = {key[1:] for key in granules_in([task])}
            if heads == {("npp", start)}:
                return time.monotonic() - since, seen
            seen |= heads
        time.sleep(0.1)
    return None, seen


def start_up_look_back_done(collector) -> bool:
    """trollstalker's catch-up and every gatherer's replay have run (their log lines)."""
    if "catch-up" not in collector.log("trollstalker"):
        return False
    return all("replay" in collector.log(name).lower() for name in GATHERERS)


def drain(client: TaskClient) -> list:
    tasks = []
    while (task := client.request(list(PRODUCTS))) is not None:
        tasks.append(task)
    return tasks


def refetched(base: Path, gina, names) -> bool:
    sdr, quarantine = base / "sdr", base / "quarantine"
    for name in names:
        if not (quarantine / name).exists() or not (sdr / name).exists():
            return False
        if verify.md5sum(sdr / name) != gina.md5(name):
            return False
    return True


def test_first_start_on_the_original_s_volume_adopts_it_and_changes_nothing_else(
    short_dir, gina, tle, start_collector
):
    base = short_dir / "viirs"
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    volume = build_volume(base, gina.directory, now)
    add_original_logs_and_elements(base, tle)
    gina.scan()
    before = inventory(base)
    bad_copies = {name: before[f"sdr/{name}"][0] for name in volume["bad"]}

    collector = start_collector(
        base=base,
        gina=gina,
        cron=True,
        preexec_fn=drop_capabilities,
        HOME="/tmp",
        TLE_URL=tle.url,
    )
    assert effective_capabilities(collector.pid("task_broker")) == 0

    wait_until(
        lambda: start_up_look_back_done(collector),
        60,
        "trollstalker's catch-up and the gatherers' replay of sdr/ at start",
    )
    time.sleep(1)  # what they published reaches the broker (an old task would be queued now)
    new_start = granule_start(0, now - dt.timedelta(minutes=14))
    landing = write_granule(short_dir / "new", "npp", new_start, 70001, SIZE)
    client = TaskClient(port=collector.task_port, timeout=5.0)
    try:
        landed = time.monotonic()
        land(landing, base / "sdr")
        seconds, heads_before = new_granule_at_the_head(client, new_start, landed, 60)
        head = client.request(list(PRODUCTS))

        wait_until(
            lambda: (
                refetched(base, gina, volume["bad"]) and (base / "sdr" / volume["partial"]).exists()
            ),
            240,
            "the bad files quarantined and GINA's fetched again, the partial download fetched",
        )
        time.sleep(2)  # the refetched files' messages reach the gatherers and the broker
        rest = drain(client)
    finally:
        client.close()
    logs = {name: collector.log(name) for name in ("run", "supercronic")}
    collector.stop()
    after = inventory(base)

    quarantine = base / "quarantine"
    for name, md5 in bad_copies.items():
        assert verify.md5sum(quarantine / name) == md5, "quarantined as it was, never deleted"
        assert (quarantine / f"{name}.json").exists()
        assert after[f"sdr/{name}"][0] == gina.md5(name), "fetched again from GINA"
    assert after[f"sdr/{volume['partial']}"][0] == gina.md5(volume["partial"])
    assert "verification begins (first start" in logs["supercronic"]
    assert "verification finished" in logs["supercronic"]
    assert "moved aside to supervisord.log.original-12345" in logs["run"]

    moved = "log/supervisord.log"
    assert after[f"{moved}.original-{OTHER_UID}"] == before[moved]
    assert after[moved][4] != OTHER_UID, "the collector logs under its own name"
    unchanged = set(before) - {f"sdr/{n}" for n in volume["bad"]} - set(volume["leftovers"])
    unchanged.discard(moved)
    for path in volume["leftovers"]:
        assert path not in after, f"{path} (the original's) is still there"
    changed = sorted(p for p in unchanged if after.get(p) != before[p])
    assert changed == [], [(p, before[p], after.get(p)) for p in changed]

    # The tasks, last: these need the first-start rule (recovery) and newest first (broker).
    assert seconds is not None and seconds < TASK_WITHIN, (
        f"the new granule was not the head task within {TASK_WITHIN} s ({seconds} s); "
        f"at the head instead: {sorted(heads_before)}"
    )
    assert [key[1:] for key in granules_in([head])] == [("npp", new_start)], "head"
    old = [key for key in granules_in(rest) if key[2] != new_start]
    assert old == [], f"tasks for the original's granules: {old}"
    assert set(granules_in([head, *rest])) == {(p, "npp", new_start) for p in PRODUCTS}
