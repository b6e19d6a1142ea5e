"""Paired bootstrap, McNemar, arm comparison and wording: checked against simulations and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wmss.compare.stats import (
    compare_arms,
    describe_difference,
    effective_sample_size,
    mcnemar_exact,
    paired_bootstrap,
    weight_entropy,
)


def test_ci_covers_a_known_difference_at_about_the_nominal_rate():
    rng = np.random.default_rng(0)
    covered = 0
    for experiment in range(200):
        a = rng.random(200) < 0.6
        b = rng.random(200) < 0.5
        result = paired_bootstrap(a, b, n_resamples=400, seed=experiment)
        covered += result["ci_low"] <= 0.1 <= result["ci_high"]
    assert 0.88 <= covered / 200 <= 0.99


def test_two_level_ci_covers_a_known_difference_with_seed_effects():
    rng = np.random.default_rng(1)
    covered = 0
    for experiment in range(100):
        easiness = rng.random(150)
        seed_shift = rng.normal(0.0, 0.03, size=(2, 4, 1))
        a = rng.random((4, 150)) < 0.35 + 0.5 * easiness + seed_shift[0] + 0.05
        b = rng.random((4, 150)) < 0.35 + 0.5 * easiness + seed_shift[1]
        result = paired_bootstrap(a, b, n_resamples=400, seed=experiment)
        covered += result["ci_low"] <= 0.05 <= result["ci_high"]
    assert 0.88 <= covered / 100 <= 1.0


def test_bootstrap_distribution_matches_naive_index_resampling():
    rng = np.random.default_rng(2)
    a = (rng.random((3, 120)) < 0.6).astype(int)
    b = (rng.random((3, 120)) < 0.5).astype(int)
    d = (a - b).astype(float)
    naive = []
    for _ in range(3000):
        seeds = rng.integers(0, 3, 3)
        problems = rng.integers(0, 120, 120)
        naive.append(d[seeds][:, problems].mean())
    low, high = np.percentile(naive, [2.5, 97.5])
    result = paired_bootstrap(a, b, n_resamples=3000, seed=0)
    assert result["diff"] == pytest.approx(d.mean())
    assert result["ci_low"] == pytest.approx(low, abs=0.012)
    assert result["ci_high"] == pytest.approx(high, abs=0.012)


def test_one_seed_as_2d_equals_1d_and_duplicated_seeds_change_nothing_much():
    rng = np.random.default_rng(3)
    a, b = rng.random(300) < 0.7, rng.random(300) < 0.6
    flat = paired_bootstrap(a, b, n_resamples=2000, seed=5)
    assert paired_bootstrap(a[None], b[None], n_resamples=2000, seed=5) == flat
    repeated = paired_bootstrap(np.tile(a, (3, 1)), np.tile(b, (3, 1)), n_resamples=2000, seed=5)
    assert repeated["diff"] == pytest.approx(flat["diff"])
    assert repeated["ci_low"] == pytest.approx(flat["ci_low"], abs=0.01)
    assert repeated["ci_high"] == pytest.approx(flat["ci_high"], abs=0.01)


def test_seed_spread_widens_the_interval():
    rng = np.random.default_rng(4)
    b = np.tile(rng.random(400) < 0.5, (4, 1))
    steady = np.tile(rng.random(400) < 0.55, (4, 1))
    noisy = steady.copy()
    noisy[0, :60] = 1  # one lucky seed, another unlucky one: same mean spread over seeds
    noisy[1, :60] = 0
    narrow = paired_bootstrap(steady, b, n_resamples=2000)
    wide = paired_bootstrap(noisy, b, n_resamples=2000)
    assert wide["ci_high"] - wide["ci_low"] > 1.2 * (narrow["ci_high"] - narrow["ci_low"])


def test_identical_arms_give_zero_difference_and_p_value_one():
    a = np.random.default_rng(5).random((2, 50)) < 0.5
    result = paired_bootstrap(a, a, n_resamples=500)
    assert result == {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}
    assert mcnemar_exact(a[0], a[0]) == 1.0


def test_clear_difference_has_small_but_positive_p_value():
    a, b = np.ones(100), np.zeros(100)
    result = paired_bootstrap(a, b, n_resamples=999)
    assert result["diff"] == 1.0
    assert result["p_value"] == pytest.approx(1 / 1000)


@pytest.mark.parametrize(
    ("only_a", "only_b", "expected"),
    [
        (5, 1, 2 * (1 + 6) / 2**6),  # C(6,0) + C(6,1)
        (0, 3, 2 * 1 / 2**3),
        (2, 2, 1.0),  # 2 * (1 + 4 + 6) / 16 > 1, capped
        (0, 0, 1.0),
        (10, 2, 2 * (1 + 12 + 66) / 2**12),
    ],
)
def test_mcnemar_matches_hand_computed_tables(only_a, only_b, expected):
    concordant = [(1, 1)] * 7 + [(0, 0)] * 4
    pairs = concordant + [(1, 0)] * only_a + [(0, 1)] * only_b
    a, b = np.array(pairs).T
    assert mcnemar_exact(a, b) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_exact(b, a) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_stays_exact_for_many_pairs():
    a = np.array([1] * 600 + [0] * 400)
    b = np.array([0] * 600 + [1] * 400)
    p = mcnemar_exact(a, b)
    assert 0.0 < p < 1e-9
    assert math.isfinite(p)


def test_mcnemar_refuses_non_binary_or_2d_outcomes():
    with pytest.raises(ValueError, match="0/1"):
        mcnemar_exact([0.5, 1], [0, 1])
    with pytest.raises(ValueError, match="one row"):
        mcnemar_exact([[0, 1]], [[1, 1]])


binary_pairs = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(binary_pairs, st.integers(0, 10))
def test_bootstrap_properties(pair, seed):
    a, b = pair
    forward = paired_bootstrap(a, b, n_resamples=300, seed=seed)
    backward = paired_bootstrap(b, a, n_resamples=300, seed=seed)
    assert forward["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    assert backward["diff"] == pytest.approx(-forward["diff"])
    assert -1.0 <= forward["ci_low"] <= forward["diff"] <= forward["ci_high"] <= 1.0
    assert 0.0 < forward["p_value"] <= 1.0


def test_paired_bootstrap_rejects_unpaired_or_empty_outcomes():
    with pytest.raises(ValueError, match="same shape"):
        paired_bootstrap([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="non-empty"):
        paired_bootstrap([], [])
    with pytest.raises(ValueError, match="finite"):
        paired_bootstrap([1, float("nan")], [1, 0])


def test_compare_arms_one_seed():
    rng = np.random.default_rng(6)
    ref = (rng.random(80) < 0.5).astype(int)
    better = np.maximum(ref, rng.random(80) < 0.5).astype(int)
    result = compare_arms({"sft_continued": ref[None], "wmss": better[None]}, "sft_continued", 1000, 0)
    wmss = result["wmss"]
    assert wmss["mean"] == pytest.approx(better.mean())
    assert wmss["std"] is None
    assert wmss["per_seed"] == [pytest.approx(better.mean())]
    assert wmss["diff"] == pytest.approx(better.mean() - ref.mean())
    assert wmss["mcnemar_p"] == pytest.approx(mcnemar_exact(better, ref))
    assert (wmss["n_problems"], wmss["n_seeds"]) == (80, 1)
    assert wmss["significant"] == (wmss["ci_low"] > 0 or wmss["ci_high"] < 0)
    assert result["sft_continued"]["diff"] == 0.0
    assert result["sft_continued"]["significant"] is False


def test_compare_arms_several_seeds():
    table = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]])
    result = compare_arms({"ref": table, "same": table.copy()}, "ref", 200, 0)
    entry = result["same"]
    assert entry["per_seed"] == [0.5, 0.25, 0.75]
    assert entry["std"] == pytest.approx(np.std([0.5, 0.25, 0.75], ddof=1))
    assert entry["mcnemar_p"] is None
    assert entry["n_seeds"] == 3


def test_compare_arms_rejects_mismatched_arms():
    with pytest.raises(ValueError, match="reference arm 'x'"):
        compare_arms({"a": [[1, 0]]}, "x")
    with pytest.raises(ValueError, match="same seeds and problems"):
        compare_arms({"a": [[1, 0]], "b": [[1, 0], [0, 1]]}, "a")


def test_wording_follows_the_interval():
    better = {"diff": 0.052, "ci_low": 0.011, "ci_high": 0.093, "p_value": 0.012}
    sentence = describe_difference(better, "WMSS", "continued SFT")
    assert sentence.startswith("WMSS is better than continued SFT by 5.2 points")
    assert "[+1.1, +9.3]" in sentence and "p = 0.012" in sentence
    worse = {"diff": -0.03, "ci_low": -0.05, "ci_high": -0.01}
    assert describe_difference(worse, "WMSS", "SFT").startswith("WMSS is worse than SFT by 3.0 points")
    unclear = {"diff": 0.02, "ci_low": -0.01, "ci_high": 0.05, "p_value": 0.2}
    sentence = describe_difference(unclear, "WMSS", "SFT")
    assert sentence.startswith("No significant difference between WMSS and SFT")
    assert "+2.0 points" in sentence and "[-1.0, +5.0]" in sentence
    touching = {"diff": 0.02, "ci_low": 0.0, "ci_high": 0.04}
    assert describe_difference(touching, "A", "B").startswith("No significant difference")


def test_effective_sample_size_and_weight_entropy():
    assert effective_sample_size(np.full(10, 0.1)) == pytest.approx(10.0)
    assert effective_sample_size([0, 0, 3.0]) == pytest.approx(1.0)
    assert effective_sample_size([1, 1, 2]) == pytest.approx(16 / 6)
    assert weight_entropy(np.ones(8)) == pytest.approx(math.log(8))
    assert weight_entropy([0, 5.0, 0]) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        effective_sample_size([1, -1])
    with pytest.raises(ValueError, match="positive sum"):
        weight_entropy([])
