"""Logit dynamics on training data (Tables 2 and 6 of the paper) and the gradient probe of Appendix B.

Every statistic is computed per trained position (a position whose logits predict a completion token; labels in
the causal convention of `wmss.method.entropy`) and averaged over positions. The gradient probe measures, per position,
the norm of the gradient of the loss w.r.t. the strong model's logits under plain CE, softmax(z_s) - e_y, and
under the mixed CE of Eq. 12, λ·(softmax(λ·z_s + (1-λ)·z_w) - e_y): whether the weak partner keeps gradients
alive where plain CE has saturated.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from transformers import PreTrainedModel

from wmss import defaults
from wmss.config import RunConfig, load_config, require
from wmss.data import TrainingData, make_collator
from wmss.errors import ConfigError, DataError, ModelError
from wmss.method.entropy import compute_dtype, scored_mask, token_entropy, uses_plain_output_head
from wmss.method.mixed_loss import gather_trained_positions, mixed_logits
from wmss.models import check_same_vocabulary, load_causal_lm, load_tokenizer, vocabulary_signature
from wmss.phases.common import load_training_data
from wmss.training import process_state

logger = logging.getLogger(__name__)

STATS = (
    "target_logit",
    "distractor_logit_mean",
    "gap",
    "margin",
    "logit_std",
    "mean_logit",
    "centered_norm",
    "max_logit",
    "min_logit",
    "l2_norm",
    "entropy",
    "max_prob",
)
RESERVED = ("gradient_probe", "n_samples", "n_positions")


def _check_shapes(logits: Tensor, labels: Tensor) -> None:
    if logits.dim() != 3 or logits.shape[:2] != labels.shape:
        raise ValueError(
            f"expected logits [B, T, V] and labels [B, T], got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )


def _trained_chunks(
    logits: Tensor, labels: Tensor, ignore_index: int, chunk_size: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """Logits [chunk, V] and targets [chunk] of the trained positions of [B, T, V] logits, a chunk at a time."""
    mask = scored_mask(labels, ignore_index)
    batch_idx, pos_idx = mask.nonzero(as_tuple=True)
    targets = labels[:, 1:][mask]
    for start in range(0, targets.shape[0], chunk_size):
        sl = slice(start, start + chunk_size)
        # Indexing per chunk copies [chunk, V] logits at a time, never all N rows.
        yield logits[batch_idx[sl], pos_idx[sl]], targets[sl]


def _margin(z: Tensor, targets: Tensor) -> Tensor:
    """z_y - max over k != y of z_k, per row."""
    target = z.gather(1, targets[:, None])[:, 0]
    return target - z.scatter(1, targets[:, None], float("-inf")).amax(dim=1)


def logit_stat_sums(logits: Tensor, targets: Tensor) -> dict[str, float]:
    """Sums over rows of every statistic in STATS for logits [N, V] and targets [N] (float64 sums)."""
    z = logits.to(compute_dtype(logits.dtype))
    target = z.gather(1, targets[:, None])[:, 0]
    total = z.sum(dim=1)
    mean = total / z.shape[1]
    centered = z - mean[:, None]
    distractor = (total - target) / (z.shape[1] - 1)
    top = z.max(dim=1).values
    per_row = {
        "target_logit": target,
        "distractor_logit_mean": distractor,
        "gap": target - distractor,
        "margin": _margin(z, targets),
        "logit_std": centered.square().mean(dim=1).sqrt(),
        "mean_logit": mean,
        "centered_norm": centered.norm(dim=1),
        "max_logit": top,
        "min_logit": z.min(dim=1).values,
        "l2_norm": z.norm(dim=1),
        "entropy": token_entropy(z),
        "max_prob": torch.exp(top - torch.logsumexp(z, dim=1)),
    }
    return {key: float(value.double().sum()) for key, value in per_row.items()}


def logit_stats(
    logits: Tensor, labels: Tensor, ignore_index: int = defaults.IGNORE_INDEX
) -> dict[str, float]:
    """Mean over trained positions of each logit statistic in STATS (causal labels, computed in >= float32)."""
    _check_shapes(logits, labels)
    sums = dict.fromkeys(STATS, 0.0)
    n = 0
    for rows, targets in _trained_chunks(logits, labels, ignore_index, defaults.CHUNK_SIZE):
        for key, value in logit_stat_sums(rows, targets).items():
            sums[key] += value
        n += targets.shape[0]
    if n == 0:
        raise ValueError("no trained positions: every label is ignore_index")
    return {key: value / n for key, value in sums.items()}


def gradient_norms(
    strong: Tensor, weak: Tensor, targets: Tensor, lam: float = defaults.LAMBDA
) -> tuple[Tensor, Tensor]:
    """Per-row ||∂CE/∂z_strong|| for plain CE and for the mixed CE of Eq. 12 (rows [N, V], targets [N])."""

    def norm(logits: Tensor, scale: float) -> Tensor:
        p = torch.softmax(logits, dim=1).scatter(1, targets[:, None], 0.0)
        # ||p - e_y||² = (1 - p_y)² + Σ_{v≠y} p_v², with 1 - p_y summed from the off-target probabilities:
        # exact where the model is confident, which is where the probe matters.
        off = p.sum(dim=1)
        return scale * (off.square() + p.square().sum(dim=1)).sqrt()

    z_strong = strong.to(compute_dtype(strong.dtype))
    return norm(z_strong, 1.0), norm(mixed_logits(z_strong, weak, lam), lam)


def summarize_gradient_norms(plain: Tensor, mixed: Tensor, lam: float) -> dict[str, float]:
    """Mean, median, p10 and p90 of plain and mixed per-position gradient norms, and the ratio of means."""
    if plain.numel() == 0:
        raise ValueError("no trained positions: every label is ignore_index")
    summary: dict[str, float] = {}
    for name, values in (("plain", plain), ("mixed", mixed)):
        v = values.double().cpu().numpy()
        summary[f"{name}_mean"] = float(v.mean())
        summary[f"{name}_median"] = float(np.median(v))
        summary[f"{name}_p10"] = float(np.percentile(v, 10))
        summary[f"{name}_p90"] = float(np.percentile(v, 90))
    plain_mean = summary["plain_mean"]
    summary["mixed_over_plain"] = summary["mixed_mean"] / plain_mean if plain_mean > 0 else float("inf")
    summary["lam"] = float(lam)
    summary["n_positions"] = int(plain.numel())
    return summary


def _paired_chunks(
    strong_logits: Tensor, weak_logits: Tensor, labels: Tensor, ignore_index: int
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Strong rows, weak rows and targets of the trained positions of [B, T, V] logits, a chunk at a time."""
    _check_shapes(strong_logits, labels)
    if weak_logits.shape != strong_logits.shape:
        raise ValueError(
            f"strong and weak logits differ in shape: {tuple(strong_logits.shape)} vs {tuple(weak_logits.shape)}"
        )
    chunks = zip(
        _trained_chunks(strong_logits, labels, ignore_index, defaults.CHUNK_SIZE),
        _trained_chunks(weak_logits, labels, ignore_index, defaults.CHUNK_SIZE),
        strict=True,
    )
    for (strong, targets), (weak, _) in chunks:
        yield strong, weak, targets


def gradient_probe(
    strong_logits: Tensor,
    weak_logits: Tensor,
    labels: Tensor,
    lam: float = defaults.LAMBDA,
    ignore_index: int = defaults.IGNORE_INDEX,
) -> dict[str, float]:
    """Summary of per-position ||∂L/∂z_strong|| under plain CE and under mixed-logit CE (not divided by N)."""
    plain, mixed = [], []
    for strong, weak, targets in _paired_chunks(strong_logits, weak_logits, labels, ignore_index):
        p, m = gradient_norms(strong, weak, targets, lam)
        plain.append(p)
        mixed.append(m)
    empty = strong_logits.new_zeros(0)
    return summarize_gradient_norms(
        torch.cat(plain) if plain else empty, torch.cat(mixed) if mixed else empty, lam
    )


MIXING_STATS = (
    "frac_weak_more_uncertain",
    "frac_mix_lowers_target",
    "frac_weak_margin_le_strong",
    "frac_weak_confidently_wrong",
    "grad_share_strong_errors_sft",
    "grad_share_strong_errors_mixed",
)
CONFIDENT = 0.9  # max probability above which a wrong argmax counts as "confidently wrong"
# Log-probability differences below this, relative to the logits' scale, are float32 rounding noise of the two
# logsumexps, not mixing lowering the target.
_ROUNDING = 1e-6


def mixing_stat_sums(
    strong: Tensor, weak: Tensor, targets: Tensor, lam: float = defaults.LAMBDA
) -> dict[str, float]:
    """Counts and gradient-norm sums behind `mixing_stats` for rows [N, V] of both models and targets [N]."""
    z_s = strong.to(compute_dtype(strong.dtype))
    z_w = weak.to(z_s.dtype)
    z_mix = mixed_logits(z_s, z_w, lam)
    log_p_s, log_p_w = torch.log_softmax(z_s, dim=1), torch.log_softmax(z_w, dim=1)
    log_p_mix = torch.log_softmax(z_mix, dim=1)
    pick = targets[:, None]
    weak_wrong = z_w.argmax(dim=1) != targets
    strong_wrong = z_s.argmax(dim=1) != targets
    plain_norm, mixed_norm = gradient_norms(z_s, z_w, targets, lam)
    tolerance = _ROUNDING * (1 + torch.maximum(z_s.abs().amax(dim=1), z_mix.abs().amax(dim=1)))
    counts = {
        "frac_weak_more_uncertain": token_entropy(z_w) > token_entropy(z_s),
        "frac_mix_lowers_target": log_p_mix.gather(1, pick)[:, 0] < log_p_s.gather(1, pick)[:, 0] - tolerance,
        "frac_weak_margin_le_strong": _margin(z_w, targets) <= _margin(z_s, targets),
        "frac_weak_confidently_wrong": weak_wrong & (log_p_w.amax(dim=1) > math.log(CONFIDENT)),
    }
    sums = {key: float(value.sum()) for key, value in counts.items()}
    sums |= {
        "grad_sft_errors": float(plain_norm[strong_wrong].double().sum()),
        "grad_sft_all": float(plain_norm.double().sum()),
        "grad_mixed_errors": float(mixed_norm[strong_wrong].double().sum()),
        "grad_mixed_all": float(mixed_norm.double().sum()),
        "n": float(targets.shape[0]),
    }
    return sums


def finish_mixing_stats(sums: dict[str, float]) -> dict[str, float]:
    """Fractions of `mixing_stats` from summed `mixing_stat_sums`; ValueError when there were no positions."""
    n = sums.get("n", 0.0)
    if n == 0:
        raise ValueError("no trained positions: every label is ignore_index")

    def share(errors: float, total: float) -> float:
        return errors / total if total > 0 else 0.0

    result = {key: sums[key] / n for key in MIXING_STATS[:4]}
    result["grad_share_strong_errors_sft"] = share(sums["grad_sft_errors"], sums["grad_sft_all"])
    result["grad_share_strong_errors_mixed"] = share(sums["grad_mixed_errors"], sums["grad_mixed_all"])
    result["n_positions"] = int(n)
    return result


def add_sums(total: dict[str, float], part: dict[str, float]) -> dict[str, float]:
    """Element-wise sum of two dicts of sums (missing keys count as 0)."""
    return {key: total.get(key, 0.0) + part.get(key, 0.0) for key in total.keys() | part.keys()}


def mixing_stats(
    strong_logits: Tensor,
    weak_logits: Tensor,
    labels: Tensor,
    lam: float = defaults.LAMBDA,
    ignore_index: int = defaults.IGNORE_INDEX,
) -> dict[str, float]:
    """Token-level premises of WMSS over trained positions of [B, T, V] logits (causal labels): see MIXING_STATS."""
    sums: dict[str, float] = {}
    for strong, weak, targets in _paired_chunks(strong_logits, weak_logits, labels, ignore_index):
        sums = add_sums(sums, mixing_stat_sums(strong, weak, targets, lam))
    return finish_mixing_stats(sums)


def relative_change(stats_a: dict[str, float], stats_b: dict[str, float]) -> dict[str, float | None]:
    """Change of b relative to a in % per shared statistic (None where a is 0), as the paper reports."""
    return {
        key: None if stats_a[key] == 0 else 100.0 * (stats_b[key] - stats_a[key]) / abs(stats_a[key])
        for key in stats_a
        if key in stats_b
    }


def _model_chunks(
    model: PreTrainedModel, batch: dict[str, Tensor], chunk_size: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """Logits [chunk, V] and targets of a batch's trained positions, a chunk at a time."""
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "use_cache": False}
    if not uses_plain_output_head(model):  # soft-capped or scaled logits: only the full forward is exact
        yield from _trained_chunks(model(**inputs).logits, batch["labels"], defaults.IGNORE_INDEX, chunk_size)
        return
    rows, targets = gather_trained_positions(model.get_decoder()(**inputs)[0], batch["labels"])
    head = model.get_output_embeddings()
    for start in range(0, targets.shape[0], chunk_size):
        yield head(rows[start : start + chunk_size]), targets[start : start + chunk_size]


def _resolve_data(data: TrainingData | RunConfig | str | Path) -> tuple[RunConfig, TrainingData | None]:
    if isinstance(data, RunConfig):
        require(data, "data.train")
        return data, None
    if isinstance(data, TrainingData):
        return RunConfig(), data
    return load_config(values={"data.train": str(data)}), None


def _draw_batches(training: TrainingData, tokenizer: Any, n: int, seed: int, batch_size: int) -> list[dict]:
    """n examples drawn without replacement (all when n exceeds the data), collated in length-sorted batches."""
    dataset = training.dataset
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(dataset), size=min(n, len(dataset)), replace=False)
    rows = dataset.select(sorted(chosen.tolist()))
    examples = sorted(
        ({"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows),
        key=lambda e: len(e["input_ids"]),
    )
    collator = make_collator(tokenizer)
    return [collator(examples[i : i + batch_size]) for i in range(0, len(examples), batch_size)]


@torch.no_grad()
def _diagnose_model(
    model: PreTrainedModel,
    weak: PreTrainedModel | None,
    batches: list[dict],
    lam: float,
    chunk_size: int,
    device: torch.device,
) -> tuple[dict[str, float], dict[str, float] | None, int]:
    sums = dict.fromkeys(STATS, 0.0)
    plain: list[Tensor] = []
    mixed: list[Tensor] = []
    n = 0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        strong_chunks = _model_chunks(model, batch, chunk_size)
        weak_chunks = _model_chunks(weak, batch, chunk_size) if weak is not None else None
        for logits, targets in strong_chunks:
            for key, value in logit_stat_sums(logits, targets).items():
                sums[key] += value
            n += targets.shape[0]
            if weak_chunks is not None:
                weak_logits, _ = next(weak_chunks)
                p, m = gradient_norms(logits, weak_logits, targets, lam)
                plain.append(p.cpu())
                mixed.append(m.cpu())
    if n == 0:
        raise DataError("the drawn training examples have no trained (completion) positions")
    probe = summarize_gradient_norms(torch.cat(plain), torch.cat(mixed), lam) if weak is not None else None
    return {key: value / n for key, value in sums.items()}, probe, n


def diagnose(
    models: dict[str, str],
    data: TrainingData | RunConfig | str | Path,
    n: int = 200,
    seed: int = 0,
    weak: str | None = None,
    lam: float = defaults.LAMBDA,
    batch_size: int = 4,
    chunk_size: int = defaults.CHUNK_SIZE,
) -> dict[str, Any]:
    """Logit statistics of each model on n seeded training examples (+ gradient probe against `weak`)."""
    if not models:
        raise ConfigError("diagnose needs at least one model (NAME=PATH)")
    clash = sorted(set(models) & set(RESERVED))
    if clash:
        raise ConfigError(f"model name {clash[0]!r} is reserved for a result field; choose another name")
    if n < 1 or batch_size < 1 or chunk_size < 1:
        raise ConfigError(f"n, batch_size and chunk_size must be >= 1, got {n}, {batch_size}, {chunk_size}")
    config, training = _resolve_data(data)
    paths = list(models.values()) + ([weak] if weak else [])
    tokenizer = load_tokenizer(paths[0], config.model)
    # One tokenisation serves every model, so their token ids must mean the same thing.
    for path in paths[1:]:
        if vocabulary_signature(load_tokenizer(path, config.model)) != vocabulary_signature(tokenizer):
            raise ModelError(
                f"the tokenizers of {paths[0]!r} and {path!r} differ; compare models that share one"
            )
    training = training or load_training_data(config, tokenizer)
    batches = _draw_batches(training, tokenizer, n, seed, batch_size)
    device = process_state().device
    weak_model = load_causal_lm(weak, config.model).to(device).eval() if weak else None
    result: dict[str, Any] = {"n_samples": sum(len(b["input_ids"]) for b in batches)}
    probe: dict[str, dict[str, float]] = {}
    for name, path in models.items():
        model = weak_model if weak_model is not None and path == weak else load_causal_lm(path, config.model)
        model = model.to(device).eval()
        if weak_model is not None:
            check_same_vocabulary(weak_model, model, names=("weak", name))
        stats, summary, result["n_positions"] = _diagnose_model(
            model, weak_model, batches, lam, chunk_size, device
        )
        result[name] = stats
        if summary is not None:
            probe[name] = summary
        logger.info("diagnostics of %s (%s) on %d positions", name, path, result["n_positions"])
        if model is not weak_model:
            # Dropping the last reference frees the weights; a full gc.collect costs seconds in a large process.
            del model
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    result["gradient_probe"] = probe
    return result


@torch.no_grad()
def model_mixing_stats(
    strong: str,
    weak: str,
    data: TrainingData | RunConfig | str | Path,
    n: int = 200,
    seed: int = 0,
    lam: float = defaults.LAMBDA,
    batch_size: int = 4,
    chunk_size: int = defaults.CHUNK_SIZE,
) -> dict[str, float]:
    """`mixing_stats` of a strong and a weak model on n seeded training examples (the token-level premises)."""
    config, training = _resolve_data(data)
    tokenizer = load_tokenizer(strong, config.model)
    if vocabulary_signature(load_tokenizer(weak, config.model)) != vocabulary_signature(tokenizer):
        raise ModelError(
            f"the tokenizers of {strong!r} and {weak!r} differ; logit mixing needs one vocabulary"
        )
    training = training or load_training_data(config, tokenizer)
    device = process_state().device
    models = [load_causal_lm(path, config.model).to(device).eval() for path in (strong, weak)]
    check_same_vocabulary(models[1], models[0], names=("weak", "strong"))
    sums: dict[str, float] = {}
    for batch in _draw_batches(training, tokenizer, n, seed, batch_size):
        batch = {k: v.to(device) for k, v in batch.items()}
        pairs = zip(*(_model_chunks(model, batch, chunk_size) for model in models), strict=True)
        for (strong_rows, targets), (weak_rows, _) in pairs:
            sums = add_sums(sums, mixing_stat_sums(strong_rows, weak_rows, targets, lam))
    if not sums:
        raise DataError("the drawn training examples have no trained (completion) positions")
    return finish_mixing_stats(sums)


def format_table(result: dict[str, Any]) -> str:
    """The statistics as a plain-text table (change vs the first model in %), then the gradient probe."""
    names = [key for key, value in result.items() if isinstance(value, dict) and "target_logit" in value]
    width = max(12, *(len(name) for name in names))
    lines = [
        f"{result['n_samples']} samples, {result['n_positions']} trained positions",
        f"{'statistic':<22}" + "".join(f"{name:>{width + 10}}" for name in names),
    ]
    base = result[names[0]]
    for key in STATS:
        cells = ""
        for name in names:
            change = relative_change(base, result[name])[key] if name != names[0] else None
            suffix = f" ({change:+.0f}%)" if change is not None else ""
            cells += f"{result[name][key]:.4g}{suffix}".rjust(width + 10)
        lines.append(f"{key:<22}{cells}")
    probe = result.get("gradient_probe") or {}
    if probe:
        lines += ["", f"{'gradient probe':<22}{'plain mean':>14}{'mixed mean':>14}{'mixed/plain':>14}"]
        for name, values in probe.items():
            lines.append(
                f"{name:<22}{values['plain_mean']:>14.4g}{values['mixed_mean']:>14.4g}"
                f"{values['mixed_over_plain']:>14.3f}"
            )
    return "\n".join(lines)
