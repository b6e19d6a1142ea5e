"""Which M0 the demo ships: the most trained base model that is still the softer one against its own M1.

The rule, written down on 2026-12-05 after `wmss regime` showed the mid-trained M0 (1,750 steps) failing the weak
model's gates against its saturated M1 (ΔH < 0 on 23% of samples; mixing lowered P(y) on 36% of tokens), and
before any arm was compared on the new design:
- Candidates: the mid-training checkpoints at 0, 250, ..., `preset.midtrain_steps` steps of one run at the
  recipe's constant rate (so the k-step checkpoint is the k-step recipe; 0 is pretraining alone). A weaker
  checkpoint of the same model is what Algorithm 1 itself uses as the weak model in later rounds.
- From the most to the fewest steps: Phase 1's saturation rule (wmss.demo.phase1) on the validation split, then
  the sample- and token-level premises (wmss.compare.regime) of the candidate against its own saturated M1, on the
  training data.
- M0 is the first (most trained) candidate at which the three weak-model gates hold (`weak_softer_samples`,
  `mix_lowers_target_tokens`, `weak_margin_le_strong_tokens`). If none does, the most trained one is kept and
  the demo reports the failed gates.
Nothing here looks at an arm other than the saturation probe (continued plain SFT of M1).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from wmss.compare.regime import run_regime
from wmss.config import load_config
from wmss.demo.base_model import pretrain_base_model
from wmss.demo.phase1 import saturation_search
from wmss.demo.presets import PRESETS
from wmss.demo.recipe import m0_recipe
from wmss.demo.setup import demo_settings, prepare_task_and_base_model, task_and_corpus
from wmss.demo.tokenizer import build_demo_tokenizer
from wmss.io import atomic_write_json, read_json

logger = logging.getLogger(__name__)

SNAPSHOT_EVERY = 250
WEAK_GATES = ("weak_softer_samples", "mix_lowers_target_tokens", "weak_margin_le_strong_tokens")


def _snapshots(preset_name: str, output: Path, data_seed: int) -> Path:
    """Mid-training checkpoints every SNAPSHOT_EVERY steps of one run of the preset's M0 recipe."""
    preset = PRESETS[preset_name]
    directory = output / "snapshots"
    last = directory / f"midtrain-{preset.midtrain_steps}"
    if (last / "config.json").is_file():
        return directory
    tokenizer = build_demo_tokenizer(output / "tokenizer")
    _, corpus, easier = task_and_corpus(preset, data_seed, tokenizer)

    def recipe_of(steps: int) -> dict[str, Any]:
        # A 0-step candidate is mid-trained on nothing, exactly as a preset with midtrain_steps=0 would be.
        return m0_recipe(
            dataclasses.replace(preset, midtrain_steps=steps), data_seed, corpus, easier if steps else []
        )

    pretrain_base_model(
        tokenizer,
        corpus,
        output / "long-run",
        preset,
        data_seed,
        recipe_of(preset.midtrain_steps),
        easier,
        snapshots=(directory, SNAPSHOT_EVERY, recipe_of),
    )
    return directory


def m0_search(preset_name: str, output: Path, data_seed: int = 0) -> dict[str, Any]:
    """Apply the rule above under `output` (resumable) and write/return `output`/selection.json."""
    preset = PRESETS[preset_name]
    run = output / "run"
    prepare_task_and_base_model(preset, run, data_seed)
    snapshots = _snapshots(preset_name, output, data_seed)
    settings = demo_settings(preset, [0])
    data = run / "data"
    candidates = []
    for steps in sorted(
        {*range(0, preset.midtrain_steps, SNAPSHOT_EVERY), preset.midtrain_steps}, reverse=True
    ):
        m0 = snapshots / f"midtrain-{steps}"
        work = output / f"candidate-{steps}"
        paths = {
            "model.base": str(m0),
            "data.train": str(data / "train.jsonl"),
            "compare.eval_file": str(data / "validation.jsonl"),
        }
        phase1 = saturation_search(preset, settings, paths, work / "phase1")
        m1 = next(p for p in phase1["grid"] if p["epochs"] == phase1["chosen_epochs"])
        config = load_config(None, values={**settings, **paths})
        section = run_regime(config, str(m0), m1["model"], work / "regime", group_field="steps")
        gates = {p["name"]: p for p in section["premises"]}
        candidate = {
            "midtrain_steps": steps,
            "m0_validation_accuracy": read_json(work / "phase1" / f"epochs-{m1['epochs']:g}" / "report.json")[
                "models"
            ]["m0"]["accuracy"],
            "phase1_epochs": phase1["chosen_epochs"],
            "m1_saturated": phase1["saturated"],
            "m1_validation_accuracy": m1["m1_accuracy"],
            "gates": {name: gates[name] for name in WEAK_GATES},
            "sample_level": section["sample_level"],
            "token_level": section["token_level"],
        }
        candidate["weak_gates_hold"] = all(gates[name]["holds"] for name in WEAK_GATES)
        logger.info("M0 candidate at %d mid-training steps: %s", steps, candidate)
        candidates.append(candidate)
        if candidate["weak_gates_hold"]:
            break
    chosen = next((c for c in candidates if c["weak_gates_hold"]), candidates[0])
    selection = {
        "rule": __doc__,
        "candidates": candidates,
        "chosen_midtrain_steps": chosen["midtrain_steps"],
        "weak_gates_hold": chosen["weak_gates_hold"],
        "model": str(snapshots / f"midtrain-{chosen['midtrain_steps']}"),
    }
    atomic_write_json(output / "selection.json", selection)
    return selection
