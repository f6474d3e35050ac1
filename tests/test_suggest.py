"""Suggested tiles (steps/suggest, tomoseg suggest) and fine-tuning (train --init)."""

import numpy as np
import pytest

from tomoseg.errors import InvalidValue
from tomoseg.steps.suggest import SuggestConfig, suggest_tiles
from tomoseg.types import Box


def _spread_ok(found, boxes=(), tile=64):
    pts = np.array([[s.x, s.y, s.z] for s in found] + [[b.x, b.y, b.z] for b in boxes], float)
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1)) + np.eye(len(pts)) * 1e9
    return d.min() >= tile


def test_each_strategy_finds_the_tiles_it_is_made_for():
    rng = np.random.default_rng(0)
    scores = np.zeros((6, 160, 160), np.float32)
    scores[2, 20:60, 20:60] = 1.0 + rng.uniform(-0.1, 0.1, (40, 40))  # near the threshold: uncertain
    scores[4, 100:140, 100:140] = 3.0                                  # confident
    other = np.zeros_like(scores)
    other[4, 100:140, 100:140] = 2.0                                  # ... where another feature fires too
    found = suggest_tiles(scores, config=SuggestConfig(n=1, strategy="uncertain"))
    assert (found[0].z, abs(found[0].x - 40) <= 16, abs(found[0].y - 40) <= 16) == (2, True, True)
    assert found[0].reason.startswith("uncertain")
    found = suggest_tiles(scores, config=SuggestConfig(n=1, strategy="false-positive"), others=other[None])
    assert found[0].z == 4 and abs(found[0].x - 120) <= 16 and "another feature" in found[0].reason
    # without other features: confident detections far from the positive boxes come first
    found = suggest_tiles(scores, config=SuggestConfig(n=1, strategy="false-positive"),
                          boxes=[Box(120, 120, 4, True)])
    assert [s.z for s in found] == [2]  # the strong detection sits on a positive box; the weak one is far from it
    variants = np.stack([scores, scores])
    variants[1, 0, 60:120, 20:80] = 2.0  # two networks disagree on slice 0
    found = suggest_tiles(scores, config=SuggestConfig(n=1, strategy="disagree"), variants=variants)
    assert found[0].z == 0 and abs(found[0].y - 90) <= 16 and found[0].reason.startswith("disagree")


def test_suggestions_spread_avoid_boxes_and_are_seeded():
    rng = np.random.default_rng(1)
    scores = rng.uniform(0.5, 1.5, (20, 200, 200)).astype(np.float32)
    boxes = [Box(100, 100, 10, True), Box(50, 60, 3, False)]
    for strategy in ("uncertain", "mixed", "random", "false-positive"):
        config = SuggestConfig(n=12, strategy=strategy, seed=3)
        found = suggest_tiles(scores, np.arange(0, 200, 10), boxes, config, variants=np.stack([scores, scores * 1.1]))
        assert len(found) == 12 and _spread_ok(found, boxes), strategy
        assert all(32 <= s.x <= 168 and 32 <= s.y <= 168 and s.z % 10 == 0 for s in found)  # tiles inside slices
        assert found == suggest_tiles(scores, np.arange(0, 200, 10), boxes, config,
                                      variants=np.stack([scores, scores * 1.1]))
    assert suggest_tiles(scores, config=SuggestConfig(n=5, strategy="random", seed=1)) != \
        suggest_tiles(scores, config=SuggestConfig(n=5, strategy="random", seed=2))
    mixed = suggest_tiles(scores, config=SuggestConfig(n=6, strategy="mixed"), variants=np.stack([scores, scores * 1.1]))
    assert {s.reason.split(":")[0] for s in mixed} == {"uncertain", "false positive?", "disagree"}


def test_bad_suggest_input_names_the_field():
    with pytest.raises(InvalidValue, match="`strategy`"):
        SuggestConfig(strategy="best")
    with pytest.raises(InvalidValue, match="`variants`"):
        suggest_tiles(np.zeros((2, 80, 80)), config=SuggestConfig(strategy="disagree"))
    with pytest.raises(InvalidValue, match="smaller than a 64-pixel tile"):
        suggest_tiles(np.zeros((2, 40, 80)))
