"""The method's commands (`wmss sft` ... `wmss regime`): their options, and how each calls the computation.

Every command reads `--config FILE`, repeatable `--set section.key=value` and its own flags into one validated
`RunConfig` (a flag is a shortcut to a config key), then calls one function of the package and prints where
its results went. Nothing here computes.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from wmss.compare import diagnostics
from wmss.compare.comparison import run_compare
from wmss.compare.regime import regime_markdown, run_regime
from wmss.compare.report import render_table
from wmss.config import RunConfig, load_config, require
from wmss.errors import ConfigError
from wmss.io import atomic_write_json
from wmss.method.curriculum import DEPRECATED_WEIGHTINGS, WEIGHTINGS
from wmss.phases.curriculum_file import run_curriculum
from wmss.phases.entropy_file import run_entropy
from wmss.phases.extract import run_extract
from wmss.phases.joint import run_joint
from wmss.phases.sft import run_sft
from wmss.pipeline import run_pipeline
from wmss.stages import MANIFEST

# Flags that name a config key: argparse destination -> dotted key.
DATA_FLAGS = {"data": "data.train", "system_prompt": "data.system_prompt"}
MIXING_FLAGS = {"lam": "wmss.lam", **DATA_FLAGS}  # commands that mix weak and strong logits
RUN_FLAGS = {"model": "model.base", "data": "data.train", "output": "pipeline.output_dir"}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--config FILE` and repeatable `--set section.key=value` to a parser."""
    parser.add_argument(
        "--config", metavar="FILE", help="YAML config (sections: model, data, sft, joint, wmss, pipeline)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one config key, e.g. --set wmss.lam=0.3 (repeatable)",
    )


def config_from_args(args: argparse.Namespace, flags: Mapping[str, str]) -> RunConfig:
    """Build the config from --config, --set and flags; `flags` maps argparse destinations to dotted keys."""
    values = {
        key: getattr(args, dest) for dest, key in flags.items() if getattr(args, dest, None) is not None
    }
    return load_config(args.config, args.overrides, values)


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="training data: JSONL file or HF dataset name (data.train)")
    parser.add_argument("--system-prompt", help="'reasoning' (the paper's prompt) or literal text")


def _rerun_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rerun",
        metavar="STAGE",
        action="append",
        default=[],
        help="run this finished stage again from scratch (e.g. round1.entropy_weak), and every later stage its "
        "new result changes; repeatable",
    )


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _int_csv(text: str) -> list[int]:
    try:
        return [int(item) for item in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def sft_options(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss sft`."""
    add_config_arguments(parser)
    parser.add_argument("--model", help="base model M0: local directory or hub id (model.base)")
    _data_arguments(parser)
    parser.add_argument(
        "--output", required=True, help="stage directory; the model is written to OUTPUT/model"
    )


def sft(args: argparse.Namespace) -> None:
    """Run `wmss sft`."""
    config = config_from_args(args, {"model": "model.base", **DATA_FLAGS})
    require(config, "model.base", "data.train")
    path = run_sft(config, config.model.base, args.output)
    print(f"SFT model written to {path}")


def entropy_options(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss entropy`."""
    add_config_arguments(parser)
    parser.add_argument("--model", required=True, help="model directory or hub id")
    _data_arguments(parser)
    parser.add_argument("--batch-size", type=int, help="sequences per forward pass (wmss.entropy_batch_size)")
    parser.add_argument("--output", required=True, help="JSON file to write (idx -> mean completion entropy)")


def entropy(args: argparse.Namespace) -> None:
    """Run `wmss entropy`."""
    config = config_from_args(args, {"batch_size": "wmss.entropy_batch_size", **DATA_FLAGS})
    require(config, "data.train")
    path = run_entropy(config, args.model, args.output)
    print(f"entropies written to {path}")


def curriculum_options(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss curriculum`."""
    add_config_arguments(parser)
    parser.add_argument("--weak", required=True, help="entropy file of the weak model (from `wmss entropy`)")
    parser.add_argument("--strong", required=True, help="entropy file of the strong model")
    parser.add_argument("--alpha", type=float, help="weight of the weak model's entropy term (default 0.1)")
    parser.add_argument("--beta", type=float, help="weight of the entropy-reduced term (default 0.8)")
    parser.add_argument("--gamma", type=float, help="weight of the entropy-increased term (default 0.1)")
    parser.add_argument("--multiplier", type=float, help="active set size / data size (default 1.0)")
    parser.add_argument(
        "--weighting",
        choices=[*WEIGHTINGS, *DEPRECATED_WEIGHTINGS],
        help="authors_code (Eq. 10 per-term normalised, the default), paper_eq10 (as printed) or brownboost",
    )
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument("--output", required=True, help="directory for curriculum.json")


def curriculum(args: argparse.Namespace) -> None:
    """Run `wmss curriculum`."""
    flags = {name: f"wmss.{name}" for name in ("alpha", "beta", "gamma", "weighting", "seed")}
    config = config_from_args(args, {**flags, "multiplier": "wmss.sample_multiplier"})
    path = run_curriculum(config.wmss.curriculum, args.weak, args.strong, args.output)
    print(f"curriculum written to {path}")


def joint_options(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss joint`."""
    add_config_arguments(parser)
    parser.add_argument("--weak", required=True, help="weak model (M_{t-1}) directory or hub id")
    parser.add_argument("--strong", required=True, help="strong model (M_t) directory or hub id")
    parser.add_argument("--curriculum", help="curriculum.json (or its directory); default: all data once")
    _data_arguments(parser)
    parser.add_argument("--lam", type=float, help="mixing coefficient lambda in (0, 1] (default 0.5)")
    parser.add_argument(
        "--freeze-weak",
        action="store_true",
        help="keep the weak model fixed (default: co-train it, as the paper)",
    )
    parser.add_argument(
        "--output",
        required=True,
        help="stage directory; the strong model goes to OUTPUT/final, the weak one to OUTPUT/final/weak",
    )


def joint(args: argparse.Namespace) -> None:
    """Run `wmss joint`."""
    if args.freeze_weak:
        args.overrides = [*args.overrides, "wmss.weak_trainable=false"]
    config = config_from_args(args, MIXING_FLAGS)
    require(config, "data.train")
    path = run_joint(
        config, config.wmss.joint, args.weak, args.strong, args.output, curriculum=args.curriculum
    )
    print(
        f"joint models written to {path} (strong) and {path}/weak; extract with `wmss extract --joint {args.output}`"
    )


def extract_options(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss extract`."""
    parser.add_argument("--joint", required=True, help="output directory of `wmss joint` (or a checkpoint-N)")
    parser.add_argument("--output", required=True, help="directory for the standalone checkpoint")
    parser.add_argument(
        "--branch", choices=["strong", "weak"], default="strong", help="which model to extract"
    )


def extract(args: argparse.Namespace) -> None:
    """Run `wmss extract`."""
    path = run_extract(args.joint, args.output, args.branch)
    print(f"{args.branch} model written to {path} (load it with AutoModelForCausalLM.from_pretrained)")


def run_options(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss run`."""
    add_config_arguments(parser)
    parser.add_argument("--model", help="base model M0: local directory or hub id (model.base)")
    parser.add_argument(
        "--sft-model", help="an existing M1 to start from instead of running Phase 1 (model.sft)"
    )
    parser.add_argument("--data", help="training data: JSONL file or HF dataset name (data.train)")
    parser.add_argument("--output", help="run directory (pipeline.output_dir)")
    _rerun_argument(parser)


def run(args: argparse.Namespace) -> None:
    """Run `wmss run`."""
    config = config_from_args(args, {**RUN_FLAGS, "sft_model": "model.sft"})
    result = run_pipeline(config, rerun=args.rerun)
    print(f"run directory: {result.run_dir} (manifest: {result.run_dir / MANIFEST})")
    print(f"final WMSS model: {result.final_model}")
    if result.sft_continued_model:
        print(f"continued-SFT baseline: {result.sft_continued_model}")


COMPARE_FLAGS = {
    **RUN_FLAGS,
    **{
        name: f"compare.{name}"
        for name in ("eval_file", "data_dir", "reference", "arms", "seeds", "benchmarks")
    },
    "limit": "compare.eval_limit",
    "sweep": "compare.sweeps",
}


def compare_options(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss compare`."""
    add_config_arguments(parser)
    parser.add_argument("--model", help="base model M0: local directory or hub id (model.base)")
    parser.add_argument("--data", help="training data: JSONL file or HF dataset name (data.train)")
    parser.add_argument("--output", help="run directory (pipeline.output_dir)")
    parser.add_argument(
        "--arms", type=_csv, help="comma-separated arms (compare.arms), e.g. sft_continued,wmss"
    )
    parser.add_argument("--reference", help="the arm every other arm is compared with (compare.reference)")
    parser.add_argument("--seeds", type=_int_csv, help="comma-separated training seeds (compare.seeds)")
    parser.add_argument(
        "--sweep",
        action="append",
        default=None,
        help="sweep applied to compare.sweep_arms, e.g. wmss.lam=0.1,0.3,0.5 (repeatable: cartesian product)",
    )
    parser.add_argument("--eval-file", help="held-out JSONL with question/answer records (compare.eval_file)")
    parser.add_argument("--benchmarks", type=_csv, help="benchmarks for wmss.eval, e.g. gsm8k,svamp")
    parser.add_argument("--data-dir", help="directory of local benchmark files (compare.data_dir)")
    parser.add_argument("--limit", type=int, help="first N problems of each benchmark (compare.eval_limit)")
    _rerun_argument(parser)


def compare(args: argparse.Namespace) -> None:
    """Run `wmss compare`."""
    config = config_from_args(args, COMPARE_FLAGS)
    report = run_compare(config, rerun=args.rerun)
    print(render_table(report))
    print(f"report: {Path(config.pipeline.output_dir) / 'report.md'} and report.json, plots in plots/")


def _models(spec: str) -> dict[str, str]:
    """--models NAME=PATH,... (a bare PATH names itself)."""
    models: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, path = item.partition("=")
        name, path = (name.strip(), path.strip()) if sep else (item, item)
        if not name or not path:
            raise ConfigError(f"--models: {item!r} is not NAME=PATH")
        if name in models:
            raise ConfigError(f"--models: the name {name!r} is given twice")
        models[name] = path
    if not models:
        raise ConfigError("--models: give at least one NAME=PATH")
    return models


def diagnose_options(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss diagnose`."""
    add_config_arguments(parser)
    parser.add_argument(
        "--models", required=True, help="comma-separated NAME=PATH (model directories or hub ids)"
    )
    _data_arguments(parser)
    parser.add_argument(
        "--n", type=int, default=200, help="training examples drawn (seeded, without replacement)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw")
    parser.add_argument("--weak", help="weak model for the gradient probe (mixed CE vs plain CE)")
    parser.add_argument("--lam", type=float, help="mixing coefficient of the probe (wmss.lam)")
    parser.add_argument("--batch-size", type=int, default=4, help="sequences per forward pass")
    parser.add_argument("--output", help="JSON file to write the results to")


def diagnose(args: argparse.Namespace) -> None:
    """Run `wmss diagnose`."""
    config = config_from_args(args, MIXING_FLAGS)
    require(config, "data.train")
    result = diagnostics.diagnose(
        _models(args.models),
        config,
        n=args.n,
        seed=args.seed,
        weak=args.weak,
        lam=config.wmss.lam,
        batch_size=args.batch_size,
        chunk_size=config.wmss.loss_chunk_size,
    )
    if args.output:
        atomic_write_json(args.output, result)
    print(diagnostics.format_table(result))
    if args.output:
        print(f"\nwritten to {args.output}")


def regime_options(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss regime`."""
    add_config_arguments(parser)
    parser.add_argument("--weak", required=True, help="weak model (M0, or M_{t-1}): directory or hub id")
    parser.add_argument("--strong", required=True, help="strong model (M1, or M_t): directory or hub id")
    _data_arguments(parser)
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


def regime(args: argparse.Namespace) -> None:
    """Run `wmss regime`."""
    if args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    config = config_from_args(args, MIXING_FLAGS)
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
