"""The premises of the paper's claim, as gates with thresholds fixed in code: does a run test the claim at all?

WMSS is argued for a specific regime (Sections 3-5): the strong model M1 is *saturated* (its SFT has stalled, so
plain cross-entropy gradients vanish), and the weak checkpoint is the *softer* model, so that mixing its logits
into the strong model's lowers the target probability and keeps the strong model's gradient alive. A result
measured outside that regime answers another question; the report says so before its verdict.

Each threshold is a plain reading of the paper's argument, chosen before any arm was compared:
- `weak_softer_samples` >= 0.8: Eq. 10's consolidation term (β = 0.8, [-ΔH]+) and the argument of Section 4
  assume Phase 1 *reduced* the entropy of the training samples; if it did not on most of them (ΔH < 0 on at
  least 4 in 5), the curriculum concentrates on a minority and the weak model is not the softer one.
- `mix_lowers_target_tokens` >= 0.5: the mechanism of Section 5 is that P_mix(y) < P_strong(y), so the mixed
  loss still pushes the target logit up where plain CE has saturated; it must act on most trained tokens.
- `weak_margin_le_strong_tokens` >= 0.5: the premise of the paper's theorem (the weak model's margin
  z_y - max_{k≠y} z_k at most the strong model's), on most trained tokens.
- `m1_saturated`: continued plain SFT of M1 gains less than 2 points of accuracy and not significantly (the
  lower end of its 95% CI <= 0; a significant *loss* also means more SFT does not help), and M1 solves some
  problems (a model that learned nothing has not saturated, it has failed). If plain SFT still gains, a
  comparison of continued methods measures under-training, not saturation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

WEAK_SOFTER_MIN = 0.8
MIX_LOWERS_TARGET_MIN = 0.5
WEAK_MARGIN_LE_STRONG_MIN = 0.5
SATURATION_MAX_GAIN = 0.02  # accuracy (fraction) that continued plain SFT may still gain over M1


@dataclass(frozen=True)
class Premise:
    """One premise: its measured value, the threshold it is held against, and whether it holds (None: unmeasured)."""

    name: str
    value: float | None
    threshold: float
    holds: bool | None
    rule: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _at_least(name: str, value: float | None, threshold: float, what: str) -> Premise:
    holds = None if value is None else bool(value >= threshold)
    return Premise(name, value, threshold, holds, f"{what} >= {threshold:g}")


def weak_softer(fraction: float | None) -> Premise:
    """Fraction of training samples whose mean completion entropy fell from weak to strong (ΔH < 0)."""
    return _at_least("weak_softer_samples", fraction, WEAK_SOFTER_MIN, "fraction of samples with ΔH < 0")


def mix_lowers_target(fraction: float | None) -> Premise:
    """Fraction of trained tokens where P_mix(y) < P_strong(y)."""
    return _at_least(
        "mix_lowers_target_tokens",
        fraction,
        MIX_LOWERS_TARGET_MIN,
        "fraction of tokens with P_mix(y) < P_s(y)",
    )


def weak_margin_le_strong(fraction: float | None) -> Premise:
    """Fraction of trained tokens where the weak model's margin is at most the strong model's."""
    return _at_least(
        "weak_margin_le_strong_tokens",
        fraction,
        WEAK_MARGIN_LE_STRONG_MIN,
        "fraction of tokens with margin_weak <= margin_strong",
    )


def is_saturated(gain: float, ci_low: float, m1_accuracy: float) -> bool:
    """The saturation rule: continued plain SFT gains < 2 points and not significantly (CI lower end <= 0), and
    M1 solves something."""
    return bool(gain < SATURATION_MAX_GAIN and ci_low <= 0 and m1_accuracy > 0)


def m1_saturated(
    gain: float | None,
    ci_low: float | None = None,
    ci_high: float | None = None,
    m1_accuracy: float | None = None,
) -> Premise:
    """Continued plain SFT's accuracy gain over M1 (paired, with its 95% CI) against the saturation rule."""
    measured = not (gain is None or ci_low is None or m1_accuracy is None)
    holds = is_saturated(gain, ci_low, m1_accuracy) if measured else None
    detail = (
        "" if ci_low is None else f"gain {100 * gain:+.1f} points [{100 * ci_low:+.1f}, {100 * ci_high:+.1f}]"
    )
    return Premise(
        "m1_saturated",
        gain,
        SATURATION_MAX_GAIN,
        holds,
        f"continued plain SFT gains < {100 * SATURATION_MAX_GAIN:g} points over M1, CI lower end <= 0, M1 > 0%",
        detail,
    )


def verdict_sentence(premises: list[Premise]) -> str:
    """One sentence: whether the run is in the paper's regime, naming every premise that failed or was not measured."""
    failed = [p.name for p in premises if p.holds is False]
    unknown = [p.name for p in premises if p.holds is None]
    if failed:
        return (
            f"Outside the paper's regime ({', '.join(failed)} failed): this result does not test the paper's claim, "
            "whatever it shows."
        )
    if unknown:
        return f"Every measured premise holds; not measured: {', '.join(unknown)}."
    return "Every premise holds: the run is in the regime the paper's claim is about."
