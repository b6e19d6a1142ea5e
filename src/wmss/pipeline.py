"""Algorithm 1 end to end: SFT (M0 -> M1), then K rounds of entropy -> curriculum -> joint -> extract.

Round t uses weak = M_{t-1} and strong = M_t and produces M_{t+1}. Every stage records its inputs, a fingerprint
of the settings it depends on, its status and its outputs in `manifest.json`. Re-running the same command skips
finished stages, resumes an interrupted one from its last checkpoint, and re-runs a stage whose settings (or
upstream results) changed, together with everything downstream of it.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from wmss.cli_args import add_config_arguments, config_from_args
from wmss.config import TrainConfig, WMSSConfig, require
from wmss.data.cache import source_state
from wmss.models import load_tokenizer
from wmss.phases.common import load_training_data
from wmss.phases.curriculum import CURRICULUM_FILE, read_curriculum, run_curriculum
from wmss.phases.entropy import run_entropy
from wmss.phases.extract import run_extract
from wmss.phases.joint import active_dataset, run_joint
from wmss.phases.sft import run_sft
from wmss.stages import MANIFEST, Manifest, Stage, depends_on, run_stages
from wmss.training import process_state

logger = logging.getLogger(__name__)

DATA_CACHE = "data_cache"  # tokenised training data, shared by the stages of a run


@dataclass
class RunResult:
    """Paths a finished run produced."""

    run_dir: Path
    sft_model: Path
    round_models: list[Path] = field(default_factory=list)
    sft_continued_model: Path | None = None
    executed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def final_model(self) -> Path:
        """The strong model after the last round (M_{K+1})."""
        return self.round_models[-1]


# Training settings that change how a stage is logged or checkpointed, not what it computes.
_BOOKKEEPING = ("logging_steps", "save_steps", "save_total_limit", "report_to")


def _train_settings(train: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in asdict(train).items() if k not in _BOOKKEEPING}


def _model_settings(config: WMSSConfig) -> dict[str, Any]:
    return asdict(config.model) | {"base": None, "sft": None}


def build_stages(config: WMSSConfig, run_dir: Path) -> tuple[list[Stage], dict[str, Path]]:
    """The stage graph of Algorithm 1 for this config, and the model path each stage produces."""
    # The data source's files (sizes, mtimes) are part of its identity: editing the file re-runs everything.
    w, data = config.wmss, asdict(config.data) | {"source": source_state(config.data.train)}

    def ref(path: Path) -> str:
        # Models made inside the run are named relative to it, so a moved run directory stays valid.
        return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)

    stages: list[Stage] = []
    models: dict[str, Path] = {}
    cache = run_dir / DATA_CACHE
    model_settings = _model_settings(config)

    sft_dir = run_dir / "sft"
    if config.model.sft:
        m1, m1_stage = Path(config.model.sft), None
    else:
        m1, m1_stage = sft_dir / "model", "sft"
        stages.append(
            Stage(
                "sft",
                sft_dir,
                {
                    "base": config.model.base,
                    "model": model_settings,
                    "data": data,
                    "train": _train_settings(config.sft),
                },
                [],
                m1,
                lambda cb: run_sft(config, str(config.model.base), sft_dir, callbacks=cb, data_cache=cache),
            )
        )
    models["sft"] = m1
    weak, weak_stage = Path(str(config.model.base)), None
    strong, strong_stage = m1, m1_stage
    baseline, baseline_stage = m1, m1_stage
    for t in range(1, w.rounds + 1):
        rd = run_dir / f"round-{t}"
        prefix = f"round{t}."
        entropy_settings = {"data": data, "model": model_settings}
        ent_w, ent_s, cur_dir, joint_dir = (
            rd / "entropy_weak.json",
            rd / "entropy_strong.json",
            rd / "curriculum",
            rd / "joint",
        )
        cur_settings = {
            k: getattr(w, k) for k in ("alpha", "beta", "gamma", "sample_multiplier", "weighting", "seed")
        }
        joint_settings = {
            "train": _train_settings(config.joint),
            "lam": w.lam,
            "weak_trainable": w.weak_trainable,
            "model": model_settings,
        }
        stages += [
            *(
                Stage(
                    f"{prefix}entropy_{role}",
                    output,
                    entropy_settings | {role: ref(model)},
                    depends_on(model_stage),
                    output,
                    lambda cb, model=model, output=output: run_entropy(config, str(model), output, cache),
                )
                for role, model, model_stage, output in (
                    ("weak", weak, weak_stage, ent_w),
                    ("strong", strong, strong_stage, ent_s),
                )
            ),
            Stage(
                prefix + "curriculum",
                cur_dir,
                cur_settings,
                [prefix + "entropy_weak", prefix + "entropy_strong"],
                cur_dir / CURRICULUM_FILE,
                lambda cb, e=(ent_w, ent_s), d=cur_dir: run_curriculum(config, e[0], e[1], d),
                all_processes=False,
            ),
            Stage(
                prefix + "joint",
                joint_dir,
                joint_settings | {"weak": ref(weak), "strong": ref(strong)},
                depends_on(weak_stage, strong_stage, prefix + "curriculum"),
                joint_dir / "final" / "strong",
                lambda cb, a=(weak, strong, joint_dir, cur_dir): run_joint(
                    config, str(a[0]), str(a[1]), a[2], a[3], callbacks=cb, data_cache=cache
                ),
            ),
            *(
                Stage(
                    prefix + ("extract" if branch == "strong" else "extract_weak"),
                    output,
                    {"branch": branch},
                    [prefix + "joint"],
                    output,
                    lambda cb, j=joint_dir, b=branch, o=output: run_extract(j, o, b, config.model),
                    all_processes=False,
                )
                for branch, output in (("strong", rd / "model"), ("weak", rd / "weak_model"))
                if branch == "strong" or config.pipeline.extract_weak
            ),
        ]
        if config.pipeline.sft_baseline:
            # Same active set and training settings as the joint stage: identical optimizer steps and tokens.
            sc_dir = rd / "sft_continued"
            stages.append(
                Stage(
                    prefix + "sft_continued",
                    sc_dir,
                    {"train": _train_settings(config.joint), "model": model_settings, "init": ref(baseline)},
                    depends_on(baseline_stage, prefix + "curriculum"),
                    sc_dir / "model",
                    lambda cb, b=baseline, c=cur_dir, d=sc_dir: _run_sft_continued(
                        config, b, c, d, cb, cache
                    ),
                )
            )
            baseline, baseline_stage = sc_dir / "model", prefix + "sft_continued"
            models[prefix + "sft_continued"] = baseline
        models[prefix + "model"] = rd / "model"
        weak, weak_stage = strong, strong_stage
        strong, strong_stage = rd / "model", prefix + "extract"
    return stages, models


def _run_sft_continued(
    config: WMSSConfig,
    init: Path,
    curriculum_dir: Path,
    output_dir: Path,
    callbacks: Sequence[TrainerCallback],
    data_cache: Path,
) -> Path:
    data = load_training_data(config, load_tokenizer(str(init), config.model), data_cache)
    dataset = active_dataset(data, read_curriculum(curriculum_dir))
    return run_sft(config, str(init), output_dir, train_section="joint", dataset=dataset, callbacks=callbacks)


def run_pipeline(
    config: WMSSConfig,
    run_dir: str | Path | None = None,
    callbacks: Mapping[str, Sequence[TrainerCallback]] | None = None,
) -> RunResult:
    """Execute (or resume) Algorithm 1 in `run_dir` (default `pipeline.output_dir`)."""
    require(config, "model.base", "data.train")
    run_dir = Path(run_dir or config.pipeline.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if process_state().is_main_process:
        config.save(run_dir / "config.yaml")
    stages, models = build_stages(config, run_dir)
    manifest = Manifest(run_dir / MANIFEST)
    outcome = run_stages(stages, manifest, callbacks)
    result = RunResult(
        run_dir=run_dir, sft_model=models["sft"], executed=outcome.executed, skipped=outcome.skipped
    )
    result.round_models = [models[f"round{t}.model"] for t in range(1, config.wmss.rounds + 1)]
    if config.pipeline.sft_baseline:
        result.sft_continued_model = models[f"round{config.wmss.rounds}.sft_continued"]
    manifest.data["result"] = {
        "final_model": str(result.final_model),
        "sft_model": str(result.sft_model),
        "sft_continued_model": str(result.sft_continued_model) if result.sft_continued_model else None,
    }
    manifest.save()
    return result


SHORTCUTS = {
    "model": "model.base",
    "sft_model": "model.sft",
    "data": "data.train",
    "output": "pipeline.output_dir",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss run`."""
    add_config_arguments(parser)
    parser.add_argument("--model", help="base model M0: local directory or hub id (model.base)")
    parser.add_argument(
        "--sft-model", help="an existing M1 to start from instead of running Phase 1 (model.sft)"
    )
    parser.add_argument("--data", help="training data: JSONL file or HF dataset name (data.train)")
    parser.add_argument("--output", help="run directory (pipeline.output_dir)")


def run_cli(args: argparse.Namespace) -> None:
    """Run `wmss run`."""
    config = config_from_args(args, SHORTCUTS)
    result = run_pipeline(config)
    print(f"run directory: {result.run_dir} (manifest: {result.run_dir / MANIFEST})")
    print(f"final WMSS model: {result.final_model}")
    if result.sft_continued_model:
        print(f"continued-SFT baseline: {result.sft_continued_model}")
