"""The venue adapter's exactly-once rule on its own: batches from the cluster
(repeated after a leader change, in any overlap) in, each sequence published
once and in order, back pressure keeps order."""

from __future__ import annotations

import random

from tickline.venue.adapter import SequencedOrders


def test_repeated_and_overlapping_batches_publish_each_sequence_once_in_order():
    rng = random.Random(11)
    s = SequencedOrders()
    published: list[bytes] = []
    n = 200
    first = 1
    while first <= n:
        # a batch from `first`, and sometimes the same batch again, or one starting further back
        last = min(n, first + rng.randint(0, 9))
        batch = [(q, f"o{q}".encode()) for q in range(first, last + 1)]
        s.on_batch(batch)
        if rng.random() < 0.4:
            back = max(1, first - rng.randint(0, 5))
            s.on_batch([(q, f"o{q}".encode()) for q in range(back, last + 1)])
        # the exchange takes some, pushes back on the rest
        budget = rng.randint(0, 12)

        def offer(m: bytes) -> bool:
            nonlocal budget
            if budget == 0:
                return False
            budget -= 1
            published.append(m)
            return True

        s.publish(offer)
        first = last + 1
    s.publish(lambda m: published.append(m) or True)
    assert published == [f"o{q}".encode() for q in range(1, n + 1)]
    assert s.duplicates_suppressed > 0 and s.repeated == 0 and s.gaps == 0 and s.sent == n


def test_resuming_where_the_cluster_says_then_a_gap_is_counted_not_hidden():
    s = SequencedOrders()
    s.on_batch([(41, b"a"), (42, b"b")])  # a new adapter resumes at the cluster's point (not 1)
    s.on_batch([(44, b"d")])
    assert [q for q, _ in s.queue] == [41, 42, 44] and s.gaps == 1 and "expected=43 got=44" in s.errors[0]
