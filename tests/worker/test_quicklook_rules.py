"""What the reference worker makes of a task, before satpy: product, files, image name."""

from __future__ import annotations

import datetime as dt

import pytest

from avoviirscollector.filenames import compose
from avoviirscollector.worker.quicklook_rules import (
    PRODUCTS,
    TaskError,
    image_name,
    product_of,
    task_files,
)

START = dt.datetime(2026, 3, 1, 23, 59, 30)


def name(segment: str, start: dt.datetime = START, platform: str = "j02") -> str:
    return compose(segment, platform, start, start + dt.timedelta(seconds=85.3), 9000, start)


def test_every_gatherer_product_has_a_quicklook_of_the_bands_the_issue_names():
    assert {p: spec.bands for p, spec in PRODUCTS.items()} == {
        "tir": ("I05",),
        "mir": ("I04",),
        "btd": ("M15", "M16"),
        "vis": ("M05", "M04", "M03", "I01"),
    }


def test_the_product_is_the_last_element_of_the_subject_and_an_unknown_one_is_refused():
    assert product_of("/AVO/viirs/granule/btd") == "btd"
    with pytest.raises(TaskError, match="'dnb' is not one of btd, mir, tir, vis"):
        product_of("/AVO/viirs/granule/dnb")


def test_the_files_are_the_tasks_uris_in_its_order_plain_or_file_uris():
    data = {
        "dataset": [
            {"uid": name("SVI05"), "uri": f"/viirs/sdr/{name('SVI05')}"},
            {"uid": name("GITCO"), "uri": f"file:///viirs/sdr/{name('GITCO')}"},
        ]
    }
    assert task_files(data) == [f"/viirs/sdr/{name('SVI05')}", f"/viirs/sdr/{name('GITCO')}"]
    mounted = [f"/mnt/sdr/{name('SVI05')}", f"/mnt/sdr/{name('GITCO')}"]
    assert task_files(data, "/mnt/sdr") == mounted


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "task has no dataset"),
        ({"dataset": []}, "task has no dataset"),
        ({"dataset": [{"size": 3}]}, "has neither uid nor uri"),
        ({"dataset": [{"uid": "GITCO_x.h5"}]}, "no uri (give the worker --sdr-dir)"),
        ({"dataset": [{"uri": "ssh://host/x.h5"}]}, "only local paths and file:// URIs"),
    ],
)
def test_a_task_without_usable_files_is_refused_in_one_line(data, message):
    with pytest.raises(TaskError, match=message.replace("(", r"\(").replace(")", r"\)")):
        task_files(data)


def test_the_image_of_a_merged_task_is_named_after_its_first_start_and_last_end():
    later = START + dt.timedelta(seconds=85.4)
    files = [f"/sdr/{name('SVI05', later)}", f"/sdr/{name('GITCO')}", f"/sdr/{name('SVI05')}"]
    assert image_name("tir", files) == "tir_j02_d20260301_t2359300_e0002207_b09000.png"
