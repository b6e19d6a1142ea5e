"""Paired statistics for comparing training methods ("arms") evaluated on the same problems.

Outcomes are per-problem scores (0/1 for right/wrong), either one row [n_problems] or one row per training seed
[n_seeds, n_problems], with the same problems in the same order for every arm. Differences are paired: every
resample draws the same problems (and seeds) for both arms, so problem difficulty cancels out.

With several seeds the bootstrap has two levels: seeds are resampled with replacement (training noise) and,
independently, problems are resampled with replacement, the same problem draw for every seed (the problems are
shared, so their difficulty is correlated across seeds). The statistic is the mean over the drawn seeds of the
mean over the drawn problems, i.e. the mean accuracy difference over seeds. With few seeds (2-3) the seed level
can only see the spread of those seeds, so the interval is a lower bound on the true uncertainty.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Resample counts are drawn in blocks so memory stays ~ _BLOCK_ELEMENTS numbers whatever n_resamples is.
_BLOCK_ELEMENTS = 2_000_000
_TIE_TOLERANCE = 1e-12


def _outcome_array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim not in (1, 2) or array.size == 0:
        raise ValueError(
            f"{name}: expected a non-empty array [n_problems] or [n_seeds, n_problems], got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: outcomes must be finite numbers")
    return array


def _paired(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = _outcome_array(a, "a"), _outcome_array(b, "b")
    if a.shape != b.shape:
        raise ValueError(
            f"paired outcomes need the same shape (same seeds, same problems), got {a.shape} and {b.shape}"
        )
    return a, b


def _bootstrap_means(diff: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Resampled mean differences ([n_resamples]) of a [n_seeds, n_problems] table of paired differences."""
    n_seeds, n_problems = diff.shape
    # Drawing n problems with replacement is the same as drawing multinomial counts of how often each distinct
    # column of differences is taken (with probability frequency / n): exact, and with 0/1 outcomes there are
    # at most 3**n_seeds distinct columns, so a resample costs a handful of numbers instead of n_problems.
    columns, frequency = np.unique(diff, axis=1, return_counts=True)
    block = max(1, _BLOCK_ELEMENTS // (columns.shape[1] + n_seeds))
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        problem_counts = rng.multinomial(n_problems, frequency / n_problems, size=size)
        per_seed = problem_counts @ columns.T  # [size, n_seeds]: each seed's sum over the drawn problems
        if n_seeds > 1:
            per_seed = per_seed * rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=size)
        out[start : start + size] = per_seed.sum(axis=1) / (n_seeds * n_problems)
    return out


def paired_bootstrap(a: Any, b: Any, n_resamples: int = 10000, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of mean(a) - mean(b): diff, percentile 95% CI, two-sided p-value (1-D or [seeds, problems])."""
    a, b = _paired(a, b)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    diff_table = np.atleast_2d(a - b)
    diff = float(diff_table.mean())
    boot = _bootstrap_means(diff_table, n_resamples, np.random.default_rng(seed))
    low, high = np.percentile(boot, [2.5, 97.5])
    # Null distribution: the bootstrap distribution shifted to mean zero. Counting ties and adding one keeps
    # the p-value above 0 and makes identical arms come out at exactly 1.
    extreme = int(np.count_nonzero(np.abs(boot - diff) >= abs(diff) - _TIE_TOLERANCE))
    return {
        "diff": diff,
        "ci_low": float(low),
        "ci_high": float(high),
        "p_value": (1 + extreme) / (1 + n_resamples),
    }


def mcnemar_exact(a: Any, b: Any) -> float:
    """Exact two-sided McNemar p-value of paired 0/1 outcomes (binomial test on the discordant pairs)."""
    a, b = _paired(a, b)
    if a.ndim != 1:
        raise ValueError(f"mcnemar_exact needs one row of outcomes per arm, got shape {a.shape}")
    if not (np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all()):
        raise ValueError("mcnemar_exact needs 0/1 outcomes")
    only_a = int(np.count_nonzero((a == 1) & (b == 0)))
    only_b = int(np.count_nonzero((a == 0) & (b == 1)))
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1))
    # Integer arithmetic until one correctly rounded division: exact for any number of pairs.
    return min(1.0, 2 * tail / 2**n)


def compare_arms(
    outcomes: dict[str, Any], reference: str, n_resamples: int = 10000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Per arm: mean, std over seeds, per-seed accuracy, and the paired comparison with `reference`."""
    if not outcomes:
        raise ValueError("compare_arms needs at least one arm")
    if reference not in outcomes:
        raise ValueError(f"reference arm {reference!r} is not among the arms: {', '.join(outcomes)}")
    tables = {arm: np.atleast_2d(_outcome_array(values, arm)) for arm, values in outcomes.items()}
    ref = tables[reference]
    result: dict[str, dict[str, Any]] = {}
    for arm, table in tables.items():
        if table.shape != ref.shape:
            raise ValueError(
                f"arm {arm!r} has outcomes of shape {table.shape}, the reference {reference!r} {ref.shape}; "
                "every arm needs the same seeds and problems"
            )
        n_seeds, n_problems = table.shape
        per_seed = table.mean(axis=1)
        test = paired_bootstrap(table, ref, n_resamples=n_resamples, seed=seed)
        result[arm] = {
            "mean": float(table.mean()),
            # Sample standard deviation of the per-seed accuracies (training-seed spread).
            "std": float(per_seed.std(ddof=1)) if n_seeds > 1 else None,
            "per_seed": [float(x) for x in per_seed],
            **test,
            "mcnemar_p": mcnemar_exact(table[0], ref[0]) if n_seeds == 1 else None,
            "n_problems": n_problems,
            "n_seeds": n_seeds,
            "significant": bool(test["ci_low"] > 0 or test["ci_high"] < 0),
        }
    return result


def describe_difference(result: dict[str, Any], arm: str, reference: str) -> str:
    """One sentence on `arm` vs `reference` (a paired_bootstrap/compare_arms entry; fractions, told in points)."""
    diff, low, high = (100.0 * result[key] for key in ("diff", "ci_low", "ci_high"))
    numbers = f"{arm} − {reference} = {diff:+.1f} points, 95% CI [{low:+.1f}, {high:+.1f}]"
    if result.get("p_value") is not None:
        numbers += f", p = {result['p_value']:.3g}"
    if low <= 0.0 <= high:
        return f"No significant difference between {arm} and {reference} ({numbers})."
    verdict = "better" if diff > 0 else "worse"
    return f"{arm} is {verdict} than {reference} by {abs(diff):.1f} points ({numbers})."


def _weights(weights: Any) -> np.ndarray:
    w = np.asarray(weights, dtype=float).ravel()
    if w.size == 0 or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            "weights must be a non-empty array of finite non-negative numbers with a positive sum"
        )
    return w


def effective_sample_size(weights: Any) -> float:
    """Kish's effective sample size (Σw)² / Σw²: n for equal weights, 1 when one sample has all the weight."""
    w = _weights(weights)
    return float(w.sum() ** 2 / np.square(w).sum())


def weight_entropy(weights: Any) -> float:
    """Shannon entropy (nats) of the normalised weights: log n for equal weights, 0 for a single sample."""
    p = _weights(weights)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())
