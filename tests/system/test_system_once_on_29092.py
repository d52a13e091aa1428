"""Issue 14 item 2: each file is published on the message port (29092) once.

The collector runs under its real supervisord.conf. Granules land; trollstalker is
killed with SIGKILL and restarted, which makes it catch up (it publishes the files
it may have missed again) and makes every gatherer replay (its granules again):
repeats that recovery needs inside the collector. A subscriber of 29092 must see
each file and each granule once; an operator's ``viirscollector reprocess`` still
passes, marked as such. The collector runs with credentials in its URL settings, and no
message on 29092 carries them (issue 12.7).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections import Counter

import pytest
from helpers.bus import ZmqReader
from system_helpers import PRODUCTS, granule_start, land, mirror_env, wait_until, write_granule

from avoviirscollector import bus

pytestmark = pytest.mark.system

GRANULES = 3
#: Credentials in every URL setting; none may reach a message.
SECRETS = {
    "GINA_URL": "http://gina:hun@ter2@127.0.0.1:9/products.json?token=tok3nvalue",
    "TLE_URL": "http://BEARERTOKEN42@127.0.0.1:9/gp.php?password=s3cr3tpw",
}


def test_sigkill_of_trollstalker_repeats_no_file_or_granule_on_the_message_port(start_collector):
    collector = start_collector(**SECRETS)
    staging = collector.base_dir / "tmp" / "staging"
    origin = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) - dt.timedelta(hours=2)
    landed = []
    messages: list[bus.Message] = []
    raw: list[str] = []
    with ZmqReader(collector.message_port) as reader:

        def read(quiet: float = 0.3):
            raw.extend(f.decode() for f in reader.drain(quiet))
            messages[:] = [bus.Message.decode(text) for text in raw]

        def files_seen():
            return {m.data["uid"] for m in messages if m.type == "file"}

        for index in range(GRANULES):
            paths = write_granule(staging, "j01", granule_start(index, origin), 35300, 20_000)
            land(paths, collector.sdr_dir)
            landed += [p.name for p in paths]
        wait_until(lambda: read() or files_seen() >= set(landed), 30, "every file on 29092")
        catch_ups = collector.log("trollstalker").count("catch-up:")

        old = collector.kill9("trollstalker")
        collector.wait_running(["trollstalker"], timeout=30, not_pids={old})
        wait_until(
            lambda: collector.log("trollstalker").count("catch-up:") > catch_ups,
            30,
            "trollstalker's catch-up after the restart",
        )
        wait_until(
            lambda: (
                "replayed after the restart of trollstalker" in collector.log("replay_listener")
            ),
            60,
            "the gatherers' replay after the restart",
        )
        read(2.0)
        repeats = Counter(m.data["uid"] for m in messages if m.type == "file")
        granules = Counter(m.subject for m in messages if m.type == "dataset")
        reprocess = subprocess.run(
            [sys.executable, "-m", "avoviirscollector.cli", "reprocess", "_b35300_"],
            env=mirror_env(collector),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert reprocess.returncode == 0, reprocess.stderr
        before = len(messages)
        wait_until(lambda: read() or len(messages) >= before + len(landed), 30, "the reprocess")
    assert {uid: n for uid, n in repeats.items() if n > 1} == {}
    assert sorted(repeats) == sorted(landed), "one message per file, the count equals the files"
    assert granules == {f"/AVO/viirs/granule/{p}": GRANULES for p in PRODUCTS}
    marked = [m for m in messages[before:] if m.type == "file"]
    assert len(marked) == len(landed) and all(m.data["reprocess"] for m in marked)
    secrets = ("hunter2", "hun@ter2", "tok3nvalue", "BEARERTOKEN42", "s3cr3tpw")
    assert [text for text in raw if any(secret in text for secret in secrets)] == []
