"""The methods ("arms") `wmss compare` trains from the same M0, M1, data, curriculum and seed.

Each arm is one named recipe: which model it starts from, which data it trains on (the curriculum's draws or the
plain data set), how it trains (its `Method` builds its stages: SFT, the WMSS joint stage and its extraction, or
UNDIAL), and how its settings differ from the joint stage's. Budgets follow the paper: every continued arm gets
the joint stage's epochs and schedule; `sft_total` gets Phase 1 + Phase 3 epochs from M0 (Table 1: "a total of
2 epochs" for every method).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wmss.compare.undial import UndialTrainer
from wmss.config import CompareConfig, RunConfig, TrainConfig, with_values
from wmss.errors import ConfigError
from wmss.models import load_causal_lm
from wmss.pipeline import Artifact, StageGraph

WEAK_PREFIX = "weak="  # arm `weak=<path>`: WMSS with another weak model (e.g. an intermediate checkpoint)
M0, M1 = "m0", "m1"  # evaluation rows of the base model and the Phase 1 model, and where an arm starts


@dataclass(frozen=True)
class ArmStart:
    """Where one arm of one seed builds its stages, and what it trains from."""

    graph: StageGraph
    stage: str  # the arm's stage name
    directory: Path  # the arm's directory in the run
    m0: Artifact
    m1: Artifact
    curriculum: Artifact | None  # the curriculum's draws, or None for an arm on the plain data


@dataclass(frozen=True)
class ArmStages:
    """What an arm's stages produce: the model that is evaluated, and where its training stage logs."""

    model: Artifact
    trained_in: Path  # the training stage's directory (summary.json, metrics.jsonl)
    training: list[str]  # the arm's training stages
    joint: Artifact | None = None  # a joint arm's joint stage, whose branches can be evaluated apart


@dataclass(frozen=True)
class Method:
    """How an arm trains: its name (recorded in stage settings and the report) and how it builds its stages."""

    name: str
    build: Callable[[Arm, ArmStart], ArmStages]


def _sft_stages(
    arm: Arm, at: ArmStart, trainer: Any = None, extra: dict[str, Any] | None = None
) -> ArmStages:
    init = at.m0 if arm.spec.init == M0 else at.m1
    model = at.graph.sft(
        at.stage,
        at.directory,
        init,
        config=arm.config,
        section=arm.train_section,
        curriculum=at.curriculum,
        extra={"arm": arm.name, "method": arm.spec.method.name, **(extra or {})},
        trainer=trainer,
    )
    return ArmStages(model, at.directory, [at.stage])


def _undial_stages(arm: Arm, at: ArmStart) -> ArmStages:
    c, init = arm.config.compare, at.m0 if arm.spec.init == M0 else at.m1

    def trainer() -> tuple[type, dict[str, Any]]:
        # The teacher is a frozen copy of the model UNDIAL starts from.
        teacher = load_causal_lm(str(init.path), arm.config.model)
        return UndialTrainer, {"teacher": teacher, "beta": c.undial_beta, "noise": c.undial_noise}

    return _sft_stages(arm, at, trainer, {"beta": c.undial_beta, "noise": c.undial_noise})


def _joint_stages(arm: Arm, at: ArmStart) -> ArmStages:
    # The same two steps as a round of Algorithm 1: joint training, then the strong branch extracted.
    weak = Artifact(Path(arm.weak)) if arm.weak else at.m0
    settings = arm.config.wmss.joint
    joint = at.graph.joint(at.stage, at.directory / "joint", weak, at.m1, at.curriculum, settings, arm.config)
    model = at.graph.extract(at.stage + ".extract", joint, "strong", at.directory / "model")
    return ArmStages(model, joint.path, [at.stage, model.stage], joint)


SFT = Method("sft", _sft_stages)  # plain SFT (TRL's SFTTrainer) with the arm's settings
JOINT = Method("joint", _joint_stages)  # WMSS joint training (WMSSTrainer), then extraction
UNDIAL = Method("undial", _undial_stages)  # self-distillation towards a frozen copy of the start model


@dataclass(frozen=True)
class ArmSpec:
    """One method: where it starts, what it trains on, how (its stages) and with which settings."""

    summary: str  # one line for the README and the report
    source: str  # where the arm comes from (paper table or reviewer control)
    method: Method
    init: str = M1  # m0 | m1: the model the trained branch starts from
    data: str = "curriculum"  # curriculum (the active set Phase 2 drew) | plain (every record once per epoch)
    # Model forward and backward passes per optimizer step, in units of one model over one batch.
    passes: tuple[int, int] = (1, 1)
    derive: Callable[[RunConfig], dict[str, Any]] = lambda config: {}  # dotted keys the arm changes


def _scaled_budget(train: TrainConfig, section: str, factor: float) -> dict[str, Any]:
    if train.max_steps > 0:
        return {f"{section}.max_steps": round(train.max_steps * factor)}
    return {f"{section}.num_train_epochs": train.num_train_epochs * factor}


def _total_budget(config: RunConfig) -> dict[str, Any]:
    sft, joint = config.sft, config.joint
    if (sft.max_steps > 0) != (joint.max_steps > 0):
        raise ConfigError(
            "arm 'sft_total' needs 'sft' and 'joint' budgets in the same unit: set max_steps in both or in neither"
        )
    if sft.max_steps > 0:
        return {"sft.max_steps": sft.max_steps + joint.max_steps}
    return {"sft.num_train_epochs": sft.num_train_epochs + joint.num_train_epochs}


ARMS: dict[str, ArmSpec] = {
    "sft_continued": ArmSpec(
        "M1 + plain SFT on the curriculum's draws, the joint stage's exact steps and tokens",
        "paper Table 1 (SFT); the pipeline's baseline",
        SFT,
    ),
    "sft_continued_plain": ArmSpec(
        "M1 + plain SFT on the plain data (no curriculum), the joint stage's epochs",
        "ablation (curriculum off)",
        SFT,
        data="plain",
    ),
    "sft_total": ArmSpec(
        "one SFT run from M0 for Phase 1 + Phase 3 epochs",
        'paper Table 1: "a total of 2 epochs" for every method',
        SFT,
        init=M0,
        data="plain",
        derive=_total_budget,
    ),
    "wmss": ArmSpec(
        "curriculum + joint training with the weak model co-trained (the method)",
        "paper Algorithm 1",
        JOINT,
        passes=(2, 2),
        derive=lambda config: {"wmss.weak_trainable": True, "wmss.weak_control": "none"},
    ),
    "wmss_frozen": ArmSpec(
        "curriculum + joint training with the weak model frozen",
        "paper Section 3 (weak model fixed) / reviewer control",
        JOINT,
        passes=(2, 1),
        derive=lambda config: {"wmss.weak_trainable": False, "wmss.weak_control": "none"},
    ),
    "joint_plain": ArmSpec(
        "joint training on the plain data (no curriculum)",
        'paper Table 3: "+JTWS without CEDA"',
        JOINT,
        data="plain",
        passes=(2, 2),
        derive=lambda config: {"wmss.weak_control": "none"},
    ),
    "neftune": ArmSpec(
        "continued SFT with NEFTune embedding noise (alpha = compare.neftune_alpha, paper 5)",
        "paper Table 1 (NEFTune)",
        SFT,
        derive=lambda config: {"joint.neftune_noise_alpha": config.compare.neftune_alpha},
    ),
    "undial": ArmSpec(
        "self-distillation towards a frozen copy of M1 with the target logit lowered by beta (Dong et al. 2024)",
        "paper Table 1 (UNDIAL)",
        UNDIAL,
        passes=(2, 1),
    ),
    "label_smoothing": ArmSpec(
        "continued SFT with label smoothing (compare.label_smoothing, default 0.1)",
        "reviewer control (another way to keep non-target gradients alive)",
        SFT,
        derive=lambda config: {
            "joint.extra": {**config.joint.extra, "label_smoothing_factor": config.compare.label_smoothing}
        },
    ),
    "sft_matched_compute": ArmSpec(
        "continued SFT with as many forward+backward passes as co-trained joint training (2x its steps)",
        "reviewer control (matched compute)",
        SFT,
        derive=lambda config: _scaled_budget(config.joint, "joint", 2.0),
    ),
    "sft_high_lr": ArmSpec(
        "continued SFT at compare.high_lr_factor x the joint learning rate",
        "reviewer control (is WMSS a larger effective step?)",
        SFT,
        derive=lambda config: {
            "joint.learning_rate": config.joint.learning_rate * config.compare.high_lr_factor
        },
    ),
    "control_uniform": ArmSpec(
        "joint training with constant weak logits: softmax(lam * z_strong), i.e. SFT at temperature 1/lam",
        "reviewer control (structure-free weak logits)",
        JOINT,
        derive=lambda config: {"wmss.weak_control": "uniform"},
    ),
    "control_shuffled": ArmSpec(
        "joint training with the weak model's logits permuted over the vocabulary per position",
        "reviewer control (same entropy, no structure)",
        JOINT,
        passes=(2, 2),
        derive=lambda config: {"wmss.weak_control": "shuffled"},
    ),
}


@dataclass(frozen=True)
class Arm:
    """One arm as it runs: its name (with sweep point), recipe, settings and weak model."""

    name: str
    spec: ArmSpec
    config: RunConfig
    weak: str | None = None  # a weak model other than M0 (arm `weak=<path>`)
    sweep: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def train_section(self) -> str:
        """The config section whose training settings the arm uses."""
        return "sft" if self.spec.init == M0 else "joint"


def _weak_arm(path: str) -> ArmSpec:
    return ArmSpec(
        f"WMSS with weak model {path} instead of M0",
        "paper Section 5 (choice of the weak model)",
        JOINT,
        passes=(2, 2),
        derive=lambda config: {"wmss.weak_control": "none"},
    )


def check_arms(c: CompareConfig) -> None:
    """Refuse unknown arms, then a reference that is not compared (the report compares every row with it)."""
    for name in c.arms:  # unknown arms first: a typo there is the error
        arm_spec(name)
    rows = [*c.arms, *([M0, M1] if c.evaluate_base_models else [])]
    swept = c.sweeps and any(c.reference.startswith(f"{arm}[") for arm in c.sweep_arms)
    if c.reference not in rows and not swept:
        raise ConfigError(
            f"'compare.reference' is {c.reference!r}, which is not among the arms compared "
            f"({', '.join(rows)}); add it to 'compare.arms' (--arms) or choose one of them"
        )


def arm_spec(name: str) -> ArmSpec:
    """The recipe of an arm name; ConfigError naming the valid names when unknown."""
    if name.startswith(WEAK_PREFIX):
        path = name[len(WEAK_PREFIX) :]
        if not Path(path).expanduser().exists():
            raise ConfigError(f"'compare.arms': weak model of arm {name!r} does not exist: {path}")
        return _weak_arm(path)
    if name not in ARMS:
        raise ConfigError(
            f"'compare.arms': unknown arm {name!r}; known: {', '.join(ARMS)}, or weak=<model path>"
        )
    return ARMS[name]


def make_arm(name: str, config: RunConfig, sweep: dict[str, Any] | None = None) -> Arm:
    """An arm with its derived settings; `sweep` (dotted keys) is applied before the arm's own changes."""
    spec = arm_spec(name)
    sweep = dict(sweep or {})
    base = with_values(config, sweep, f"sweep point {sweep}") if sweep else config
    derived = with_values(base, spec.derive(base), f"arm {name!r}")
    weak = name[len(WEAK_PREFIX) :] if name.startswith(WEAK_PREFIX) else None
    label = name if not sweep else f"{name}[{','.join(f'{k}={v}' for k, v in sweep.items())}]"
    return Arm(label, spec, derived, weak, sweep)


def stage_slug(name: str) -> str:
    """A directory-safe form of an arm name (sweep points and weak paths included)."""
    return "".join(c if c.isalnum() or c in "._-=" else "_" for c in name).strip("_")
