"""PNG plots of a comparison: accuracies, paired differences, loss curves, sweeps, histograms, logit statistics,
pass@k curves.

Accuracies and differences are fractions (0.7 = 70%) and are drawn in percent / percentage points. Figures are
drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend switch, no display needed);
matplotlib is imported inside the functions so `import wmss` stays light. Every function writes its PNG
atomically and returns the path.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wmss.io import published_mode

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAIN_LOGIT_STATS = (
    "target_logit",
    "distractor_logit_mean",
    "gap",
    "logit_std",
    "centered_norm",
    "max_logit",
    "entropy",
    "max_prob",
)
_REFERENCE_COLOR = "tab:orange"
_COLOR = "tab:blue"
_DECADES_FOR_LOG = 2.0  # losses spanning at least 100x get a log axis


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, published_mode())
    os.close(fd)
    try:
        figure.savefig(tmp, format="png")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _series(name: str, values: Any, n: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if n is not None and array.size != n:
        raise ValueError(f"{name} has {array.size} values, expected {n} (one per label)")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite numbers")
    return array


def _labels(labels: Sequence[str], name: str) -> list[str]:
    labels = [str(label) for label in labels]
    if not labels:
        raise ValueError(f"{name} is empty")
    return labels


def _error_bars(center: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Asymmetric [2, n] error bar lengths; refuses intervals that do not contain their center."""
    below, above = center - low, high - center
    if (below < -1e-9).any() or (above < -1e-9).any():
        raise ValueError("every interval must contain its value (ci_low <= value <= ci_high)")
    return np.clip(np.stack([below, above]), 0.0, None)


def plot_accuracy(
    arms: Sequence[str],
    means: Sequence[float],
    ci_low: Sequence[float],
    ci_high: Sequence[float],
    path: str | Path,
    reference: str | None = None,
    title: str = "Accuracy",
) -> Path:
    """Accuracy per arm (percent) with asymmetric 95% CI error bars; the reference arm highlighted."""
    arms = _labels(arms, "arms")
    n = len(arms)
    means_, low, high = (
        _series(k, v, n) for k, v in (("means", means), ("ci_low", ci_low), ("ci_high", ci_high))
    )
    errors = _error_bars(means_, low, high)
    figure = _figure(max(5.0, 0.9 * n + 2.0), 4.0)
    ax = figure.add_subplot()
    x = np.arange(n)
    colors = [_REFERENCE_COLOR if arm == reference else _COLOR for arm in arms]
    ax.bar(x, 100 * means_, color=colors, alpha=0.8)
    ax.errorbar(x, 100 * means_, yerr=100 * errors, fmt="none", ecolor="black", capsize=4)
    if reference in arms:
        ax.axhline(100 * means_[arms.index(reference)], color=_REFERENCE_COLOR, linestyle="--", linewidth=1)
    for xi, value, top in zip(x, means_, high, strict=True):
        ax.annotate(
            f"{100 * value:.1f}",
            (xi, 100 * top),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax.set_xticks(x, arms, rotation=30 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def plot_differences(
    arms: Sequence[str],
    diffs: Sequence[float],
    ci_low: Sequence[float],
    ci_high: Sequence[float],
    path: str | Path,
    reference: str,
) -> Path:
    """Forest plot of each arm's paired difference to the reference (points) with 95% CIs and a line at 0."""
    arms = _labels(arms, "arms")
    n = len(arms)
    diffs_, low, high = (
        _series(k, v, n) for k, v in (("diffs", diffs), ("ci_low", ci_low), ("ci_high", ci_high))
    )
    errors = _error_bars(diffs_, low, high)
    figure = _figure(6.5, max(2.5, 0.45 * n + 1.5))
    ax = figure.add_subplot()
    y = np.arange(n)[::-1]  # first arm on top
    significant = (low > 0) | (high < 0)
    for yi, d, err, sig in zip(y, diffs_, errors.T, significant, strict=True):
        ax.errorbar(
            100 * d, yi, xerr=100 * err[:, None], fmt="o", capsize=4, color=_COLOR if sig else "tab:gray"
        )
    ax.axvline(0.0, color="black", linewidth=1)
    ax.set_yticks(y, arms)
    ax.set_xlabel(f"difference vs {reference} (percentage points, 95% CI)")
    ax.set_title(f"Paired differences vs {reference} (grey: CI covers 0)")
    ax.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def use_log_scale(losses: Sequence[float]) -> bool:
    """True when positive losses span at least two decades, where a linear axis hides the late curve."""
    values = np.asarray(losses, dtype=float)
    return bool((values > 0).all() and np.log10(values.max() / values.min()) >= _DECADES_FOR_LOG)


def plot_loss_curves(curves: Mapping[str, Sequence[tuple[int, float]]], path: str | Path) -> Path:
    """Training loss vs optimizer step, one line per arm; log-scale y when the losses span decades."""
    if not curves:
        raise ValueError("curves is empty")
    points = {}
    for arm, curve in curves.items():
        array = np.asarray(curve, dtype=float)
        if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != 2:
            raise ValueError(f"curve {arm!r} must be a non-empty list of (step, loss) pairs")
        points[arm] = array
    figure = _figure(7.0, 4.0)
    ax = figure.add_subplot()
    for arm, array in points.items():
        ax.plot(array[:, 0], array[:, 1], marker="." if len(array) < 30 else None, label=arm)
    if use_log_scale(np.concatenate([array[:, 1] for array in points.values()])):
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(figure, path)


def plot_sweep(
    xs: Sequence[float],
    means: Sequence[float],
    ci_low: Sequence[float],
    ci_high: Sequence[float],
    path: str | Path,
    xlabel: str,
    reference_value: float | None = None,
) -> Path:
    """Accuracy (percent) vs a swept setting, e.g. λ, with 95% CIs and an optional reference line."""
    xs_ = _series("xs", xs)
    n = xs_.size
    means_, low, high = (
        _series(k, v, n) for k, v in (("means", means), ("ci_low", ci_low), ("ci_high", ci_high))
    )
    errors = _error_bars(means_, low, high)
    order = np.argsort(xs_)
    figure = _figure(6.0, 4.0)
    ax = figure.add_subplot()
    ax.errorbar(
        xs_[order], 100 * means_[order], yerr=100 * errors[:, order], fmt="-o", capsize=4, color=_COLOR
    )
    if reference_value is not None:
        ax.axhline(100 * reference_value, color=_REFERENCE_COLOR, linestyle="--", label="reference")
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Accuracy vs {xlabel} (95% CI)")
    ax.grid(alpha=0.3)
    return _save(figure, path)


def plot_histograms(series: Mapping[str, Any], path: str | Path, title: str, xlabel: str) -> Path:
    """Overlaid histograms on shared bins, one per series, each labelled with its size n."""
    if not series:
        raise ValueError("series is empty")
    arrays = {name: _series(f"series {name!r}", values) for name, values in series.items()}
    edges = np.histogram_bin_edges(np.concatenate(list(arrays.values())), bins="auto")
    if edges.size > 51:  # "auto" can pick thousands of bins for long-tailed data
        edges = np.histogram_bin_edges(np.concatenate(list(arrays.values())), bins=50)
    figure = _figure(6.5, 4.0)
    ax = figure.add_subplot()
    for name, values in arrays.items():
        ax.hist(values, bins=edges, alpha=0.5, label=f"{name} (n={values.size})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(figure, path)


def plot_logit_stats(stats: Mapping[str, Mapping[str, float]], path: str | Path) -> Path:
    """One small panel per main logit statistic (Tables 2/6), one bar per model in each."""
    if not stats:
        raise ValueError("stats is empty")
    models = list(stats)
    keys = [key for key in MAIN_LOGIT_STATS if all(key in stats[m] for m in models)]
    if not keys:
        raise ValueError(f"the models share none of the statistics {', '.join(MAIN_LOGIT_STATS)}")
    columns = min(4, len(keys))
    rows = -(-len(keys) // columns)
    figure = _figure(3.0 * columns, 2.6 * rows + 0.4)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    colors = [f"C{i % 10}" for i in range(len(models))]
    x = np.arange(len(models))
    for ax, key in zip(axes, keys, strict=False):
        values = _series(key, [stats[m][key] for m in models])
        ax.bar(x, values, color=colors)
        ax.set_title(key, fontsize=9)
        ax.set_xticks(
            x,
            models,
            rotation=30 if len(models) > 2 else 0,
            fontsize=8,
            ha="right" if len(models) > 2 else "center",
        )
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    figure.suptitle("Logit statistics over trained positions")
    return _save(figure, path)


def plot_pass_at_k(
    curves: Mapping[str, Mapping[int, float]], path: str | Path, title: str = "pass@k"
) -> Path:
    """pass@k (percent) vs k on a log2 axis, one line per model; curves: model -> {k: pass@k} (a fraction)."""
    if not curves:
        raise ValueError("curves is empty")
    points = {}
    for model, curve in curves.items():
        if not curve:
            raise ValueError(f"curve {model!r} is empty")
        ks = sorted(curve)
        if ks[0] < 1:
            raise ValueError(f"curve {model!r}: k must be >= 1, got {ks[0]}")
        points[model] = (np.asarray(ks, dtype=float), _series(f"curve {model!r}", [curve[k] for k in ks]))
    ticks = sorted({int(k) for curve in curves.values() for k in curve})
    figure = _figure(6.0, 4.0)
    ax = figure.add_subplot()
    for model, (x, values) in points.items():
        ax.plot(x, 100 * values, marker="o", label=model)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(k) for k in ticks])
    ax.minorticks_off()
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("pass@k (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(figure, path)


def plot_saturation(points: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """The paper's Figure 4 per Phase-1 checkpoint: target logit, mean non-target logit and margin (left), and
    the validation accuracy (right) where measured; points: dicts with step and those keys."""
    if not points:
        raise ValueError("points is empty")
    steps = np.asarray([p["step"] for p in points], dtype=float)
    accuracy = [p.get("accuracy") for p in points]
    with_accuracy = all(a is not None for a in accuracy)
    figure = _figure(9.0 if with_accuracy else 5.0, 3.6)
    axes = figure.subplots(1, 2 if with_accuracy else 1, squeeze=False).ravel()
    for key, label in (
        ("target_logit", "target logit"),
        ("distractor_logit_mean", "mean non-target logit"),
        ("margin", "margin (target - max other)"),
    ):
        axes[0].plot(steps, _series(key, [p[key] for p in points]), marker="o", label=label)
    axes[0].set_xlabel("Phase 1 step")
    axes[0].set_ylabel("logit")
    axes[0].set_title("Logits over training (Figure 4)")
    axes[0].grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if with_accuracy:
        axes[1].plot(steps, 100 * _series("accuracy", accuracy), marker="o", color=_COLOR)
        axes[1].set_xlabel("Phase 1 step")
        axes[1].set_ylabel("validation accuracy (%)")
        axes[1].set_title("Validation accuracy")
        axes[1].grid(alpha=0.3)
    return _save(figure, path)
