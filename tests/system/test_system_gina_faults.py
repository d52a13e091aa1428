"""GINA on a bad day: every good file arrives, no bad file is placed, each failure mailed once.

The collector runs under its real supervisord.conf, GINA_URL pointing at the GINA
stand-in, errors mailed to a real SMTP server on loopback. One run of mirror_gina
(the crontab's command) meets, on 20 files of Suomi-NPP: 500s that pass, 500s that
do not, a connection cut mid-body, corrupted bytes, a file that is not HDF5 but
has the MD5 the catalogue announces, a transfer that stalls, and products.json
answered once with malformed JSON (the first poll is blind: one line, mailed). A
second run fetches everything, fails the bad files and remembers them, so a third
holds them back without asking GINA for them.

Expected: sdr/ ends with exactly the good files, each GINA's bytes and valid HDF5;
each run sends at most one mail, and across both runs every failure is one record
of one mail, never one per retry or per log line.
"""

from __future__ import annotations

import re

import pytest
from system_helpers import assert_sdr_holds_only_verified_files, run_mirror

from avoviirscollector.standins import synthetic_sdr

pytestmark = pytest.mark.system

#: A log record's first line in a mail (a record may go on with a traceback).
RECORD = re.compile(r"^\S+Z mirror_gina (ERROR|CRITICAL) ", re.M)


def mirror_mails(smtp_server) -> list:
    return [m for m in smtp_server.messages if "mirror_gina" in m["Subject"]]


def test_gina_faults_place_every_good_file_never_a_bad_one_and_mail_each_failure_once(
    gina, start_collector, smtp_server
):
    names = sorted(p.name for p in synthetic_sdr.make_pass(gina.directory, "npp", granules=2))
    passing_500, failing_500, cut, corrupt, not_hdf5, stalled = names[:6]
    gina.scan()
    gina.fault("error", passing_500, times=2)
    gina.fault("error", failing_500)
    gina.fault("cut", cut, times=1, after=60_000)
    gina.fault("corrupt", corrupt)
    gina.fault("not_hdf5", not_hdf5)
    gina.fault("stall", stalled, times=1, after=20_000, seconds=60)
    gina.catalog_fault("malformed", times=1)
    bad = {failing_500, corrupt, not_hdf5}
    collector = start_collector(gina=gina)

    first = run_mirror(collector, "--stall-seconds", "2")
    mails_first = len(mirror_mails(smtp_server))
    second = run_mirror(collector, "--stall-seconds", "2")

    assert first.returncode == 1, "the poll could not list GINA's products"
    assert second.returncode == 0, second.stderr[-2000:]
    placed = assert_sdr_holds_only_verified_files(collector.sdr_dir, gina)
    assert sorted(placed) == sorted(set(names) - bad)
    assert not list((collector.base_dir / "tmp").rglob("*.part"))

    mails = mirror_mails(smtp_server)
    assert mails_first == 1 and len(mails) <= 2, [m["Subject"] for m in mails]
    records = [r for m in mails for r in RECORD.split(m.get_content())[2::2]]
    assert sum("could not list GINA's products" in r for r in records) == 1, records
    for name in bad:
        assert sum(name in r and "not placed" in r for r in records) == 1, (name, records)
    assert len(records) == len(bad) + 1, "one record per failure, nothing else"
    for mail in mails:
        count = len(RECORD.findall(mail.get_content()))
        assert mail["Subject"].endswith(f": {count} error{'s' if count != 1 else ''}")
    requests = {name: gina.requests[name] for name in bad}
    third = run_mirror(collector, "--stall-seconds", "2")
    assert third.returncode == 0
    assert {name: gina.requests[name] for name in bad} == requests, "held back, not asked"
