"""Algorithm 1 end to end: SFT (M0 -> M1), then K rounds of entropy -> curriculum -> joint -> extract.

Round t uses weak = M_{t-1} and strong = M_t and produces M_{t+1}. Every stage records its inputs, a fingerprint
of the settings it depends on, its status and its outputs in `manifest.json`. Re-running the same command skips
finished stages, resumes an interrupted one from its last checkpoint, and re-runs a stage whose settings (or
upstream results) changed, together with everything downstream of it.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from trl import SFTTrainer

from wmss.cli_args import add_config_arguments, config_from_args
from wmss.config import RunConfig, TrainConfig, require
from wmss.data.cache import source_state
from wmss.io import Inputs, check_not_input, ensure_directory
from wmss.method.curriculum import FINGERPRINT_NAMES
from wmss.models import check_model_path, load_tokenizer
from wmss.phases.common import load_training_data
from wmss.phases.curriculum import CURRICULUM_FILE, read_curriculum, run_curriculum
from wmss.phases.entropy import run_entropy
from wmss.phases.extract import run_extract
from wmss.phases.joint import active_dataset, final_dir, run_joint
from wmss.phases.sft import run_sft
from wmss.runlock import lock_run_directory
from wmss.stages import MANIFEST, Manifest, Stage, depends_on, run_stages
from wmss.training import check_training_settings, process_state

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


def _model_settings(config: RunConfig) -> dict[str, Any]:
    return asdict(config.model) | {"base": None, "sft": None}


# Builds (trainer class, extra constructor arguments) when the stage runs, so models load only then.
TrainerFactory = Callable[[], tuple[type[SFTTrainer], dict[str, Any]]]

# The method's settings a joint stage's result depends on (the curriculum's are upstream of it).
_JOINT_KEYS = ("lam", "weak_trainable", "weak_control")


class Steps:
    """Builds the stages of a run directory: one method per step of Algorithm 1 (and per baseline)."""

    def __init__(self, config: RunConfig, run_dir: Path) -> None:
        self.config = config
        self.run_dir = run_dir
        self.cache = run_dir / DATA_CACHE
        # The data source's files (sizes, mtimes) are part of its identity: editing the file re-runs everything.
        self.data = asdict(config.data) | {"source": source_state(config.data.train)}
        self.model_settings = _model_settings(config)

    def ref(self, path: Path) -> str:
        """A model path as recorded in settings: relative inside the run, so a moved run directory stays valid."""
        return str(path.relative_to(self.run_dir)) if path.is_relative_to(self.run_dir) else str(path)

    def sft(
        self,
        name: str,
        directory: Path,
        init: Path,
        init_stage: str | None,
        config: RunConfig | None = None,
        section: str = "sft",
        curriculum: tuple[Path, str] | None = None,
        extra: dict[str, Any] | None = None,
        trainer: TrainerFactory | None = None,
    ) -> Stage:
        """SFT of `init` on the data (or the curriculum's draws) with one section's settings -> directory/model."""
        config = config or self.config
        cur_dir, cur_stage = curriculum if curriculum else (None, None)
        settings = {
            "init": self.ref(init),
            "model": self.model_settings,
            "data": self.data,
            "train": _train_settings(getattr(config, section)),
            **(extra or {}),
        }
        return Stage(
            name,
            directory,
            settings,
            depends_on(init_stage, cur_stage),
            directory / "model",
            lambda cb: _run_sft_on(config, init, section, cur_dir, directory, cb, self.cache, trainer),
        )

    def entropy(self, name: str, model: Path, model_stage: str | None, output: Path) -> Stage:
        """Per-sample completion entropy of one model (Eq. 3/8) -> output JSON."""
        return Stage(
            name,
            output,
            {"data": self.data, "model": self.model_settings, "scored": self.ref(model)},
            depends_on(model_stage),
            output,
            lambda cb: run_entropy(self.config, str(model), output, self.cache),
        )

    def curriculum(
        self,
        name: str,
        directory: Path,
        entropies: tuple[Path, Path],
        upstream: list[str],
        config: RunConfig,
    ) -> Stage:
        """Eq. 10 weights from the weak/strong entropy files and the drawn active set -> directory."""
        w = config.wmss
        settings = {
            k: getattr(w, k) for k in ("alpha", "beta", "gamma", "sample_multiplier", "weighting", "seed")
        }
        settings["weighting"] = FINGERPRINT_NAMES.get(w.weighting, w.weighting)
        return Stage(
            name,
            directory,
            settings,
            upstream,
            directory / CURRICULUM_FILE,
            lambda cb: run_curriculum(config, entropies[0], entropies[1], directory),
            all_processes=False,
        )

    def joint(
        self,
        name: str,
        directory: Path,
        weak: tuple[Path, str | None],
        strong: tuple[Path, str | None],
        curriculum: tuple[Path, str] | None,
        config: RunConfig | None = None,
    ) -> Stage:
        """Phase 3: weak + strong trained on mixed logits over the curriculum's draws -> directory/final."""
        config = config or self.config
        cur_dir, cur_stage = curriculum if curriculum else (None, None)
        w = asdict(config.wmss)
        settings = {
            "train": _train_settings(config.joint),
            "model": self.model_settings,
            "weak": self.ref(weak[0]),
            "strong": self.ref(strong[0]),
            **{key: w[key] for key in _JOINT_KEYS},
        }
        if cur_dir is None:
            settings["data"] = self.data  # without a curriculum the data is read directly
        return Stage(
            name,
            directory,
            settings,
            depends_on(weak[1], strong[1], cur_stage),
            final_dir(directory),
            lambda cb: run_joint(
                config, str(weak[0]), str(strong[0]), directory, cur_dir, callbacks=cb, data_cache=self.cache
            ),
        )

    def extract(self, name: str, joint_dir: Path, joint_stage: str, branch: str, output: Path) -> Stage:
        """One branch of a joint stage as a plain HF checkpoint -> output."""
        return Stage(
            name,
            output,
            {"branch": branch},
            [joint_stage],
            output,
            lambda cb: run_extract(joint_dir, output, branch, self.config.model),
            all_processes=False,
        )


def _run_sft_on(
    config: RunConfig,
    init: Path,
    section: str,
    curriculum_dir: Path | None,
    output_dir: Path,
    callbacks: Sequence[TrainerCallback],
    data_cache: Path,
    trainer: TrainerFactory | None = None,
) -> Path:
    trainer_class, trainer_kwargs = trainer() if trainer else (SFTTrainer, {})
    dataset = None
    if curriculum_dir is not None:
        data = load_training_data(config, load_tokenizer(str(init), config.model), data_cache)
        dataset = active_dataset(data, read_curriculum(curriculum_dir))
    return run_sft(
        config,
        str(init),
        output_dir,
        train_section=section,
        dataset=dataset,
        callbacks=callbacks,
        data_cache=data_cache,
        trainer_class=trainer_class,
        trainer_kwargs=trainer_kwargs,
    )


def build_stages(config: RunConfig, run_dir: Path) -> tuple[list[Stage], dict[str, Path]]:
    """The stage graph of Algorithm 1 for this config, and the model path each stage produces."""
    steps = Steps(config, run_dir)
    stages: list[Stage] = []
    models: dict[str, Path] = {}
    if config.model.sft:
        m1, m1_stage = Path(config.model.sft), None
    else:
        m1, m1_stage = run_dir / "sft" / "model", "sft"
        stages.append(steps.sft("sft", run_dir / "sft", Path(str(config.model.base)), None))
    models["sft"] = m1
    weak, strong, baseline = (Path(str(config.model.base)), None), (m1, m1_stage), (m1, m1_stage)
    for t in range(1, config.wmss.rounds + 1):
        rd, prefix = run_dir / f"round-{t}", f"round{t}."
        entropies = (rd / "entropy_weak.json", rd / "entropy_strong.json")
        curriculum = (rd / "curriculum", prefix + "curriculum")
        stages += [
            steps.entropy(prefix + "entropy_weak", weak[0], weak[1], entropies[0]),
            steps.entropy(prefix + "entropy_strong", strong[0], strong[1], entropies[1]),
            steps.curriculum(
                curriculum[1],
                curriculum[0],
                entropies,
                [prefix + "entropy_weak", prefix + "entropy_strong"],
                config,
            ),
            steps.joint(prefix + "joint", rd / "joint", weak, strong, curriculum),
            steps.extract(prefix + "extract", rd / "joint", prefix + "joint", "strong", rd / "model"),
        ]
        if config.pipeline.extract_weak:
            stages.append(
                steps.extract(
                    prefix + "extract_weak", rd / "joint", prefix + "joint", "weak", rd / "weak_model"
                )
            )
        if config.pipeline.sft_baseline:
            # Same active set and training settings as the joint stage: identical optimizer steps and tokens.
            stages.append(
                steps.sft(
                    prefix + "sft_continued",
                    rd / "sft_continued",
                    *baseline,
                    section="joint",
                    curriculum=curriculum,
                )
            )
            baseline = (rd / "sft_continued" / "model", prefix + "sft_continued")
            models[prefix + "sft_continued"] = baseline[0]
        models[prefix + "model"] = rd / "model"
        weak, strong = strong, (rd / "model", prefix + "extract")
    return stages, models


def run_inputs(config: RunConfig) -> Inputs:
    """What a run reads (by config key): a run directory may hold them, but no stage may write over them."""
    c, m = config.compare, config.model
    keys = {"model.base": m.base, "model.sft": m.sft, "model.tokenizer": m.tokenizer}
    return keys | {
        "data.train": config.data.train,
        "compare.eval_file": c.eval_file,
        "compare.data_dir": c.data_dir,
    }


def check_run(config: RunConfig) -> None:
    """What can be checked before a run's first stage: its models load and its training settings are valid."""
    for model in (config.model.base, config.model.sft):
        if model:
            check_model_path(model)
    check_training_settings(config)


def check_stage_outputs(stages: Sequence[Stage], inputs: Inputs) -> None:
    """Refuse a run whose stage directories (each removed whole when its settings change) hold an input."""
    for stage in stages:
        check_not_input(stage.directory, inputs, replaces=True)


def run_pipeline(
    config: RunConfig,
    run_dir: str | Path | None = None,
    callbacks: Mapping[str, Sequence[TrainerCallback]] | None = None,
    rerun: Collection[str] = (),
) -> RunResult:
    """Execute (or resume) Algorithm 1 in `run_dir` (default `pipeline.output_dir`)."""
    require(config, "model.base", "data.train")
    check_run(config)
    run_dir = ensure_directory(run_dir or config.pipeline.output_dir, run_inputs(config))
    with lock_run_directory(run_dir):
        stages, models = build_stages(config, run_dir)
        check_stage_outputs(stages, run_inputs(config))
        if process_state().is_main_process:
            config.save(run_dir / "config.yaml")
        manifest = Manifest(run_dir / MANIFEST)
        outcome = run_stages(stages, manifest, callbacks, rerun=rerun)
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
    add_rerun_argument(parser)


def add_rerun_argument(parser: argparse.ArgumentParser) -> None:
    """`--rerun STAGE` (repeatable), shared by `wmss run` and `wmss compare`."""
    parser.add_argument(
        "--rerun",
        metavar="STAGE",
        action="append",
        default=[],
        help="run this finished stage again from scratch (e.g. round1.entropy_weak), and every later stage its "
        "new result changes; repeatable",
    )


def run_cli(args: argparse.Namespace) -> None:
    """Run `wmss run`."""
    config = config_from_args(args, SHORTCUTS)
    result = run_pipeline(config, rerun=args.rerun)
    print(f"run directory: {result.run_dir} (manifest: {result.run_dir / MANIFEST})")
    print(f"final WMSS model: {result.final_model}")
    if result.sft_continued_model:
        print(f"continued-SFT baseline: {result.sft_continued_model}")
