"""How the digests split into search shards as the archive grows one digest a day."""

from __future__ import annotations

from datetime import date, timedelta

from feeds.model import DigestRef
from feeds.search import shard_tiers, shards

_DAYS = [date(2019, 1, 1) + timedelta(days=i) for i in range(10_001)]
_OLDEST_FIRST = [DigestRef(d.isoformat(), d, None, 1) for d in _DAYS]


def _refs(n: int) -> list[DigestRef]:
    """n digests, newest first, one a day."""
    return _OLDEST_FIRST[n - 1 :: -1] if n else []


def _layout(n: int, size: int = 400) -> list[tuple[str, ...]]:
    return [tuple(r.id for r in shard) for shard in shards(_refs(n), size)]


def test_full_shards_of_each_tier_then_the_newest():
    assert shard_tiers(400) == [400, 100, 25]
    assert shard_tiers(50) == [50]
    sizes = [len(s) for s in _layout(1999)]
    assert sizes == [400] * 4 + [100] * 3 + [25] * 3 + [24]
    assert [len(s) for s in _layout(2002)] == [400] * 5 + [2]
    assert [len(s) for s in _layout(10_001)] == [400] * 25 + [1]
    assert _layout(0) == []
    assert _layout(3, 0) == [("2019-01-01", "2019-01-02", "2019-01-03")]  # 0: one shard


def test_every_digest_is_in_one_shard_oldest_first():
    for n in (1, 24, 25, 26, 401, 2000):
        ids = [i for shard in _layout(n) for i in shard]
        assert ids == [r.id for r in reversed(_refs(n))]


def test_adding_a_digest_reindexes_the_newest_few_and_rarely_more():
    """A digest's page changes when the next one comes (its link to it): the newest digest is
    never in a full shard, so a full shard never has to be indexed again."""
    reindexed = []
    before = _layout(1)
    for n in range(2, 2002):
        after = _layout(n)
        assert after[-1][-1] == _OLDEST_FIRST[n - 1].id  # the newest is in the last shard
        changed = _OLDEST_FIRST[n - 2].id  # its page now links to the new one
        kept = [s for s in before[:-1] if s in after]  # full shards that stay
        assert not [s for s in kept if changed in s]
        reindexed.append(n - sum(len(s) for s in kept))
        before = after
    assert max(reindexed) == 401  # four shards of 100 become one of 400, with the new digest
    assert sum(1 for r in reindexed if r > 26) == 2000 // 100  # once in 100 digests
    assert sum(reindexed) / len(reindexed) < 20  # digests indexed per digest added
