"""A task's quick-look PNG, made with satpy: the ``viirs_sdr`` reader and satpy's own writer.

satpy is the ``worker`` extra (``pip install 'avoviirscollector[worker]'``); the collector
does not need it, so it is imported here, when the first image is made, and its absence
is one clear line (:class:`SatpyMissing`). The composites and their stretches are satpy
configuration shipped beside this module (``etc/composites/viirs.yaml``,
``etc/enhancements/viirs.yaml``); nothing is downloaded.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from avoviirscollector.worker.quicklook_rules import PRODUCTS, TaskError, image_name

#: satpy configuration of the quick-look composites and enhancements.
CONFIG_DIR = Path(__file__).resolve().parent / "etc"
INSTALL_HINT = "pip install 'avoviirscollector[worker]'"

log = logging.getLogger(__name__)


class SatpyMissing(RuntimeError):
    """satpy (the ``worker`` extra) is not installed."""


class _ResampleNotice(logging.Filter):
    """satpy warns that an RGB of M and I bands needs resampling; we resample it, always."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "may require resampling" not in record.getMessage()


def require_satpy():
    """satpy, with our composites on its config path; SatpyMissing when not installed."""
    try:
        import satpy
    except ImportError as error:
        raise SatpyMissing(
            f"the reference worker needs satpy, which the collector's own install leaves out: "
            f"{INSTALL_HINT} ({error})"
        ) from None
    paths = [str(p) for p in satpy.config.get("config_path", [])]
    if str(CONFIG_DIR) not in paths:
        satpy.config.set(config_path=[*paths, str(CONFIG_DIR)])
        logging.getLogger("satpy.scene").addFilter(_ResampleNotice())
        for chatty in ("satpy", "pyresample"):  # INFO lines per dataset; ours say what matters
            logger = logging.getLogger(chatty)
            logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    return satpy


@dataclass
class Quicklook:
    """What one image was made from, as satpy read it (also written beside it as JSON)."""

    image: str
    product: str
    files: list[str]
    bands: dict[str, list[int]] = field(default_factory=dict)  # band -> [rows, columns]
    platform_name: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    orbit: int | None = None
    load_seconds: float = 0.0
    write_seconds: float = 0.0
    task: dict = field(default_factory=dict)  # subject, task_id, orbit of the task

    def describe(self) -> str:
        """One log line: the bands, their sizes, the satellite and time, the durations."""
        bands = ", ".join(f"{b} {r}x{c}" for b, (r, c) in self.bands.items())
        return (
            f"{self.product} of {self.platform_name} orbit {self.orbit} "
            f"{self.start_time} to {self.end_time}: loaded {bands} from {len(self.files)} files "
            f"in {self.load_seconds:.2f} s, wrote {self.image} in {self.write_seconds:.2f} s"
        )


def _iso(value) -> str | None:
    return value.isoformat() if isinstance(value, dt.datetime) else None


def make(product: str, files: list[str], output_dir: Path, task: dict | None = None) -> Quicklook:
    """Load ``files`` (exactly those) with satpy and write the product's PNG into ``output_dir``.

    The PNG and its JSON are written under hidden names and renamed, so a watcher never
    sees half an image. TaskError when a file is missing; satpy's errors pass through.
    """
    satpy = require_satpy()
    spec = PRODUCTS[product]
    missing = [path for path in files if not os.path.exists(path)]
    if missing:
        raise TaskError(
            f"{len(missing)} of the task's {len(files)} files are not there "
            f"(cleaned up, or another machine's path?): {', '.join(map(os.path.basename, missing))}"
        )
    began = time.monotonic()
    scene = satpy.Scene(filenames=list(files), reader="viirs_sdr")
    scene.load([*spec.bands, spec.composite])
    bands = {band: list(scene[band].shape) for band in spec.bands}
    if spec.composite not in scene:  # M and I bands: bring them onto the I-band swath
        scene = scene.resample(scene.finest_area(), resampler="native")
    image = scene[spec.composite]
    loaded = time.monotonic()
    output_dir.mkdir(parents=True, exist_ok=True)
    name = image_name(product, files)
    hidden = output_dir / f".{name[:-4]}.writing.png"
    with warnings.catch_warnings():  # I01 / M05 at night is 0 / 0: NaN, a transparent pixel
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        scene.save_dataset(spec.composite, filename=str(hidden), writer="simple_image")
    os.replace(hidden, output_dir / name)
    attrs = image.attrs
    made = Quicklook(
        image=name,
        product=product,
        files=[os.path.basename(path) for path in files],
        bands=bands,
        platform_name=attrs.get("platform_name"),
        start_time=_iso(attrs.get("start_time")),
        end_time=_iso(attrs.get("end_time")),
        orbit=None if attrs.get("start_orbit") is None else int(attrs["start_orbit"]),
        load_seconds=round(loaded - began, 3),
        write_seconds=round(time.monotonic() - loaded, 3),
        task=dict(task or {}),
    )
    record = output_dir / f".{name[:-4]}.json.writing"
    record.write_text(json.dumps(asdict(made), indent=2, default=str) + "\n")
    os.replace(record, output_dir / f"{name[:-4]}.json")
    return made
