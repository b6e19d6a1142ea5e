"""Eq. 9-10: hand-computed curriculum weights, degenerate cases, properties, seeded sampling and stats."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from wmss.errors import ConfigError
from wmss.method.curriculum import (
    WEIGHTINGS,
    CurriculumWarning,
    brownboost_weights,
    compute_weights,
    curriculum_stats,
    curriculum_weights,
    effective_sample_sizes,
    entropy_gap,
    sample_active_set,
)

H_WEAK = [1.0, 2.0, 1.0]
H_STRONG = [0.5, 2.5, 1.0]


def test_entropy_gap_by_hand() -> None:
    assert entropy_gap(H_WEAK, H_STRONG).tolist() == [-0.5, 0.5, 0.0]


def test_paper_weights_by_hand() -> None:
    # dH = [-0.5, 0.5, 0]; α-term [1,2,1]/4, β-term [0.5,0,0]/0.5, γ-term [0,0.5,0]/0.5:
    # 0.1·[.25,.5,.25] + 0.8·[1,0,0] + 0.1·[0,1,0] = [.825, .15, .025] (already sums to 1).
    assert curriculum_weights(H_WEAK, H_STRONG).tolist() == pytest.approx([0.825, 0.15, 0.025], abs=1e-15)
    # α=β=1, γ=0: [.25,.5,.25] + [1,0,0] = [1.25,.5,.25], divided by 2.
    got = curriculum_weights(H_WEAK, H_STRONG, alpha=1.0, beta=1.0, gamma=0.0)
    assert got.tolist() == pytest.approx([0.625, 0.25, 0.125], abs=1e-15)


def test_zero_sum_beta_term_contributes_nothing() -> None:
    # dH = [0, 1, 1] >= 0 everywhere: 0.1·[1,2,3]/6 + 0.1·[0,.5,.5] = [1,5,6]/60 -> [1,5,6]/12.
    got = curriculum_weights([1.0, 2.0, 3.0], [1.0, 3.0, 4.0])
    assert got.tolist() == pytest.approx([1 / 12, 5 / 12, 6 / 12], abs=1e-15)


def test_all_zero_signal_falls_back_to_uniform_with_warning() -> None:
    with pytest.warns(CurriculumWarning, match="uniform"):
        got = curriculum_weights([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0])
    assert got.tolist() == [0.25] * 4
    # Only the α-term is switched on but the weak model has zero entropy everywhere.
    with pytest.warns(CurriculumWarning):
        got = curriculum_weights([0.0, 0.0], [1.0, 0.5], alpha=1.0, beta=0.0, gamma=0.0)
    assert got.tolist() == [0.5, 0.5]


def test_tiny_negative_noise_is_clipped() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = curriculum_weights([1.0, -1e-7], [0.5, 0.5])
    # Clipped H_weak = [1, 0], dH = [-0.5, 0.5]: 0.1·[1,0] + 0.8·[1,0] + 0.1·[0,1] = [0.9, 0.1].
    assert got.tolist() == pytest.approx([0.9, 0.1], abs=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"h_weak": [1.0, 2.0], "h_strong": [1.0]}, "length"),
        ({"h_weak": [], "h_strong": []}, "h_weak"),
        ({"h_weak": [[1.0]], "h_strong": [[1.0]]}, "h_weak"),
        ({"h_weak": [1.0, math.nan], "h_strong": [1.0, 1.0]}, "h_weak.*non-finite"),
        ({"h_weak": [1.0, 1.0], "h_strong": [1.0, math.inf]}, "h_strong.*non-finite"),
        ({"h_weak": [1.0, -1e-3], "h_strong": [1.0, 1.0]}, "h_weak.*negative"),
        ({"h_weak": [1.0], "h_strong": [1.0], "alpha": -0.1}, "alpha"),
        ({"h_weak": [1.0], "h_strong": [1.0], "gamma": math.nan}, "gamma"),
        ({"h_weak": [1.0], "h_strong": [1.0], "alpha": 0.0, "beta": 0.0, "gamma": 0.0}, "all 0"),
    ],
)
def test_bad_inputs_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        curriculum_weights(**kwargs)


def test_brownboost_by_hand() -> None:
    # dH = [-1, 1], std 1, margins [1, -1]; c = 1: log w = [-(1+1)², -(-1+1)²] = [-4, 0].
    got = brownboost_weights([1.0, 1.0], [0.0, 2.0])
    e = math.exp(-4)
    assert got.tolist() == pytest.approx([e / (1 + e), 1 / (1 + e)], abs=1e-15)
    assert brownboost_weights([1.0, 2.0, 3.0], [1.5, 2.5, 3.5]).tolist() == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError, match="c must"):
        brownboost_weights([1.0], [1.0], c=0.0)


def naive_eq10(
    h_weak: list[float], h_strong: list[float], a: float, b: float, g: float, per_term: bool
) -> list:
    """Both readings of Eq. 10 with python floats, term by term."""
    n = len(h_weak)
    terms = [
        [max(w, 0.0) for w in h_weak],
        [max(w - s, 0.0) for w, s in zip(h_weak, h_strong, strict=True)],
        [max(s - w, 0.0) for w, s in zip(h_weak, h_strong, strict=True)],
    ]
    p = [0.0] * n
    for coef, term in zip((a, b, g), terms, strict=True):
        total = math.fsum(term)
        if coef > 0 and total > 0:
            for i in range(n):
                p[i] += coef * (term[i] / total if per_term else term[i])
    total = math.fsum(p)
    return [v / total for v in p] if total > 0 else [1.0 / n] * n  # no signal: uniform


def test_paper_eq10_by_hand() -> None:
    # dH = [-0.5, 0.5, 0]: 0.1·[1,2,1] + 0.8·[0.5,0,0] + 0.1·[0,0.5,0] = [.5, .25, .1], normalised once.
    got = curriculum_weights(H_WEAK, H_STRONG, normalization="single")
    assert got.tolist() == pytest.approx([0.5 / 0.85, 0.25 / 0.85, 0.1 / 0.85], abs=1e-15)
    np.testing.assert_array_equal(compute_weights("paper_eq10", H_WEAK, H_STRONG), got)


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.floats(0.0, 5.0), st.floats(0.0, 5.0)), min_size=1, max_size=20),
    a=st.floats(0.0, 1.0),
    b=st.floats(0.0, 1.0),
    g=st.floats(0.0, 1.0),
)
def test_both_readings_match_a_float64_twin(pairs: list, a: float, b: float, g: float) -> None:
    weak, strong = [w for w, _ in pairs], [s for _, s in pairs]
    assume(a + b + g > 0.01)
    for per_term, name in ((True, "authors_code"), (False, "paper_eq10")):
        want = naive_eq10(weak, strong, a, b, g, per_term)
        assume(all(math.isfinite(v) for v in want))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CurriculumWarning)
            got = compute_weights(name, weak, strong, alpha=a, beta=b, gamma=g)
        assert got.tolist() == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_per_term_concentrates_more_when_few_entropies_fell() -> None:
    # One sample of 100 lost a little entropy; every other one gained some.
    weak = [1.0] * 100
    strong = [0.9] + [1.5] * 99
    sizes = effective_sample_sizes(weak, strong)
    assert sizes["authors_code"] < 2.0  # β's 0.8 of the mass lands on sample 0
    assert sizes["paper_eq10"] > 80.0


def test_compute_weights_dispatch() -> None:
    assert set(WEIGHTINGS) == {"authors_code", "paper_eq10", "brownboost"}
    np.testing.assert_array_equal(
        compute_weights("authors_code", H_WEAK, H_STRONG, beta=0.5),
        curriculum_weights(H_WEAK, H_STRONG, beta=0.5),
    )
    np.testing.assert_array_equal(
        compute_weights("brownboost", H_WEAK, H_STRONG, c=2.0), brownboost_weights(H_WEAK, H_STRONG, c=2.0)
    )
    with pytest.raises(
        ConfigError, match=r"must be one of authors_code, paper_eq10, brownboost, got 'adaboost'"
    ):
        compute_weights("adaboost", H_WEAK, H_STRONG)
    with pytest.raises(ValueError, match="normalization"):
        curriculum_weights(H_WEAK, H_STRONG, normalization="twice")


def test_the_old_name_paper_still_works_with_a_warning() -> None:
    with pytest.warns(FutureWarning, match="'paper' is now called 'authors_code'"):
        got = compute_weights("paper", H_WEAK, H_STRONG)
    np.testing.assert_array_equal(got, compute_weights("authors_code", H_WEAK, H_STRONG))


entropies = st.lists(st.floats(0.0, 20.0), min_size=1, max_size=30)
coefficient = st.floats(0.0, 2.0)


@st.composite
def entropy_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    weak = draw(entropies)
    strong = draw(st.lists(st.floats(0.0, 20.0), min_size=len(weak), max_size=len(weak)))
    return np.array(weak), np.array(strong)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(pair=entropy_pairs(), alpha=coefficient, beta=coefficient, gamma=coefficient, data=st.data())
def test_weight_properties(
    pair: tuple[np.ndarray, np.ndarray], alpha: float, beta: float, gamma: float, data: st.DataObject
) -> None:
    assume(alpha + beta + gamma > 0)
    weak, strong = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CurriculumWarning)
        p = curriculum_weights(weak, strong, alpha, beta, gamma)
        perm = np.array(data.draw(st.permutations(range(weak.size))))
        p_perm = curriculum_weights(weak[perm], strong[perm], alpha, beta, gamma)
    assert p.dtype == np.float64 and p.shape == weak.shape
    assert abs(p.sum() - 1.0) < 1e-9
    assert np.all(p >= 0)
    np.testing.assert_allclose(p_perm, p[perm], rtol=1e-12, atol=1e-15)
    b = brownboost_weights(weak, strong)
    assert abs(b.sum() - 1.0) < 1e-9 and np.all(b >= 0)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(weak=entropies, alpha=st.floats(0.01, 5.0))
def test_alpha_only_is_proportional_to_weak_entropy(weak: list[float], alpha: float) -> None:
    assume(sum(weak) > 0)
    strong = list(reversed(weak))
    p = curriculum_weights(weak, strong, alpha=alpha, beta=0.0, gamma=0.0)
    np.testing.assert_allclose(p, np.array(weak) / sum(weak), rtol=1e-12, atol=1e-15)


def test_sampling_is_seeded() -> None:
    w = np.full(50, 1 / 50)
    a = sample_active_set(w, seed=3)
    np.testing.assert_array_equal(a, sample_active_set(w, seed=3))
    assert not np.array_equal(a, sample_active_set(w, seed=4))
    assert a.dtype.kind == "i" and a.min() >= 0 and a.max() < 50


def test_sampling_follows_weights() -> None:
    draws = sample_active_set([0.7, 0.3, 0.0], multiplier=2000.0, seed=0)
    counts = np.bincount(draws, minlength=3)
    assert counts[2] == 0
    assert counts[0] / draws.size == pytest.approx(0.7, abs=0.02)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(n=st.integers(1, 200), multiplier=st.floats(0.001, 5.0))
def test_draw_count(n: int, multiplier: float) -> None:
    draws = sample_active_set(np.ones(n), multiplier=multiplier, seed=n)
    assert draws.size == max(1, round(multiplier * n))


@pytest.mark.parametrize(
    ("weights", "multiplier"),
    [([], 1.0), ([0.0, 0.0], 1.0), ([1.0, -0.1], 1.0), ([1.0], 0.0), ([1.0], math.inf)],
)
def test_sampling_bad_inputs(weights: list[float], multiplier: float) -> None:
    with pytest.raises(ValueError):
        sample_active_set(weights, multiplier=multiplier)


def test_stats_by_hand() -> None:
    stats = curriculum_stats([0.5, 0.25, 0.25], draws=[0, 0, 1], ids=[10, 20, 30], top_k=2)
    assert json.loads(json.dumps(stats)) == stats
    assert stats == {
        "n": 3,
        "n_draws": 3,
        "unique": 2,
        "duplicated": 1,
        "weight_entropy": pytest.approx(1.5 * math.log(2)),
        "weight_entropy_max": pytest.approx(math.log(3)),
        "effective_sample_size": pytest.approx(1 / 0.375),
        "top_weighted": [{"idx": 10, "weight": 0.5}, {"idx": 20, "weight": 0.25}],
        "min_weight": 0.25,
        "max_weight": 0.5,
        "mean_weight": pytest.approx(1 / 3),
    }
    assert curriculum_stats([0.0, 1.0], draws=[1])["top_weighted"][0] == {"idx": 1, "weight": 1.0}
    with pytest.raises(ValueError, match="ids"):
        curriculum_stats([0.5, 0.5], draws=[0], ids=[1])
