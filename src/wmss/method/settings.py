"""The method's settings as they travel whole from a config to the code that uses them, each with its valid values.

`CurriculumSettings` is what a curriculum computes (Phase 2, Eq. 9-10), `JointSettings` what a joint stage
computes (Phase 3, Eq. 11-12). `RunConfig`'s `wmss:` section holds both side by side under the same names, and
a stage's fingerprint is derived from its settings object, so a new field re-runs the stage it belongs to.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from wmss import defaults
from wmss.validation import setting

# Controls of the joint stage: "uniform" replaces the weak logits by a constant (softmax(lam * z_strong)),
# "shuffled" permutes them over the vocabulary per position (same entropy, no structure).
WEAK_CONTROLS = ("none", "uniform", "shuffled")
# Runs made before a weighting was renamed hashed its old name into their stage fingerprints; hashing that name
# keeps them resuming.
FINGERPRINT_NAMES = {"authors_code": "paper"}


@dataclass
class CurriculumSettings:
    """Eq. 10's reading and coefficients, and the draw of the active set."""

    alpha: float = setting(defaults.ALPHA, valid=">= 0")  # the weak model's entropy (base difficulty)
    beta: float = setting(defaults.BETA, valid=">= 0")  # samples whose entropy the strong model reduced
    gamma: float = setting(defaults.GAMMA, valid=">= 0")  # samples whose entropy rose
    sample_multiplier: float = setting(1.0, valid="> 0")  # draws = round(multiplier · n), with replacement
    # authors_code (Eq. 10, each term normalised by its own sum, as the authors' code) | paper_eq10 (Eq. 10 as
    # printed: one normalisation over samples) | brownboost. The old name "paper" means authors_code.
    weighting: str = "authors_code"
    seed: int = setting(42, valid=">= 0")  # of the draw

    def fingerprint(self) -> dict[str, Any]:
        """The settings as a stage fingerprint hashes them."""
        return dataclasses.asdict(self) | {"weighting": FINGERPRINT_NAMES.get(self.weighting, self.weighting)}


@dataclass
class JointSettings:
    """Eq. 11-12 as a joint stage trains them, named as `JointModel` takes them."""

    # λ in z_mix = λ·z_strong + (1-λ)·z_weak; at 0 the strong model would get no gradient at all.
    lam: float = setting(defaults.LAMBDA, valid="(0, 1]")
    weak_trainable: bool = True  # co-train the weak model (paper) or freeze it
    weak_control: str = setting("none", choices=WEAK_CONTROLS)  # the weak-logit controls of `wmss compare`

    def fingerprint(self) -> dict[str, Any]:
        """The settings as a stage fingerprint hashes them."""
        return dataclasses.asdict(self)
