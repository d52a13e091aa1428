"""Which file messages only repeat a granule the gatherer has published (repeat_rules.py)."""

from __future__ import annotations

from avoviirscollector.pipeline.repeat_rules import PublishedGranules

GRANULE = ("j01", "d20261201", "t1104560", "e1106213", "b09100")
GITCO, SVI05 = "GITCO_j01_...h5", "SVI05_j01_...h5"


def published_at(at: float, **options) -> PublishedGranules:
    memory = PublishedGranules(**options)
    memory.published(GRANULE, [GITCO, SVI05], at)
    return memory


def test_a_bus_message_of_a_published_file_is_a_repeat():
    assert published_at(100.0).repeats(GRANULE, SVI05, now=101.0)


def test_an_unknown_granule_or_a_file_it_was_not_published_with_is_no_repeat():
    memory = published_at(100.0)
    assert not memory.repeats(("npp", *GRANULE[1:]), SVI05, now=101.0)
    assert not memory.repeats(GRANULE, "SVI04_j01_...h5", now=101.0)
    assert not memory.repeats(None, SVI05, now=101.0)


def test_a_replay_started_after_the_publication_publishes_again():
    assert not published_at(100.0).repeats(GRANULE, GITCO, now=105.0, replay_started=104.0)


def test_the_rest_of_a_replay_repeats_once_the_granule_is_published_after_it_started():
    memory = published_at(100.0)
    memory.published(GRANULE, [GITCO, SVI05], 106.0)  # the replay's (or the bus's) publication
    assert memory.repeats(GRANULE, SVI05, now=107.0, replay_started=104.0)


def test_a_publication_is_forgotten_after_its_time_and_beyond_the_count():
    memory = published_at(100.0, seconds=60.0, at_most=2)
    assert not memory.repeats(GRANULE, GITCO, now=161.0)
    assert len(memory) == 0

    for orbit in range(5):
        memory.published((*GRANULE[:4], f"b{orbit:05d}"), [GITCO], 200.0 + orbit)
    assert len(memory) == 2
    assert memory.repeats((*GRANULE[:4], "b00004"), GITCO, now=205.0)
    assert not memory.repeats((*GRANULE[:4], "b00000"), GITCO, now=205.0)
