"""``mirror_gina --full``: a file that left sdr/ comes back even when GINA's listing is
unchanged (a conditional listing would get 304 and hide it): what verify-sdr asks for
after a quarantine."""

from __future__ import annotations

import os
import subprocess
import sys

from avoviirscollector import verify
from avoviirscollector.standins import synthetic_sdr
from avoviirscollector.standins.gina import GinaStandin

MIRROR = [sys.executable, "-m", "avoviirscollector.cli", "mirror"]


def test_full_listing_fetches_a_file_removed_from_sdr_although_gina_answers_304(tmp_path):
    served = synthetic_sdr.make_pass(
        tmp_path / "gina", "npp", granules=1, segments=("GITCO", "SVI05"), size=30_000
    )
    base = tmp_path / "viirs"
    with GinaStandin(tmp_path / "gina") as gina:
        env = {**os.environ, "VIIRS_BASE_DIR": str(base), "GINA_URL": gina.url}

        def mirror(*args):
            result = subprocess.run(
                [*MIRROR, *args], env=env, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, result.stderr
            return result

        mirror("--now")  # the whole window (first listing)
        mirror("--now")  # today's: GINA's validators for it are kept
        removed = base / "sdr" / served[1].name
        removed.unlink()  # quarantined by verify-sdr, or deleted by hand
        second = mirror("--now")
        assert not removed.exists(), second.stderr

        mirror("--full")

        assert verify.md5sum(removed) == gina.md5(removed.name)
