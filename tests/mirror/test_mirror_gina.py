"""mirror_gina against the GINA stand-in: what lands in sdr/, what is mailed, what survives kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from avoviirscollector import verify
from avoviirscollector.mirror import downloader, failure_memory, gina_catalog, listing
from avoviirscollector.mirror.downloader import Options
from avoviirscollector.mirror.failure_memory import FailureMemory
from avoviirscollector.mirror.gina_catalog import Queue
from avoviirscollector.mirror.locks import QueueLock
from avoviirscollector.mirror.mirror_run import QueueRun
from avoviirscollector.standins import synthetic_sdr
from avoviirscollector.standins.gina import GinaStandin

QUEUES = """
queues:
  - name: snpp-moderate
    satellite: snpp
    bands: [GMTCO, SVM03, SVM04, SVM05, SVM15, SVM16]
  - name: snpp-imagery
    satellite: snpp
    bands: [GITCO, SVI01, SVI04, SVI05]
  - name: noaa21-imagery
    satellite: noaa21
    bands: [GITCO, SVI01, SVI04, SVI05]
    enabled: false
"""
MIRROR = [sys.executable, "-m", "avoviirscollector.cli", "mirror"]
#: The console script, as cron starts it: it leaves without the interpreter's teardown
#: (mirror_gina.leave) once it has run the exit handlers, the error mail's among them.
CONSOLE_SCRIPT = [str(Path(sys.executable).parent / "mirror_gina")]


@pytest.fixture
def gina_dir(tmp_path):
    """Two granules of Suomi-NPP with every band (20 files) and one NOAA-20 granule."""
    directory = tmp_path / "gina"
    synthetic_sdr.make_pass(directory, "npp", granules=2, size=300_000)
    synthetic_sdr.make_pass(directory, "j01", granules=1, segments=("SVM15",), size=100_000)
    return directory


@pytest.fixture
def gina(gina_dir):
    with GinaStandin(gina_dir) as standin:
        yield standin


@pytest.fixture
def queue_file(tmp_path):
    path = tmp_path / "queues.yaml"
    path.write_text(QUEUES)
    return path


@pytest.fixture
def env(base_dir, gina, queue_file):
    return {**os.environ, "VIIRS_BASE_DIR": str(base_dir), "GINA_URL": gina.url}


def npp_files(gina_dir: Path) -> set[str]:
    return {p.name for p in gina_dir.glob("*_npp_*.h5")}


def mirror(env, queue_file, *args, timeout=60, command=MIRROR):
    return subprocess.run(
        [*command, "--now", "--queues", str(queue_file), "--retry-pause", "0.05", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def placed(base_dir: Path) -> set[str]:
    return {p.name for p in (base_dir / "sdr").iterdir()}


def assert_only_verified_files(base_dir: Path, gina: GinaStandin):
    for path in (base_dir / "sdr").iterdir():
        assert verify.md5sum(path) == gina.md5(path.name), f"{path.name} is not GINA's file"
        with h5py.File(path, "r"):
            pass


def products_of(gina: GinaStandin):
    """The stand-in's whole listing, parsed as a poll does."""
    body = listing.fetch_document(gina.url).body
    return gina_catalog.parse_products(body)[0]


def temp_files(base_dir: Path) -> list[Path]:
    return [p for p in (base_dir / "tmp").rglob("*") if p.is_file() and p.suffix != ".lock"]


def test_run_places_every_wanted_file_verified_then_next_run_fetches_nothing(
    env, queue_file, base_dir, gina, gina_dir
):
    run = mirror(env, queue_file)
    assert run.returncode == 0, run.stderr
    assert placed(base_dir) == npp_files(gina_dir), "NOAA-20 is in no enabled queue"
    assert_only_verified_files(base_dir, gina)
    assert temp_files(base_dir) == []
    assert run.stderr.count("fetched ") >= 20 and "verified" in run.stderr
    assert "wanted 20, fetched 20 (6.0 MB), failed 0" in run.stderr
    summary = json.loads((base_dir / "state" / "mirror_gina-last-run.json").read_text())
    assert summary["fetched"] == 20 and len(summary["queues"]) == 2
    assert summary["found"] == 40, "one listing, each queue sees Suomi-NPP's 20 files"
    assert gina.requests["catalog"] == 1, "one listing for both queues"
    requests = gina.requests["file"]

    again = mirror(env, queue_file)
    assert again.returncode == 0, again.stderr
    assert "fetched 0" in again.stderr and again.stderr.count("\n") == 1, "one line, --now"
    assert gina.requests["file"] == requests


#: mirror_gina, with a look at what is loaded when the listing request goes out.
AT_THE_REQUEST = """
import sys
from avoviirscollector.mirror import listing, mirror_gina
real = listing.fetch_document
def fetch_document(*args, **kwargs):
    names = [f"avoviirscollector.mirror.{m}" for m in ("mirror_run", "downloader", "flusher")]
    loaded = [name for name in names if name in sys.modules]
    print("loaded at the listing request:", loaded or "none", file=sys.stderr)
    return real(*args, **kwargs)
listing.fetch_document = fetch_document
sys.exit(mirror_gina.main())
"""


def test_the_listing_request_goes_out_before_the_fetching_side_is_loaded(
    env, queue_file, base_dir, gina, gina_dir
):
    """The engine, placer and cadence load while GINA answers (on GINA's own time)."""
    run = mirror(env, queue_file, command=[sys.executable, "-c", AT_THE_REQUEST])
    assert run.returncode == 0, run.stderr
    assert "loaded at the listing request: none" in run.stderr
    assert placed(base_dir) == npp_files(gina_dir)


@pytest.mark.parametrize("command", [MIRROR, CONSOLE_SCRIPT], ids=["viirscollector", "script"])
def test_bad_files_are_never_placed_good_ones_arrive_and_errors_are_mailed_once(
    env, queue_file, base_dir, gina, gina_dir, smtp_server, mail_env, command
):
    names = sorted(npp_files(gina_dir))
    corrupt, not_hdf5, flaky, cut = names[0], names[1], names[2], names[3]
    gina.fault("corrupt", corrupt)
    gina.fault("not_hdf5", not_hdf5)
    gina.fault("error", flaky, times=2)
    gina.fault("cut", cut, times=1, after=1000)
    run = mirror({**env, **mail_env}, queue_file, command=command)
    assert run.returncode == 0, run.stderr
    assert placed(base_dir) == npp_files(gina_dir) - {corrupt, not_hdf5}
    assert_only_verified_files(base_dir, gina)
    assert temp_files(base_dir) == []
    mails = smtp_server.messages
    assert len(mails) == 1, "one mail per run, not one per error"
    body = mails[0].get_content()
    assert corrupt in body and "differs from announced" in body
    assert not_hdf5 in body and "not a readable HDF5 file" in body
    assert flaky not in body and cut not in body, "retried transfers that succeeded are no error"
    assert "2 errors" in mails[0]["Subject"]


def test_failed_file_is_held_back_for_a_pause_then_retried(
    env, queue_file, base_dir, gina, gina_dir
):
    bad = sorted(npp_files(gina_dir))[0]
    gina.fault("corrupt", bad)
    assert mirror(env, queue_file).returncode == 0
    gina.clear_faults()
    requests = gina.requests[bad]

    held = mirror(env, queue_file)
    assert held.returncode == 0
    assert gina.requests[bad] == requests, "not asked again during its pause"
    assert bad not in placed(base_dir)

    state = next((base_dir / "state").glob("mirror_gina-snpp-*.json"))
    memory = FailureMemory.from_json(state.read_text())
    memory.failures[bad].last -= failure_memory.pause(1)  # as if the pause had passed
    state.write_text(memory.to_json())
    poll = base_dir / "state" / "mirror_gina-poll.json"
    document = json.loads(poll.read_text())
    assert document["retry_due"], "the poll knows a retry is due later: no 304 will hide it"
    document["retry_due"] -= failure_memory.pause(1)
    poll.write_text(json.dumps(document))
    retried = mirror(env, queue_file)
    assert retried.returncode == 0
    assert bad in placed(base_dir)
    assert FailureMemory.from_json(state.read_text()).failures == {}


def test_unusable_products_list_fails_the_poll_with_one_line_exit_1_and_a_mail(
    env, queue_file, base_dir, gina, gina_dir, smtp_server, mail_env
):
    gina.catalog_fault("malformed", times=1)
    run = mirror({**env, **mail_env}, queue_file)
    assert run.returncode == 1
    assert run.stderr.count("could not list GINA's products: answer is not JSON") == 1
    assert len(run.stderr.strip().splitlines()) == 1, "an outage costs one line per run"
    assert placed(base_dir) == set()
    assert len(smtp_server.messages) == 1
    assert "could not list" in smtp_server.messages[0].get_content()
    again = mirror(env, queue_file)
    assert again.returncode == 0 and placed(base_dir) == npp_files(gina_dir)
    assert "whole window (after an outage)" in again.stderr


def test_http_error_on_products_list_is_one_line_not_one_per_queue(env, queue_file, gina):
    gina.catalog_fault("error", status=503)
    run = mirror(env, queue_file)
    assert run.returncode == 1
    assert run.stderr.count("could not list GINA's products: HTTP 503") == 1
    assert "error mails are off: MAILHOST, LOG_SENDER and LOG_RECIPIENT" in run.stderr


def test_gina_outage_without_mail_settings_says_mails_are_off_never_already_mailed(
    env, queue_file, gina
):
    gina.catalog_fault("error", status=503)
    mirror(env, queue_file)
    second = mirror(env, queue_file)
    assert "already mailed" not in second.stderr
    assert second.stderr.count("error mails are off: MAILHOST, LOG_SENDER and LOG_RECIPIENT") == 1


def test_gina_outage_with_a_dead_mail_server_says_the_mail_failed_and_when_it_is_retried(
    env, queue_file, gina
):
    from avoviirscollector.netutil import free_port

    dead = {"MAILHOST": f"127.0.0.1:{free_port()}", "LOG_SENDER": "a@example.org",
            "LOG_RECIPIENT": "b@example.org"}  # fmt: skip
    gina.catalog_fault("error", status=503)
    first = mirror({**env, **dead}, queue_file)
    assert "could not mail 1 error record(s)" in first.stderr
    assert "kept, tried again the first run after " in first.stderr
    second = mirror({**env, **dead}, queue_file)
    assert "already mailed" not in second.stderr and "(mailed at" not in second.stderr
    assert second.stderr.count("(the error mail could not be sent at ") == 1
    assert "record(s) kept, tried again after " in second.stderr


def test_gina_outage_is_mailed_once_per_interval_not_every_cron_run(
    env, queue_file, gina, smtp_server, mail_env
):
    gina.catalog_fault("error", status=503)
    first = mirror({**env, **mail_env}, queue_file)
    assert len(smtp_server.wait_for(1)) == 1
    second = mirror({**env, **mail_env}, queue_file)
    assert first.returncode == second.returncode == 1
    assert second.stderr.count("WARNING") == 1 and "mailed at" in second.stderr
    assert len(smtp_server.messages) == 1, "a repeated outage inside the interval is not mailed"
    gina.clear_faults()
    third = mirror({**env, **mail_env}, queue_file)
    assert third.returncode == 0
    assert third.stderr.count("GINA answers again after") == 1


def test_outage_mails_at_its_start_then_once_per_interval():
    outage, mail = failure_memory.outage_failed(None, "HTTP 503", now=1000.0, interval=600.0)
    assert mail and outage.since == outage.mailed == 1000.0
    outage, mail = failure_memory.outage_failed(outage, "timeout", now=1300.0, interval=600.0)
    assert not mail and outage.since == 1000.0 and outage.error == "timeout"
    outage, mail = failure_memory.outage_failed(outage, "HTTP 503", now=1600.0, interval=600.0)
    assert mail and (outage.since, outage.mailed) == (1000.0, 1600.0)


def test_outage_record_round_trips_and_clears(tmp_path):
    path = tmp_path / "outage.json"
    assert failure_memory.load_outage(path) is None
    outage = failure_memory.Outage(since=1.0, mailed=2.0, error="HTTP 500")
    failure_memory.save_outage(outage, path)
    assert failure_memory.load_outage(path) == outage
    failure_memory.save_outage(None, path)
    assert not path.exists()


def test_second_run_skips_busy_queues_quickly_with_one_line_each(
    env, queue_file, base_dir, gina_dir
):
    with GinaStandin(gina_dir, rate=200_000) as slow:
        env = {**env, "GINA_URL": slow.url}
        first = subprocess.Popen(
            [*MIRROR, "--queues", str(queue_file)], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            assert slow.wait_for_bytes(100_000, timeout=20)
            began = time.monotonic()
            second = mirror(env, queue_file)
            assert time.monotonic() - began < 10
            assert second.returncode == 0
            assert second.stderr.count("skipped: another mirror_gina is polling") == 1
            assert "wanted" not in second.stderr
        finally:
            first.kill()
            first.wait(timeout=10)


def test_lock_of_a_dead_run_never_blocks_the_next_run(env, queue_file, base_dir):
    lock_path = base_dir / "tmp" / "mirror_gina-snpp-imagery.lock"
    lock_path.parent.mkdir(parents=True)
    lock_path.write_text("12345\n")  # left by a killed run: a file, but nobody holds the flock
    with QueueLock(base_dir / "tmp" / "mirror_gina-snpp-moderate.lock") as held:
        assert held.acquired
        run = mirror(env, queue_file)
    assert run.returncode == 0
    assert "queue snpp-moderate: skipped" in run.stderr
    assert "queue snpp-imagery: ok" in run.stderr
    assert placed(base_dir) and all(n.startswith(("GITCO", "SVI")) for n in placed(base_dir))


@pytest.mark.parametrize("served", [200_000, 2_500_000])
def test_sigkill_during_download_never_places_partial_file_and_next_run_completes(
    env, queue_file, base_dir, gina_dir, served
):
    with GinaStandin(gina_dir, rate=500_000) as slow:
        process = subprocess.Popen(
            [*MIRROR, "--queues", str(queue_file)],
            env={**env, "GINA_URL": slow.url},
            stderr=subprocess.DEVNULL,
        )
        try:
            assert slow.wait_for_bytes(served, timeout=30)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        assert_only_verified_files(base_dir, slow)
        assert len(placed(base_dir)) < 20
        assert temp_files(base_dir), "the killed run left temp files"
        slow.rate = None
        run = mirror({**env, "GINA_URL": slow.url}, queue_file)
        assert run.returncode == 0, run.stderr
        assert placed(base_dir) == npp_files(gina_dir)
        assert_only_verified_files(base_dir, slow)
        assert temp_files(base_dir) == []


def test_bad_queue_file_stops_with_one_line_and_status_2(env, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("queues:\n  - name: x\n    satellite: metop\n    bands: [SVM15]\n")
    run = mirror(env, broken)
    assert run.returncode == 2
    assert "'satellite' must be one of snpp, noaa20, noaa21" in run.stderr
    assert "Traceback" not in run.stderr
    missing = mirror(env, tmp_path / "nowhere.yaml")
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_stalled_file_does_not_hang_the_queue(make_settings, base_dir, gina, gina_dir):
    stalled = sorted(n for n in npp_files(gina_dir) if n.startswith("SVI05"))[0]
    gina.fault("stall", stalled, after=1000, seconds=60)
    settings = make_settings(VIIRS_BASE_DIR=base_dir, GINA_URL=gina.url)
    for directory in (settings.sdr_dir, settings.tmp_dir, settings.state_dir):
        directory.mkdir()
    queue = Queue("snpp-imagery", "snpp", ("GITCO", "SVI01", "SVI04", "SVI05"))
    options = Options(low_speed_time=1, max_failures=1, backoff_base=0.01)
    products = products_of(gina)
    began = time.monotonic()
    result = QueueRun(queue, settings, options).run(products)
    assert time.monotonic() - began < 15
    assert (result.status, result.wanted, result.fetched, result.failed) == ("ok", 8, 7, 1)
    assert stalled not in placed(base_dir)


# -- the failure memory's rules ---------------------------------------------------------


def test_pause_doubles_from_two_minutes_up_to_six_hours():
    assert [failure_memory.pause(n) for n in (0, 1, 2, 3)] == [0.0, 120.0, 240.0, 480.0]
    assert failure_memory.pause(30) == 6 * 3600


def test_memory_holds_a_failed_file_until_its_pause_is_over_and_forgets_successes():
    memory = FailureMemory()
    assert memory.due("a", 0.0)
    memory.failed("a", "bad md5", 1000.0)
    assert not memory.due("a", 1119.0) and memory.due("a", 1120.0)
    memory.failed("a", "bad md5", 1120.0)
    assert not memory.due("a", 1359.0) and memory.failures["a"].count == 2
    memory.succeeded("a")
    assert memory.due("a", 1121.0)


def test_memory_round_trips_and_prunes_old_failures(tmp_path):
    memory = FailureMemory()
    memory.failed("old", "x", 0.0)
    memory.failed("new", "y", failure_memory.FORGET_AFTER)
    memory.prune(failure_memory.FORGET_AFTER + 1)
    failure_memory.save(memory, tmp_path / "m.json")
    loaded, problem = failure_memory.load(tmp_path / "m.json")
    assert problem is None and list(loaded.failures) == ["new"]
    (tmp_path / "bad.json").write_text("{not json")
    empty, problem = failure_memory.load(tmp_path / "bad.json")
    assert empty.failures == {} and "unreadable" in problem


def _file_size_limit(limit: int):
    def apply():  # in the child: writes past ``limit`` fail with EFBIG, as on a full disk
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_write_error_of_this_machine_does_not_hold_the_file_back(
    env, queue_file, base_dir, gina, gina_dir
):
    """Regression: a full disk counted as each file's failure, so once space was back the
    files waited minutes (the failure pause) before the mirror tried them again."""
    full = subprocess.run(
        [*MIRROR, "--queues", str(queue_file), "--retry-pause", "0.05"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_file_size_limit(200_000),
    )
    assert placed(base_dir) == set() and temp_files(base_dir) == []
    assert "File too large" in full.stderr and "the next run tries it again" in full.stderr

    again = mirror(env, queue_file)
    assert again.returncode == 0, again.stderr
    assert placed(base_dir) == npp_files(gina_dir)
    assert "held back after failures" not in again.stderr


# -- issue 12 item 2: one odd name must not block a queue ---------------------------------


def _long_name(length: int) -> str:
    """A valid SDR file name of ``length`` bytes (the free-form source field padded)."""
    base = "SVI05_npp_d20261201_t0000000_e0001243_b70000_c20261201001000000000_"
    return base + "x" * (length - len(base) - len(".h5")) + ".h5"


def test_a_name_whose_temp_name_would_exceed_name_max_is_refused_at_parse_time():
    fits, too_long = _long_name(gina_catalog.MAX_NAME_BYTES), _long_name(251)
    entries = [{"url": f"http://gina/{name}", "md5sum": "0" * 32} for name in (fits, too_long)]
    products, problems = gina_catalog.parse_products(json.dumps(entries))
    assert [p.name for p in products] == [fits]
    assert len(fits + gina_catalog.TEMP_SUFFIX) == 255
    assert problems == [f"file name of 251 bytes, longer than 250: {too_long[:60]}..."]


def test_a_listed_name_of_252_bytes_costs_one_line_and_every_other_file_is_placed(
    env, queue_file, base_dir, gina, gina_dir
):
    """Regression: the .part name hit ENAMETOOLONG, the placer thread died, the run placed
    nothing, said "fetched 0, failed 0" and exited 0, every run while GINA listed it."""
    odd = gina_dir / _long_name(252)
    odd.write_bytes(next(gina_dir.glob("SVI05_npp_*.h5")).read_bytes())
    run = mirror(env, queue_file)
    assert run.returncode == 0, run.stderr
    assert placed(base_dir) == npp_files(gina_dir) - {odd.name}
    assert run.stderr.count("file name of 252 bytes") == 1
    assert "Traceback" not in run.stderr


def _poll_in_process(monkeypatch, base_dir, gina, queue_file, capsys):
    from avoviirscollector.mirror import mirror_gina

    monkeypatch.setenv("VIIRS_BASE_DIR", str(base_dir))
    monkeypatch.setenv("GINA_URL", gina.url)
    status = mirror_gina.main(["--now", "--queues", str(queue_file), "--retry-pause", "0.05"])
    return status, capsys.readouterr().err


def test_an_error_while_placing_one_file_fails_that_file_only(
    monkeypatch, base_dir, gina, gina_dir, queue_file, capsys
):
    from avoviirscollector.mirror import mirror_run

    victim = sorted(npp_files(gina_dir))[3]
    real_verify = mirror_run.verify.verify

    def verify(path, md5, prefix=None):
        if path.name.startswith(victim):
            raise RuntimeError("a surprise")
        return real_verify(path, md5, prefix)

    monkeypatch.setattr(mirror_run.verify, "verify", verify)
    status, err = _poll_in_process(monkeypatch, base_dir, gina, queue_file, capsys)
    assert status == 0
    assert placed(base_dir) == npp_files(gina_dir) - {victim}
    assert f"{victim} not placed: unexpected error: RuntimeError: a surprise" in err
    memories = [
        FailureMemory.from_json(p.read_text())
        for p in (base_dir / "state").glob("mirror_gina-snpp-*.json")
    ]
    assert any(victim in m.failures for m in memories), "remembered for a later retry"


def test_a_dead_placer_thread_is_a_failed_run_not_a_silent_success(
    monkeypatch, base_dir, gina, gina_dir, queue_file, capsys
):
    from avoviirscollector.mirror import mirror_run

    def die(self, task):
        raise SystemExit("killed")  # not an Exception: nothing in the file's path catches it

    monkeypatch.setattr(mirror_run.Placer, "_one", die)
    status, err = _poll_in_process(monkeypatch, base_dir, gina, queue_file, capsys)
    assert status == 1
    assert "ERROR" in err and "the placer thread died" in err
    summary = json.loads((base_dir / "state" / "mirror_gina-last-run.json").read_text())
    assert {q["status"] for q in summary["queues"]} == {"failed"}


# -- issue 12 item 5: a slow file has a deadline ------------------------------------------


def test_a_file_past_its_deadline_is_given_up_by_the_plan():
    task = downloader.FileTask("http://x/a", "/tmp/a.part")
    plan = downloader.Plan([task], Options(floor_rate=1000.0, deadline_allowance=1.0))
    segment = plan.next_segment(now=100.0)
    assert task.deadline == 101.0, "before the size is known: the allowance alone"
    plan.accept(segment, 206, {"content-range": "bytes 0-9999/10000"})
    assert task.deadline == 111.0, "started + allowance + size / floor rate"
    assert plan.overdue(110.9) == [] and plan.overdue(111.1) == [task]
    assert plan.give_up(task, "too slow") == [segment]
    assert task.status == "failed" and plan.finished()


def test_a_dripping_file_is_failed_at_its_deadline_and_newer_granules_still_arrive(
    env, queue_file, base_dir, gina, gina_dir
):
    slow = sorted(n for n in npp_files(gina_dir) if n.startswith("SVI05"))[-1]
    gina.fault("slow", slow, rate=5_000)  # 300 kB at 5 kB/s: a minute, for a 4 s deadline
    env = {**env, "GINA_FLOOR_RATE_KBPS": "100"}
    began = time.monotonic()
    run = mirror(env, queue_file, "--deadline-allowance", "1")
    assert time.monotonic() - began < 30
    assert run.returncode == 0, run.stderr
    assert placed(base_dir) == npp_files(gina_dir) - {slow}
    assert f"{slow} not placed: download failed" in run.stderr and "too slow" in run.stderr

    newer = synthetic_sdr.make_pass(
        gina_dir, "npp", granules=1, size=300_000, segments=("GITCO", "SVI05")
    )
    again = mirror(env, queue_file, "--deadline-allowance", "1")
    assert again.returncode == 0
    assert {p.name for p in newer} <= placed(base_dir), "the newer granule is not stuck"
    assert slow not in placed(base_dir), "held back for its pause, retried later"
