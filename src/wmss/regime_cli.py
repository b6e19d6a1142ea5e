"""`wmss regime`: measure the premises of WMSS on your own weak (M0) and strong (M1) models before training.

Writes OUTPUT/regime.json, OUTPUT/regime.md and, with --checkpoints, OUTPUT/plots/saturation.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from wmss import plots
from wmss.cli_args import add_config_arguments, config_from_args
from wmss.compare.arms import stage_slug
from wmss.compare.evaluation import HELDOUT, evaluate_model, read_outcomes
from wmss.config import RunConfig, require
from wmss.data import TrainingData, make_collator
from wmss.diagnostics import diagnose, model_mixing_stats
from wmss.errors import ConfigError
from wmss.eval.datasets import load_records_file
from wmss.io import atomic_write_json, atomic_write_text, ensure_directory
from wmss.models import check_model_path, load_causal_lm, load_tokenizer
from wmss.phases.common import load_training_data
from wmss.phases.entropy import dataset_entropies
from wmss.regime import (
    checkpoint_dirs,
    continued_probe,
    group_labels,
    regime_markdown,
    regime_section,
    sample_level,
)
from wmss.training import process_state

SATURATION_STATS = ("target_logit", "distractor_logit_mean", "margin", "gap")


def _entropies(
    config: RunConfig, model_path: str, training: TrainingData, tokenizer: Any
) -> dict[int, float]:
    model = load_causal_lm(model_path, config.model).to(process_state().device)
    scores = dataset_entropies(
        model,
        training.dataset,
        make_collator(tokenizer),
        batch_size=config.wmss.entropy_batch_size,
        chunk_size=config.wmss.loss_chunk_size,
    )
    return {idx: h for idx, (h, _) in scores.items()}


class _Evaluator:
    """Greedy outcomes of models on the validation file, each written once under OUTPUT/eval (resumable)."""

    def __init__(self, config: RunConfig, eval_file: str, output: Path) -> None:
        self.config = config
        self.records = {HELDOUT: load_records_file(eval_file, name=HELDOUT, kind=config.compare.eval_kind)}
        self.output = output

    def outcomes(self, model: str | Path) -> np.ndarray:
        path = self.output / f"{stage_slug(str(model))}.json"
        if not path.is_file():
            evaluate_model(Path(model), self.config, self.records, path)
        return np.asarray(read_outcomes(path, self.records)[HELDOUT])


def run_regime(
    config: RunConfig,
    weak: str,
    strong: str,
    output: str | Path,
    eval_file: str | None = None,
    checkpoints: str | None = None,
    continued: str | None = None,
    group_field: str | None = None,
    n: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure every premise of `wmss.premises` for one weak/strong pair; write regime.json and regime.md."""
    require(config, "data.train")
    if continued and not eval_file:
        raise ConfigError("--continued needs --eval-file: the probe compares accuracies on held-out problems")
    models = {"the weak model": weak, "the strong model": strong, "the continued model": continued}
    for path in filter(None, models.values()):
        check_model_path(path)
    output = ensure_directory(output, {**models, "the training data": config.data.train})
    tokenizer = load_tokenizer(strong, config.model)
    training = load_training_data(config, tokenizer, output / "data_cache")
    h_weak = _entropies(config, weak, training, tokenizer)
    h_strong = _entropies(config, strong, training, tokenizer)
    ids = sorted(h_weak)
    w = config.wmss
    sample = sample_level(
        [h_weak[i] for i in ids],
        [h_strong[i] for i in ids],
        group_labels(str(config.data.train), group_field, ids) if group_field else None,
        alpha=w.alpha,
        beta=w.beta,
        gamma=w.gamma,
    )
    token = model_mixing_stats(
        strong, weak, training, n=n, seed=seed, lam=w.lam, chunk_size=w.loss_chunk_size
    )
    evaluator = _Evaluator(config, eval_file, output / "eval") if eval_file else None
    probe = None
    if continued and evaluator:
        probe = continued_probe(evaluator.outcomes(strong), evaluator.outcomes(continued))
    saturation = None
    if checkpoints:
        saturation = []
        for step, path in checkpoint_dirs(checkpoints):
            stats = diagnose({"model": str(path)}, training, n=n, seed=seed)["model"]
            accuracy = float(evaluator.outcomes(path).mean()) if evaluator else None
            saturation.append({"step": step, **{k: stats[k] for k in SATURATION_STATS}, "accuracy": accuracy})
        plots.plot_saturation(saturation, output / "plots" / "saturation.png")
    section = regime_section(sample, token, probe, saturation)
    section["models"] = {"weak": weak, "strong": strong, "continued": continued}
    atomic_write_json(output / "regime.json", section)
    lines = [f"# WMSS premises: weak {weak}, strong {strong}", "", *regime_markdown(section)]
    atomic_write_text(output / "regime.md", "\n".join(lines) + "\n")
    return section


SHORTCUTS = {"data": "data.train", "system_prompt": "data.system_prompt", "lam": "wmss.lam"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss regime`."""
    add_config_arguments(parser)
    parser.add_argument("--weak", required=True, help="weak model (M0, or M_{t-1}): directory or hub id")
    parser.add_argument("--strong", required=True, help="strong model (M1, or M_t): directory or hub id")
    parser.add_argument("--data", help="training data: JSONL file or HF dataset name (data.train)")
    parser.add_argument("--system-prompt", help="'reasoning' (the paper's prompt) or literal text")
    parser.add_argument("--lam", type=float, help="mixing coefficient λ of the token-level checks (wmss.lam)")
    parser.add_argument(
        "--eval-file", help="validation JSONL (question/answer) for the probe and checkpoint accuracies"
    )
    parser.add_argument(
        "--checkpoints", help="directory of Phase-1 Trainer checkpoints (checkpoint-N): Figure 4's logits"
    )
    parser.add_argument(
        "--continued", help="M1 after more plain SFT: its gain over M1 on --eval-file tests saturation"
    )
    parser.add_argument("--group-field", help="record field to break the curriculum's mass down by")
    parser.add_argument("--n", type=int, default=200, help="training samples for the token-level checks")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawn samples")
    parser.add_argument("--output", default="runs/regime", help="directory for regime.json / regime.md")


def run_cli(args: argparse.Namespace) -> None:
    """Run `wmss regime`."""
    if args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    config = config_from_args(args, SHORTCUTS)
    section = run_regime(
        config,
        args.weak,
        args.strong,
        args.output,
        eval_file=args.eval_file,
        checkpoints=args.checkpoints,
        continued=args.continued,
        group_field=args.group_field,
        n=args.n,
        seed=args.seed,
    )
    print("\n".join(regime_markdown(section)))
    print(f"written to {Path(args.output) / 'regime.json'} and regime.md")
