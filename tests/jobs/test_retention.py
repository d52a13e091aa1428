"""The retention rules (pure): what a nightly cleanup deletes and what it must never touch."""

from __future__ import annotations

from pathlib import PurePosixPath as P

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avoviirscollector.jobs.retention import DAY_SECONDS, Entry, Kind, plan
from avoviirscollector.settings import LAYOUT

NOW = 1_700_000_000.0
OLD = NOW - 8 * DAY_SECONDS
NEW = NOW - 1 * DAY_SECONDS


def f(path, mtime=OLD, size=10, kind=Kind.FILE, in_use=False):
    return Entry(P(path), kind, mtime, size, in_use)


def d(path, mtime=OLD):
    return Entry(P(path), Kind.DIR, mtime, 4096)


def test_every_kind_of_old_file_anywhere_is_deleted_and_recent_ones_are_kept():
    entries = [
        d("sdr"),
        f("sdr/SVI05_npp_d20191021_t2327561_e2329203_b41131_c20191021233910734917_cspp_dev.h5"),
        f("log/supervisord.log.3"),
        f("elements/noaa.txt"),
        f("tmp/stale.part"),
        f("surprise.txt"),
        f("sdr/new.h5", mtime=NEW),
    ]
    result = plan(entries, NOW, 7, LAYOUT)
    assert [str(e.path) for e in result.files] == [
        "elements/noaa.txt",
        "log/supervisord.log.3",
        "sdr/SVI05_npp_d20191021_t2327561_e2329203_b41131_c20191021233910734917_cspp_dev.h5",
        "surprise.txt",
        "tmp/stale.part",
    ]
    assert result.bytes == 50


def test_cutoff_is_exactly_days_times_24_hours():
    just_kept = f("a", mtime=NOW - 7 * DAY_SECONDS + 1)
    just_gone = f("b", mtime=NOW - 7 * DAY_SECONDS - 1)
    result = plan([just_kept, just_gone], NOW, 7)
    assert [e.path for e in result.files] == [P("b")]


def test_file_in_use_is_kept_and_reported_and_keeps_its_directory():
    entries = [d("state/old"), f("state/old/tasks.sqlite", in_use=True)]
    result = plan(entries, NOW, 7, LAYOUT)
    assert result.files == []
    assert [e.path for e in result.kept_in_use] == [P("state/old/tasks.sqlite")]
    assert result.dirs == []


def test_symlink_is_deleted_as_a_link_and_sockets_are_never_deleted():
    entries = [
        f("tmp/link-to-outside", kind=Kind.SYMLINK, size=12),
        f("tmp/supervisor.sock", kind=Kind.OTHER),
    ]
    result = plan(entries, NOW, 7, LAYOUT)
    assert [(e.path, e.kind) for e in result.files] == [(P("tmp/link-to-outside"), Kind.SYMLINK)]


def test_emptied_old_directories_go_deepest_first_but_never_the_layout_or_recent_ones():
    entries = [
        d("sdr"),
        d("sdr/2019"),
        d("sdr/2019/10"),
        f("sdr/2019/10/x.h5"),
        d("tmp"),
        d("tmp/fresh-download-dir", mtime=NEW),
        d("log"),
        d("log/old-but-keeps-a-new-file"),
        f("log/old-but-keeps-a-new-file/today.log", mtime=NEW),
        d("unknown-top-level"),
    ]
    result = plan(entries, NOW, 7, LAYOUT)
    assert result.dirs[:2] == [P("sdr/2019/10"), P("sdr/2019")]
    assert set(result.dirs) == {P("sdr/2019/10"), P("sdr/2019"), P("unknown-top-level")}


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside", "sdr/../../x"])
def test_paths_outside_the_base_directory_are_refused(bad):
    with pytest.raises(ValueError):
        plan([f(bad)], NOW, 7)


def test_zero_days_is_refused():
    with pytest.raises(ValueError):
        plan([], NOW, 0)


_names = st.sampled_from(["sdr", "log", "tmp", "a", "b", "c"])
_paths = st.lists(_names, min_size=1, max_size=4).map(lambda parts: P(*parts))
_entries = st.builds(
    Entry,
    _paths,
    st.sampled_from(list(Kind)),
    st.floats(NOW - 20 * DAY_SECONDS, NOW),
    st.integers(0, 1000),
    st.booleans(),
)


@given(st.lists(_entries, max_size=30), st.integers(1, 15))
def test_plan_never_deletes_recent_in_use_or_special_entries_nor_a_dir_holding_them(entries, days):
    # Make the list a consistent tree: one entry per path, every parent a directory.
    tree = {}
    for entry in entries:
        for parent in reversed(entry.path.parents[:-1]):
            tree.setdefault(parent, Entry(parent, Kind.DIR, NOW - 30 * DAY_SECONDS))
        tree.setdefault(entry.path, entry)
    tree = {
        p: e
        for p, e in tree.items()
        if not any(q in tree and tree[q].kind is not Kind.DIR for q in p.parents[:-1])
    }
    result = plan(tree.values(), NOW, days, LAYOUT)
    cutoff = NOW - days * DAY_SECONDS
    deleted = {e.path for e in result.files}
    for entry in result.files:
        assert entry.mtime < cutoff and not entry.in_use
        assert entry.kind in (Kind.FILE, Kind.SYMLINK)
    survivors = [e for e in tree.values() if e.kind is not Kind.DIR and e.path not in deleted]
    for directory in result.dirs:
        assert str(directory) not in LAYOUT
        assert tree[directory].mtime < cutoff
        assert not any(directory in s.path.parents for s in survivors)
