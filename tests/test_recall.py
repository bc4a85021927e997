"""A process's bounded memory of decisions (sharing.recall)."""

from __future__ import annotations

from sharing.recall import Recall


def test_a_decision_is_kept_until_it_ends():
    recall: Recall[str] = Recall(4)
    recall.keep("viewer:series", "decided", until=100.0)

    assert recall.get("viewer:series", now=99.9) == "decided"
    assert recall.get("viewer:series", now=100.0) is None
    assert list(recall) == []  # an ended decision is dropped when found


def test_when_full_the_least_recently_used_is_forgotten():
    recall: Recall[int] = Recall(3)
    for number in range(3):
        recall.keep(f"key{number}", number, until=100.0)
    assert recall.get("key0", now=0.0) == 0  # read, so now the most recently used

    recall.keep("key3", 3, until=100.0)

    assert recall.get("key1", now=0.0) is None
    assert [recall.get(key, now=0.0) for key in ("key0", "key2", "key3")] == [0, 2, 3]
    assert len(list(recall)) == 3
