"""Algorithm 1 as the stages of a run directory: `algorithm_1` is the paper's loop, `StageGraph` the one builder.

Round t uses weak = M_{t-1} and strong = M_t and produces M_{t+1}. `wmss run` builds its stages from
`algorithm_1` (adding the continued-SFT baseline of each round); `wmss compare` builds Phase 1, the entropies,
the curricula and every arm from the same `StageGraph` steps. Every stage records its inputs, a fingerprint of
the settings it depends on, its status and its outputs in `manifest.json`. Re-running the same command skips
finished stages, resumes an interrupted one from its last checkpoint, and re-runs a stage whose settings (or
upstream results) changed, together with everything downstream of it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer

from wmss.config import RunConfig, TrainConfig, require
from wmss.data.cache import source_state
from wmss.io import Inputs, check_not_input, ensure_directory
from wmss.method.settings import CurriculumSettings, JointSettings
from wmss.method.trainer import WMSSConfig
from wmss.models import check_model_path, load_tokenizer
from wmss.phases.common import load_training_data
from wmss.phases.curriculum_file import CURRICULUM_FILE, read_curriculum, run_curriculum
from wmss.phases.entropy_file import run_entropy
from wmss.phases.extract import run_extract
from wmss.phases.joint import active_dataset, final_dir, run_joint
from wmss.phases.sft import run_sft
from wmss.runlock import lock_run_directory
from wmss.stages import MANIFEST, Manifest, Stage, StageRun, depends_on, run_stages
from wmss.training import make_training_arguments, process_state

logger = logging.getLogger(__name__)

DATA_CACHE = "data_cache"  # tokenised training data, shared by the stages of a run

# Training settings that change how a stage is logged or checkpointed, not what it computes.
_BOOKKEEPING = ("logging_steps", "save_steps", "save_total_limit", "report_to")

# Builds (trainer class, extra constructor arguments) when the stage runs, so models load only then.
TrainerFactory = Callable[[], tuple[type[SFTTrainer], dict[str, Any]]]


class Artifact(NamedTuple):
    """What a stage writes (a model, an entropy file, a curriculum, a joint run), or an input (no stage)."""

    path: Path
    stage: str | None = None


@dataclass(frozen=True)
class Round:
    """Round t of Algorithm 1: M_{t-1} (weak) and M_t (strong), their curriculum, and M_{t+1}."""

    t: int
    directory: Path
    prefix: str  # of the round's stage names
    weak: Artifact
    strong: Artifact
    curriculum: Artifact
    joint: Artifact
    model: Artifact  # M_{t+1}, the extracted strong branch


class StageGraph:
    """The stages of one run directory, each added by one step of Algorithm 1 (or of a baseline).

    A step names the settings its result depends on: its settings object whole (curriculum, joint), its training
    section (minus bookkeeping), the model and data settings, and the models it reads (relative inside the run,
    so a moved run directory stays valid). `wmss run` and `wmss compare` both build through these steps.
    """

    def __init__(self, config: RunConfig, run_dir: Path) -> None:
        self.config = config
        self.run_dir = run_dir
        self.cache = run_dir / DATA_CACHE
        self.stages: list[Stage] = []
        # The data source's files (sizes, mtimes) are part of its identity: editing the file re-runs everything.
        self.data = asdict(config.data) | {"source": source_state(config.data.train)}
        self.model_settings = asdict(config.model) | {"base": None, "sft": None}

    def add(self, stage: Stage) -> str:
        """Append a stage once (a stage several seeds or arms share is named once) and return its name."""
        if all(existing.name != stage.name for existing in self.stages):
            self.stages.append(stage)
        return stage.name

    def ref(self, path: Path) -> str:
        """A model path as recorded in settings: relative inside the run, so a moved run directory stays valid."""
        return str(path.relative_to(self.run_dir)) if path.is_relative_to(self.run_dir) else str(path)

    def base_model(self) -> Artifact:
        """M0, given by the user."""
        return Artifact(Path(str(self.config.model.base)))

    def phase1(self, name: str, directory: Path, config: RunConfig | None = None) -> Artifact:
        """M1: the given `model.sft`, or Phase 1 (SFT of M0) as a stage."""
        if self.config.model.sft:
            return Artifact(Path(self.config.model.sft))
        return self.sft(name, directory, self.base_model(), config=config)

    def sft(
        self,
        name: str,
        directory: Path,
        init: Artifact,
        config: RunConfig | None = None,
        section: str = "sft",
        curriculum: Artifact | None = None,
        extra: dict[str, Any] | None = None,
        trainer: TrainerFactory | None = None,
    ) -> Artifact:
        """SFT of `init` on the data (or the curriculum's draws) with one section's settings -> directory/model."""
        config = config or self.config
        settings = {
            "init": self.ref(init.path),
            "model": self.model_settings,
            "data": self.data,
            "train": _train_settings(getattr(config, section)),
            **(extra or {}),
        }
        drawn = curriculum.path if curriculum else None

        def run(callbacks: Sequence[TrainerCallback]) -> Path:
            return _run_sft_on(config, init.path, section, drawn, directory, callbacks, self.cache, trainer)

        upstream = depends_on(init.stage, curriculum.stage if curriculum else None)
        self.add(Stage(name, directory, settings, upstream, directory / "model", run))
        return Artifact(directory / "model", name)

    def entropy(self, name: str, model: Artifact, output: Path) -> Artifact:
        """Per-sample completion entropy of one model (Eq. 3/8) -> output JSON."""
        settings = {"data": self.data, "model": self.model_settings, "scored": self.ref(model.path)}

        def run(_: Sequence[TrainerCallback]) -> Path:
            return run_entropy(self.config, str(model.path), output, self.cache)

        self.add(Stage(name, output, settings, depends_on(model.stage), output, run))
        return Artifact(output, name)

    def entropies(
        self, prefix: str, directory: Path, weak: Artifact, strong: Artifact
    ) -> tuple[Artifact, Artifact]:
        """The entropy files of the weak and the strong model, side by side in `directory`."""
        return (
            self.entropy(prefix + "entropy_weak", weak, directory / "entropy_weak.json"),
            self.entropy(prefix + "entropy_strong", strong, directory / "entropy_strong.json"),
        )

    def curriculum(
        self, name: str, directory: Path, entropies: tuple[Artifact, Artifact], settings: CurriculumSettings
    ) -> Artifact:
        """Eq. 10 weights from the weak/strong entropy files and the drawn active set -> directory."""
        weak, strong = entropies

        def run(_: Sequence[TrainerCallback]) -> Path:
            return run_curriculum(settings, weak.path, strong.path, directory)

        upstream = depends_on(weak.stage, strong.stage)
        stage = Stage(
            name,
            directory,
            settings.fingerprint(),
            upstream,
            directory / CURRICULUM_FILE,
            run,
            all_processes=False,
        )
        self.add(stage)
        return Artifact(directory, name)

    def joint(
        self,
        name: str,
        directory: Path,
        weak: Artifact,
        strong: Artifact,
        curriculum: Artifact | None,
        settings: JointSettings,
        config: RunConfig | None = None,
    ) -> Artifact:
        """Phase 3: weak + strong trained on mixed logits over the curriculum's draws -> directory/final."""
        config = config or self.config
        recorded = {
            "train": _train_settings(config.joint),
            "model": self.model_settings,
            "weak": self.ref(weak.path),
            "strong": self.ref(strong.path),
            **settings.fingerprint(),
        }
        if curriculum is None:
            recorded["data"] = self.data  # without a curriculum the data is read directly
        drawn = curriculum.path if curriculum else None

        def run(callbacks: Sequence[TrainerCallback]) -> Path:
            weak_path, strong_path = str(weak.path), str(strong.path)
            return run_joint(
                config, settings, weak_path, strong_path, directory, drawn, callbacks, self.cache
            )

        upstream = depends_on(weak.stage, strong.stage, curriculum.stage if curriculum else None)
        self.add(Stage(name, directory, recorded, upstream, final_dir(directory), run))
        return Artifact(directory, name)

    def extract(self, name: str, joint: Artifact, branch: str, output: Path) -> Artifact:
        """One branch of a joint stage as a plain HF checkpoint -> output."""

        def run(_: Sequence[TrainerCallback]) -> Path:
            return run_extract(joint.path, output, branch, self.config.model)

        self.add(
            Stage(name, output, {"branch": branch}, depends_on(joint.stage), output, run, all_processes=False)
        )
        return Artifact(output, name)


def algorithm_1(graph: StageGraph) -> Iterator[Round]:
    """Algorithm 1: Phase 1 (M0 -> M1), then for t = 1..K entropies -> weights -> draws -> joint -> extraction."""
    config, run_dir = graph.config, graph.run_dir
    weak, strong = graph.base_model(), graph.phase1("sft", run_dir / "sft")  # M0, M1
    for t in range(1, config.wmss.rounds + 1):
        directory, prefix = run_dir / f"round-{t}", f"round{t}."
        entropies = graph.entropies(prefix, directory, weak, strong)  # Eq. 3/8: H under M_{t-1} and M_t
        curriculum = graph.curriculum(  # Eq. 9-10: weights, then the active set drawn with replacement
            prefix + "curriculum", directory / "curriculum", entropies, config.wmss.curriculum
        )
        joint = graph.joint(  # Eq. 11-12: weak and strong trained on their mixed logits
            prefix + "joint", directory / "joint", weak, strong, curriculum, config.wmss.joint
        )
        model = graph.extract(prefix + "extract", joint, "strong", directory / "model")  # M_{t+1}
        yield Round(t, directory, prefix, weak, strong, curriculum, joint, model)
        weak, strong = strong, model


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


def build_stages(config: RunConfig, run_dir: Path) -> tuple[list[Stage], RunResult]:
    """The stages of `wmss run`: Algorithm 1, plus each round's extracted weak branch and continued-SFT baseline."""
    graph = StageGraph(config, run_dir)
    result = RunResult(run_dir, sft_model=Path())
    baseline: Artifact | None = None
    for r in algorithm_1(graph):
        if r.t == 1:
            result.sft_model = r.strong.path  # M1
        result.round_models.append(r.model.path)
        if config.pipeline.extract_weak:
            graph.extract(r.prefix + "extract_weak", r.joint, "weak", r.directory / "weak_model")
        if config.pipeline.sft_baseline:
            # Same active set and training settings as the joint stage: identical optimizer steps and tokens.
            baseline = graph.sft(
                r.prefix + "sft_continued",
                r.directory / "sft_continued",
                baseline or r.strong,
                section="joint",
                curriculum=r.curriculum,
            )
            result.sft_continued_model = baseline.path
    return graph.stages, result


def _train_settings(train: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in asdict(train).items() if k not in _BOOKKEEPING}


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
    """What can be checked before a run's first stage: its inputs are given, its models load, its training
    settings are valid."""
    require(config, "model.base", "data.train")
    for model in (config.model.base, config.model.sft):
        if model:
            check_model_path(model)
    # Both training stages' arguments, built up front: a bad setting (an unknown `extra` key, say) stops the run
    # before its first stage rather than when the stage that reads it starts.
    scratch = Path(tempfile.gettempdir()) / "wmss-settings-check"  # never created: arguments only name it
    for section, args_class in (("sft", SFTConfig), ("joint", WMSSConfig)):
        make_training_arguments(config, section, scratch, args_class=args_class)


def execute(
    config: RunConfig,
    run_dir: Path,
    stages: Sequence[Stage],
    callbacks: Mapping[str, Sequence[TrainerCallback]] | None = None,
    rerun: Collection[str] = (),
    on_stage: Callable[[int, Stage], None] | None = None,
) -> tuple[StageRun, Manifest]:
    """Run (or resume) the stages of a locked run directory, after refusing any that would write over an input."""
    for stage in stages:  # a stage directory is removed whole when its settings change
        check_not_input(stage.directory, run_inputs(config), replaces=True)
    if process_state().is_main_process:
        config.save(run_dir / "config.yaml")
    manifest = Manifest(run_dir / MANIFEST)
    return run_stages(stages, manifest, callbacks, on_stage=on_stage, rerun=rerun), manifest


def run_pipeline(
    config: RunConfig,
    run_dir: str | Path | None = None,
    callbacks: Mapping[str, Sequence[TrainerCallback]] | None = None,
    rerun: Collection[str] = (),
) -> RunResult:
    """Execute (or resume) Algorithm 1 in `run_dir` (default `pipeline.output_dir`)."""
    check_run(config)
    run_dir = ensure_directory(run_dir or config.pipeline.output_dir, run_inputs(config))
    with lock_run_directory(run_dir):
        stages, result = build_stages(config, run_dir)
        outcome, manifest = execute(config, run_dir, stages, callbacks, rerun)
        result.executed, result.skipped = outcome.executed, outcome.skipped
        manifest.data["result"] = {
            "final_model": str(result.final_model),
            "sft_model": str(result.sft_model),
            "sft_continued_model": str(result.sft_continued_model) if result.sft_continued_model else None,
        }
        manifest.save()
    return result
