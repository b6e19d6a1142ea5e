"""Stage fingerprints of existing run directories stay the same, so a finished run still resumes.

The stage graphs of a few `wmss run` and `wmss compare` configurations are built (nothing runs) and every
stage's name, output, upstream stages and chained fingerprint is held against `fingerprints.json`. A
change there means every existing run directory re-runs that stage: make it only on purpose, and say so.
Regenerate after such a change with `WMSS_PIN_FINGERPRINTS=1 pytest tests/test_fingerprints.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from wmss.compare.comparison import build_plan
from wmss.config import load_config
from wmss.pipeline import build_stages
from wmss.stages import Stage, settings_hash

PINNED = Path(__file__).with_name("fingerprints.json")
RUN_DIR = Path("/wmss-pinned/run")  # never created: building a stage graph touches no file
# Hub-style names are taken as they are (no file state enters the fingerprint), so the pins hold anywhere.
BASE = ["model.base=org/m0", "data.train=org/train-data"]
ALL_ARMS = (
    "[sft_total, sft_continued, sft_continued_plain, wmss, wmss_frozen, joint_plain, neftune, undial, "
    "label_smoothing, sft_matched_compute, sft_high_lr, control_uniform, control_shuffled]"
)

RUNS = {
    "run-defaults": [],
    "run-two-rounds": ["wmss.rounds=2", "pipeline.extract_weak=true", "wmss.lam=0.3"],
    "run-given-m1": ["model.sft=org/m1", "pipeline.sft_baseline=false", "wmss.weighting=paper_eq10"],
    "run-old-weighting-name": ["wmss.weighting=paper", "wmss.alpha=0.2", "wmss.sample_multiplier=2"],
}
COMPARES = {
    "compare-all-arms": [
        f"compare.arms={ALL_ARMS}",
        "compare.seeds=[0, 1]",
        "compare.benchmarks=[gsm8k]",
        "compare.data_dir=org/benchmarks",
        "compare.sampling_problems=4",
        "compare.sweeps=['wmss.lam=0.3,0.5', 'wmss.alpha:wmss.beta=0.2:0.6,0.1:0.8']",
    ],
    "compare-shared-phase1": [
        "compare.arms=[sft_continued, wmss]",
        "compare.seeds=[3, 4]",
        "compare.shared_phase1=true",
        "compare.benchmarks=[svamp]",
        "compare.eval_limit=50",
        "compare.diagnostics_samples=0",
    ],
    "compare-given-m1": [
        "model.sft=org/m1",
        "compare.arms=[sft_continued, wmss, control_uniform]",
        "compare.benchmarks=[gsm8k]",
        "wmss.weighting=paper_eq10",
        "compare.branches=false",
    ],
}


def _chain(stages: list[Stage]) -> dict[str, list]:
    """name -> [fingerprint, output relative to the run directory, upstream], chained as `run_stages` does."""
    fingerprints: dict[str, str] = {}
    pins: dict[str, list] = {}
    for stage in stages:
        fingerprints[stage.name] = settings_hash([stage.settings, [fingerprints[u] for u in stage.upstream]])
        output = stage.output.relative_to(RUN_DIR) if stage.output.is_relative_to(RUN_DIR) else stage.output
        pins[stage.name] = [fingerprints[stage.name], str(output), list(stage.upstream)]
    return pins


def _graphs() -> dict[str, dict[str, list]]:
    graphs = {
        name: _chain(build_stages(load_config(None, [*BASE, *o]), RUN_DIR)[0]) for name, o in RUNS.items()
    }
    for name, overrides in COMPARES.items():
        graphs[name] = _chain(build_plan(load_config(None, [*BASE, *overrides]), RUN_DIR).stages)
    return graphs


def _dump(graphs: dict[str, dict[str, list]]) -> str:
    """One line per stage, so that a changed pin reads as a one-line diff."""
    blocks = [
        f"  {json.dumps(name)}: {{\n"
        + ",\n".join(f"    {json.dumps(stage)}: {json.dumps(pin)}" for stage, pin in stages.items())
        + "\n  }"
        for name, stages in graphs.items()
    ]
    return "{\n" + ",\n".join(blocks) + "\n}\n"


def test_stage_fingerprints_of_existing_runs_are_unchanged():
    graphs = _graphs()
    if os.environ.get("WMSS_PIN_FINGERPRINTS"):
        PINNED.write_text(_dump(graphs))
    pinned = json.loads(PINNED.read_text())
    assert graphs.keys() == pinned.keys()
    for name, stages in graphs.items():
        assert sorted(stages) == sorted(pinned[name]), f"{name}: stages were added or removed"
        for stage, pin in pinned[name].items():
            assert stages[stage] == pin, f"{name}: stage {stage} changed"
