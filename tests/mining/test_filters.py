"""Each false-negative filter on hand-made score rows: exactly which candidates survive and who dropped them."""

from __future__ import annotations

import numpy as np
import pytest

from umarvel_cli.mining.filters import (
    FILTERS,
    FilterSettings,
    filter_candidates,
    first_true,
    same_content,
    select_negatives,
)

# One query, eight ranked candidates (columns = ranks 1..8); the labelled positive is column 2 (0.80).
SCORES = np.array([[0.95, 0.90, 0.80, 0.78, 0.75, 0.70, 0.60, 0.50]], dtype=np.float32)
POS = np.array([[False, False, True, False, False, False, False, False]])
NONE = np.zeros_like(POS)
ALL = np.ones_like(POS)
POS_SCORE = np.array([0.80], dtype=np.float32)
OFF = {"margin": None, "max_score_ratio": None, "max_score": None}


def kept(settings: FilterSettings, same=NONE, modality=ALL, pos_score=POS_SCORE, valid=ALL):
    f = filter_candidates(SCORES, valid, POS, same, modality, pos_score, settings)
    return np.flatnonzero(f.keep[0]).tolist(), {n: int(f.drops[n][0]) for n in FILTERS}


def test_labelled_positive_always_dropped_and_nothing_else_when_filters_are_off():
    ids, drops = kept(FilterSettings(rank_range=(1, 8), **OFF))
    assert ids == [0, 1, 3, 4, 5, 6, 7]
    assert drops == {
        "positive": 1,
        "same_content": 0,
        "range": 0,
        "modality": 0,
        "max_score": 0,
        "margin": 0,
        "ratio": 0,
    }


def test_same_content_dropped():
    same = np.array([[False, True, True, False, False, False, False, False]])  # col 2 is the positive itself
    ids, drops = kept(FilterSettings(rank_range=(1, 8), **OFF), same=same)
    assert ids == [0, 3, 4, 5, 6, 7]
    assert drops["positive"] == 1 and drops["same_content"] == 1  # the positive is counted once, first


def test_rank_window_is_inclusive_and_one_based():
    ids, drops = kept(FilterSettings(rank_range=(3, 6), **OFF))
    assert ids == [3, 4, 5]  # ranks 4, 5, 6 (rank 3 is the positive)
    assert drops["range"] == 4


def test_absolute_margin():
    ids, drops = kept(FilterSettings(rank_range=(1, 8), margin=0.05, max_score_ratio=None, max_score=None))
    assert ids == [4, 5, 6, 7]  # above 0.80 - 0.05 = 0.75 is dropped; 0.75 itself stays
    assert drops["margin"] == 3


def test_defaults_drop_what_scores_above_95_percent_of_the_positive():
    ids, drops = kept(FilterSettings(rank_range=(1, 8)))
    assert ids == [4, 5, 6, 7]  # 0.78 > 0.95 x 0.80 = 0.76 goes too
    assert drops["margin"] == 2 and drops["ratio"] == 1


def test_default_margin_still_guards_a_negative_positive_score():
    """Where the positive scores below 0, 0.95 x pos_score lies above it; margin 0 keeps the rule
    "nothing above the positive"."""
    scores = np.array([[-0.10, -0.12, -0.20, -0.30]], dtype=np.float32)
    pos = np.array([[False, False, True, False]])
    f = filter_candidates(
        scores, np.ones_like(pos), pos, np.zeros_like(pos), np.ones_like(pos),
        np.array([-0.20], dtype=np.float32), FilterSettings(rank_range=(1, 4)),
    )  # fmt: skip
    assert np.flatnonzero(f.keep[0]).tolist() == [3]
    assert int(f.drops["margin"][0]) == 2 and int(f.drops["ratio"][0]) == 0


def test_relative_margin_nv_retriever_95_percent():
    ids, drops = kept(FilterSettings(rank_range=(1, 8), margin=None, max_score_ratio=0.95, max_score=None))
    assert ids == [4, 5, 6, 7]  # above 0.95 x 0.80 = 0.76 dropped
    assert drops["ratio"] == 3


def test_absolute_max_score():
    ids, drops = kept(FilterSettings(rank_range=(1, 8), margin=None, max_score_ratio=None, max_score=0.7))
    assert ids == [5, 6, 7]  # the paper's 0.7: 0.70 itself stays
    assert drops["max_score"] == 4  # 0.95, 0.90, 0.78, 0.75 (the positive went first)


def test_same_modality_only_when_asked():
    modality = np.array([[True, False, True, False, True, True, True, True]])
    assert kept(FilterSettings(rank_range=(1, 8), **OFF), modality=modality)[0] == [0, 1, 3, 4, 5, 6, 7]
    ids, drops = kept(FilterSettings(rank_range=(1, 8), same_modality=True, **OFF), modality=modality)
    assert ids == [0, 4, 5, 6, 7]
    assert drops["modality"] == 2


def test_unknown_positive_score_disables_positive_aware_rules_only():
    ids, drops = kept(
        FilterSettings(rank_range=(1, 8), margin=0.0, max_score_ratio=0.9, max_score=0.85),
        pos_score=np.array([np.nan]),
    )
    assert ids == [3, 4, 5, 6, 7]
    assert drops["max_score"] == 2 and drops["margin"] == 0 and drops["ratio"] == 0


def test_drops_are_sequential_and_add_up():
    same = np.array([[False, False, False, True, False, False, False, False]])
    valid = np.array([[True] * 7 + [False]])
    f = filter_candidates(
        SCORES,
        valid,
        POS,
        same,
        ALL,
        POS_SCORE,
        FilterSettings(rank_range=(2, 8), margin=0.1, max_score_ratio=0.9, max_score=0.9),
    )
    total = sum(int(f.drops[n][0]) for n in FILTERS)
    assert total + int(f.keep.sum()) == int(valid.sum())
    assert np.flatnonzero(f.keep[0]).tolist() == [5, 6]


def test_select_top_random_and_short_rows():
    keep = np.array([[True, False, True, True, False, True], [False, False, True, False, False, False]])
    top = select_negatives(keep, 3, "top")
    assert top.tolist() == [[0, 2, 3], [2, -1, -1]]
    a = select_negatives(keep, 3, "random", np.random.default_rng(7))
    b = select_negatives(keep, 3, "random", np.random.default_rng(7))
    assert (a == b).all()
    assert a[1].tolist() == [2, -1, -1]
    row = a[0].tolist()
    assert row == sorted(row) and set(row) <= {0, 2, 3, 5} and len(set(row)) == 3
    seen = {tuple(select_negatives(keep, 3, "random", np.random.default_rng(s))[0]) for s in range(30)}
    assert len(seen) > 1  # random really varies with the seed
    assert select_negatives(keep[:, :2], 3, "top").tolist() == [[0, -1, -1], [-1, -1, -1]]
    with pytest.raises(ValueError):
        select_negatives(keep, 2, "bottom")


def test_same_content_codes_and_first_true():
    cand = np.array([[3, 5, -1, 7]])
    pos = np.array([[5, -2]])
    assert same_content(cand, pos).tolist() == [[False, True, False, False]]
    assert same_content(np.array([[-1, -1]]), np.array([[-1]])).tolist() == [
        [False, False]
    ]  # no content never matches
    assert first_true(np.array([[False, True, True], [False, False, False]])).tolist() == [2, 0]
