"""What a comparison trains and evaluates: the plan `wmss compare` builds and its report reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wmss.compare.arms import Arm
from wmss.config import RunConfig
from wmss.pipeline import Artifact
from wmss.stages import Stage


@dataclass
class SeedPlan:
    """What one seed trains and evaluates: the model of every evaluated row, and each arm's training stages."""

    seed: int
    config: RunConfig
    models: dict[str, Artifact] = field(default_factory=dict)  # row -> (model dir, its stage)
    arms: dict[str, Arm] = field(default_factory=dict)
    arm_stages: dict[str, list[str]] = field(default_factory=dict)  # arm -> training stage names
    trained_in: dict[str, Path] = field(default_factory=dict)  # arm -> its training stage's directory
    curricula: dict[str, Path] = field(default_factory=dict)  # curriculum stage -> directory
    entropies: tuple[Path, Path] | None = None


@dataclass
class ComparePlan:
    """The whole comparison: the stages in order, and what each seed produces."""

    run_dir: Path
    stages: list[Stage] = field(default_factory=list)
    seeds: list[SeedPlan] = field(default_factory=list)
    evals: dict[tuple[int, str], Path] = field(default_factory=dict)  # (seed, row) -> evaluation file
    diagnostics: dict[int, Path] = field(default_factory=dict)
    premise_tokens: dict[int, Path] = field(default_factory=dict)  # seed -> token-level premises of M0/M1
    sampling: dict[str, list[Path]] = field(default_factory=dict)  # row -> sampled metrics, one file per seed
    branches: dict[str, list[Path]] = field(default_factory=dict)  # joint arm -> branch results per seed
    arm_order: list[str] = field(default_factory=list)
