"""Entropy-gap curriculum: which samples Phase 3 trains on, and how often (Eq. 9-10).

dH_i = H_strong(i) - H_weak(i) (Eq. 9). Eq. 10 mixes three signals: how uncertain the weak model is (α), where
the strong model became more confident than the weak one (β, on [-dH]+) and where it became less confident (γ, on
[dH]+). The active set is drawn with replacement from the resulting distribution.

Eq. 10 has two readings, both here under names that say which:
- `paper_eq10` (normalization="single"): the equation as printed, p_i ∝ α·H_weak + β·[-dH]+ + γ·[dH]+,
  normalised once over i. A term's pull is proportional to its raw size.
- `authors_code` (normalization="per_term", the default): the authors' code, which divides each term by its own
  sum over i before mixing, so β's 0.8 of the mass goes to the samples with [-dH]+ > 0 however few they are and
  however small their entropy drop. This concentrates the draws far more when few samples' entropy fell.
The default reproduces the code that produced the paper's numbers; `paper_eq10` is what the paper says. Reports
give the effective sample size under both. The old name `paper` means `authors_code` (with a FutureWarning).

`brownboost_weights` approximates the BrownBoost-style alternative the authors mention; their code is not
public, so it mirrors the idea, not their exact formula: w_i ∝ exp(-(m_i + c)² / c) with margin
m_i = -dH_i / std(dH) (confidence the strong model gained over the weak one) and c the BrownBoost "time
remaining". Weight peaks at m_i = -c and decays both for well-learned (large margin) and hopeless (very
negative margin) samples; with zero spread in dH all margins are 0 and the weights are uniform.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from wmss import defaults
from wmss.errors import ConfigError
from wmss.method.settings import CurriculumSettings

# Entropies come from float32 reductions; slightly negative values are rounding noise, not bad data.
_NEGATIVE_TOLERANCE = 1e-6


class CurriculumWarning(UserWarning):
    """The curriculum degenerated (e.g. every signal is zero) and fell back to uniform weights."""


def _entropies(name: str, values: ArrayLike) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    if arr.min() < -_NEGATIVE_TOLERANCE:
        raise ValueError(f"{name} contains negative entropies (min {arr.min():.3g}); entropies must be >= 0")
    return np.clip(arr, 0.0, None)


def _entropy_pair(h_weak: ArrayLike, h_strong: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    weak, strong = _entropies("h_weak", h_weak), _entropies("h_strong", h_strong)
    if weak.shape != strong.shape:
        raise ValueError(f"h_weak and h_strong differ in length: {weak.size} vs {strong.size}")
    return weak, strong


def _coefficient(name: str, value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)


def entropy_gap(h_weak: ArrayLike, h_strong: ArrayLike) -> np.ndarray:
    """Return dH = H_strong - H_weak per sample (Eq. 9)."""
    weak, strong = _entropy_pair(h_weak, h_strong)
    return strong - weak


NORMALIZATIONS = ("per_term", "single")


def curriculum_weights(
    h_weak: ArrayLike,
    h_strong: ArrayLike,
    alpha: float = defaults.ALPHA,
    beta: float = defaults.BETA,
    gamma: float = defaults.GAMMA,
    normalization: str = "per_term",
) -> np.ndarray:
    """Sampling distribution of Eq. 10 (float64, sums to 1), per_term (authors' code) or single (as printed)."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
    coefs = [_coefficient(k, v) for k, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma))]
    if sum(coefs) == 0:
        raise ValueError("alpha, beta and gamma are all 0; at least one must be > 0")
    weak, strong = _entropy_pair(h_weak, h_strong)
    gap = strong - weak
    p = np.zeros_like(weak)
    for coef, term in zip(coefs, (weak, np.maximum(-gap, 0.0), np.maximum(gap, 0.0)), strict=True):
        total = term.sum()
        # Per term, an all-zero term carries no signal (its share is dropped, not spread uniformly).
        if coef > 0 and total > 0:
            p += coef * (term / total if normalization == "per_term" else term)
    if p.sum() == 0:
        warnings.warn(
            "curriculum: every weighted term is zero (no weak-model entropy and no entropy gap); "
            "falling back to uniform sampling",
            CurriculumWarning,
            stacklevel=2,
        )
        return np.full_like(p, 1.0 / p.size)
    return p / p.sum()


def brownboost_weights(h_weak: ArrayLike, h_strong: ArrayLike, c: float = 1.0) -> np.ndarray:
    """BrownBoost-inspired approximation of the authors' alternative weighting, NOT Eq. 10 (see module doc)."""
    if not (math.isfinite(c) and c > 0):
        raise ValueError(f"c must be a finite number > 0, got {c}")
    gap = entropy_gap(h_weak, h_strong)
    std = gap.std()
    margin = -gap / std if std > 0 else np.zeros_like(gap)
    log_w = -((margin + c) ** 2) / c
    w = np.exp(log_w - log_w.max())
    return w / w.sum()


def authors_code_weights(h_weak: ArrayLike, h_strong: ArrayLike, **coefs: float) -> np.ndarray:
    """Eq. 10 as the authors' code computes it: each term normalised by its own sum, then mixed."""
    return curriculum_weights(h_weak, h_strong, **coefs, normalization="per_term")


def paper_eq10_weights(h_weak: ArrayLike, h_strong: ArrayLike, **coefs: float) -> np.ndarray:
    """Eq. 10 as printed in the paper: the weighted terms normalised once over i."""
    return curriculum_weights(h_weak, h_strong, **coefs, normalization="single")


WEIGHTINGS: dict[str, Callable[..., np.ndarray]] = {
    "authors_code": authors_code_weights,
    "paper_eq10": paper_eq10_weights,
    "brownboost": brownboost_weights,
}
EQ10_WEIGHTINGS = ("authors_code", "paper_eq10")  # the readings of Eq. 10, which take alpha/beta/gamma
DEPRECATED_WEIGHTINGS = {"paper": "authors_code"}  # old name -> what it always computed


def resolve_weighting(name: str, key: str = "weighting") -> str:
    """The current name of a weighting; a deprecated name gives a FutureWarning, an unknown one a ConfigError."""
    if name in DEPRECATED_WEIGHTINGS:
        new = DEPRECATED_WEIGHTINGS[name]
        warnings.warn(
            f"curriculum weighting {name!r} is now called {new!r} (the authors' per-term normalisation); "
            "'paper_eq10' is the equation as printed (one normalisation over samples)",
            FutureWarning,
            stacklevel=3,
        )
        return new
    if name not in WEIGHTINGS:
        raise ConfigError(f"'{key}' must be one of {', '.join(WEIGHTINGS)}, got {name!r}")
    return name


def compute_weights(name: str, h_weak: ArrayLike, h_strong: ArrayLike, **kwargs: float) -> np.ndarray:
    """Dispatch to the weighting registered under `name` in WEIGHTINGS (deprecated names resolved)."""
    return WEIGHTINGS[resolve_weighting(name)](h_weak, h_strong, **kwargs)


def effective_sample_sizes(h_weak: ArrayLike, h_strong: ArrayLike, **coefs: float) -> dict[str, float]:
    """1 / Σ p_i² of the curriculum under each reading of Eq. 10 (how many samples the draws really cover)."""
    return {
        name: float(1.0 / np.square(WEIGHTINGS[name](h_weak, h_strong, **coefs)).sum())
        for name in EQ10_WEIGHTINGS
    }


def _distribution(weights: ArrayLike) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights must be a non-empty 1-D array, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    return w / w.sum()


def sample_active_set(weights: ArrayLike, multiplier: float = 1.0, seed: int = 0) -> np.ndarray:
    """Draw max(1, round(multiplier·n)) positions in [0, n) with replacement, proportionally to `weights`."""
    p = _distribution(weights)
    if not (math.isfinite(multiplier) and multiplier > 0):
        raise ValueError(f"multiplier must be a finite number > 0, got {multiplier}")
    n_draws = max(1, round(multiplier * p.size))
    return np.random.default_rng(seed).choice(p.size, size=n_draws, replace=True, p=p)


def curriculum_stats(
    weights: ArrayLike, draws: ArrayLike, ids: Sequence[int] | None = None, top_k: int = 10
) -> dict[str, Any]:
    """JSON-ready summary of a weighting and its draws (coverage, concentration, top-weighted sample ids)."""
    p = _distribution(weights)
    drawn = np.asarray(draws, dtype=np.int64)
    if ids is not None and len(ids) != p.size:
        raise ValueError(f"ids has {len(ids)} entries but weights has {p.size}")
    unique = int(np.unique(drawn).size)
    nonzero = p[p > 0]
    # Stable sort keeps ties in dataset order, so the report is reproducible.
    top = np.argsort(-p, kind="stable")[:top_k]
    return {
        "n": int(p.size),
        "n_draws": int(drawn.size),
        "unique": unique,
        "duplicated": int(drawn.size) - unique,
        "weight_entropy": float(-(nonzero * np.log(nonzero)).sum()),
        "weight_entropy_max": math.log(p.size),
        "effective_sample_size": float(1.0 / np.square(p).sum()),
        "top_weighted": [
            {"idx": int(ids[i]) if ids is not None else int(i), "weight": float(p[i])} for i in top
        ],
        "min_weight": float(p.min()),
        "max_weight": float(p.max()),
        "mean_weight": float(p.mean()),
    }


@dataclass
class Curriculum:
    """One curriculum: the Eq. 10 weight of every sample, the drawn positions (with repeats) and statistics."""

    weights: np.ndarray
    draws: np.ndarray  # positions into the scored samples, in draw order
    stats: dict[str, Any]


def build_curriculum(
    h_weak: ArrayLike, h_strong: ArrayLike, settings: CurriculumSettings, ids: Sequence[int] | None = None
) -> Curriculum:
    """Phase 2: weight every sample by the settings' reading of Eq. 10 and draw the active set (seeded)."""
    weak, strong = _entropy_pair(h_weak, h_strong)
    s = settings
    coefs = {"alpha": s.alpha, "beta": s.beta, "gamma": s.gamma}
    weighting = resolve_weighting(s.weighting)
    weights = compute_weights(weighting, weak, strong, **(coefs if weighting in EQ10_WEIGHTINGS else {}))
    draws = sample_active_set(weights, multiplier=s.sample_multiplier, seed=s.seed)
    stats = curriculum_stats(weights, draws, ids=ids)
    stats.update(
        mean_entropy_weak=float(weak.mean()),
        mean_entropy_strong=float(strong.mean()),
        frac_entropy_reduced=float((strong - weak < 0).mean()),
        # Both readings of Eq. 10, whichever one drew the active set.
        effective_sample_size_by_weighting=effective_sample_sizes(weak, strong, **coefs),
    )
    return Curriculum(weights, draws, stats)
