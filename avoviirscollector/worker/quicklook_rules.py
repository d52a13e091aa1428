"""What the reference worker makes of a task, with no I/O: bands, files, image names.

A task (a posttroll message from port 19091) names its product in its subject
(``/AVO/viirs/granule/tir``) and lists its files in ``data["dataset"]``, each with a
``uid`` (the file name) and a ``uri`` (where the collector put it). The worker loads
exactly those files: a directory search by time and platform would drop a granule
that crosses 00:00 UTC and mix in other satellites' files (README, "Writing a worker").

The quick-look of each product is a satpy composite of the SDR bands
(``worker/etc/composites/viirs.yaml``): no true_color, whose Rayleigh correction
needs pyspectral look-up tables that are downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from avoviirscollector.filenames import FilenameError, parse


@dataclass(frozen=True)
class Product:
    """A task product: the satpy composite that is its quick-look, and the bands it needs."""

    composite: str
    bands: tuple[str, ...]
    what: str


#: product -> its quick-look (the products of etc/segment_gatherer.ini).
PRODUCTS = {
    "tir": Product("avo_tir", ("I05",), "I05 11.45 µm brightness temperature, cold is white"),
    "mir": Product("avo_mir", ("I04",), "I04 3.74 µm brightness temperature, hot is white"),
    "btd": Product("avo_btd", ("M15", "M16"), "M15 - M16 split window, ash (negative) is dark"),
    "vis": Product(
        "avo_vis", ("M05", "M04", "M03", "I01"), "M05/M04/M03 RGB sharpened by I01 (sunz only)"
    ),
}


class TaskError(ValueError):
    """A task the worker cannot make an image of (said in one line, with the task)."""


def product_of(subject: str) -> str:
    """The product of a task: the last element of its subject, as the broker hands out."""
    product = subject.rstrip("/").rsplit("/", 1)[-1]
    if product not in PRODUCTS:
        raise TaskError(
            f"task {subject!r}: product {product!r} is not one of {', '.join(sorted(PRODUCTS))}"
        )
    return product


def _path_of(uri: str) -> str:
    """A local path from a ``uri``: a plain path or ``file://`` (host ignored)."""
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return unquote(parts.path) if parts.scheme else uri
    raise TaskError(f"uri {uri!r}: only local paths and file:// URIs can be read")


def task_files(data: Mapping, sdr_dir: str | None = None) -> list[str]:
    """The task's files, in its order: each ``uri`` (or ``sdr_dir``/``uid`` when given,
    for a worker that mounts the collector's sdr/ elsewhere). TaskError when unusable."""
    dataset = data.get("dataset") if isinstance(data, Mapping) else None
    if not isinstance(dataset, list) or not dataset:
        raise TaskError("task has no dataset (no file list)")
    paths = []
    for item in dataset:
        if not isinstance(item, Mapping) or not (item.get("uid") or item.get("uri")):
            raise TaskError(f"dataset entry {item!r} has neither uid nor uri")
        uid = item.get("uid") or os.path.basename(_path_of(item["uri"]))
        if sdr_dir is not None:
            paths.append(os.path.join(sdr_dir, uid))
        elif item.get("uri"):
            paths.append(_path_of(item["uri"]))
        else:
            raise TaskError(f"dataset entry {uid} has no uri (give the worker --sdr-dir)")
    return paths


def image_name(product: str, files: list[str]) -> str:
    """``tir_npp_d20260301_t2359300_e0002206_b70000.png``: product, platform, span, orbit.

    From the files' names: the first start, the last end and the first orbit, so the
    image of a merged task (several granules) is named after all of them.
    """
    try:
        names = sorted(parse(path) for path in files)
    except FilenameError as error:
        raise TaskError(str(error)) from None
    first, last = names[0], max(names, key=lambda n: n.end)
    tenths = lambda t: t.strftime("%H%M%S") + str(t.microsecond // 100000)  # noqa: E731
    return (
        f"{product}_{first.platform}_d{first.start:%Y%m%d}_t{tenths(first.start)}"
        f"_e{tenths(last.end)}_b{first.orbit:05d}.png"
    )
