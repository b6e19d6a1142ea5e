"""What every demo run starts from: the tokenizer, the task's splits, M0, and the `wmss compare` settings."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from wmss.config import RunConfig, load_config
from wmss.demo.base_model import pretrain_base_model
from wmss.demo.presets import DEMO_ARMS, DemoPreset
from wmss.demo.recipe import RECIPE_FILE, m0_recipe, read_recipe
from wmss.demo.task import (
    DemoTask,
    easier_problems,
    make_task,
    pretraining_corpus,
    validation_problems,
    write_jsonl,
)
from wmss.demo.tokenizer import build_demo_tokenizer
from wmss.io import atomic_directory, atomic_write_json, read_json
from wmss.prompts import apply_template

logger = logging.getLogger(__name__)

M0_INFO = "m0_pretraining.json"
# The default preset's M0 for data seed 0, built by `make demo-m0`: like the paper's Qwen3-Base, M0 comes
# pretrained, so its pretraining is not part of the demo's run time. Any other recipe is pretrained on the spot.
SHIPPED_M0 = Path(__file__).parent / "m0"


def demo_settings(preset: DemoPreset, seeds: list[int]) -> dict[str, Any]:
    """Dotted config keys the demo sets: paper defaults for the method, the preset's sizes, equal phase budgets."""
    # Phase 1 and Phase 3 get the same schedule; Phase 1 runs to saturation, Phase 3 for the paper's epoch.
    common = {
        "per_device_train_batch_size": preset.batch_size,
        "warmup_steps": preset.warmup_ratio,
        "lr_scheduler_type": "cosine",
        "logging_steps": 10,
        "save_steps": 200,
        "save_total_limit": 1,
        "learning_rate": preset.learning_rate,
    }
    values: dict[str, Any] = {f"{stage}.{key}": v for stage in ("sft", "joint") for key, v in common.items()}
    values |= {
        "sft.num_train_epochs": float(preset.phase1_epochs),
        "joint.num_train_epochs": float(preset.epochs),
        "data.max_length": preset.max_position_embeddings,
        "wmss.entropy_batch_size": preset.entropy_batch_size,
        "compare.arms": list(DEMO_ARMS),
        "compare.reference": "sft_continued",
        "compare.seeds": list(seeds),
        "compare.eval_kind": "numeric",
        "compare.eval_batch_size": preset.eval_batch_size,
        "compare.max_new_tokens": preset.max_new_tokens,
        "compare.diagnostics_samples": preset.diagnostics_samples,
        "compare.sampling_problems": preset.sampling_problems,
        "compare.sampling_n": preset.sampling_n,
        "compare.group_field": "steps",
    }
    return values


def demo_config(preset: DemoPreset, output: Path, seeds: list[int]) -> RunConfig:
    """The `wmss compare` configuration of the demo (paths inside `output`)."""
    paths = {
        "model.base": str(output / "m0"),
        "data.train": str(output / "data" / "train.jsonl"),
        "compare.eval_file": str(output / "data" / "test.jsonl"),
        "pipeline.output_dir": str(output),
    }
    return load_config(None, values={**demo_settings(preset, seeds), **paths})


def _problem_shape(preset: DemoPreset) -> dict[str, Any]:
    """How the preset's problems are drawn (steps, numbers, distractors): the same for every split."""
    keys = ("min_steps", "max_steps", "max_start", "max_operand", "distractor_prob")
    return {key: getattr(preset, key) for key in keys}


def demo_task(preset: DemoPreset, data_seed: int) -> DemoTask:
    """The preset's training and held-out splits for one data seed."""
    return make_task(data_seed, preset.n_train, preset.n_test, **_problem_shape(preset))


def task_and_corpus(
    preset: DemoPreset, data_seed: int, tokenizer: Any
) -> tuple[DemoTask, list[str], list[tuple[str, str]]]:
    """The task's splits, M0's pretraining corpus and its mid-training (prompt, chat) pairs; neither of the last two
    holds a held-out problem's arithmetic."""
    task = demo_task(preset, data_seed)
    corpus = pretraining_corpus(
        data_seed,
        preset.corpus_size,
        max_start=preset.max_start,
        max_operand=preset.max_operand,
        max_steps=preset.max_steps,
        worked_fraction=preset.worked_fraction,
        worked_max_steps=preset.worked_max_steps,
        render=lambda question, answer: chat_text(tokenizer, question, answer),
        exclude=task.test_keys,
    )
    easier = easier_problems(
        data_seed,
        preset.midtrain_problems if preset.midtrain_steps else 0,
        max_start=preset.max_start,
        max_operand=preset.max_operand,
        max_steps=preset.worked_max_steps,
        exclude=task.test_keys,
    )
    chats = [
        (chat_prompt(tokenizer, question), chat_text(tokenizer, question, answer))
        for question, answer in easier
    ]
    return task, corpus, chats


def prepare_task_and_base_model(
    preset: DemoPreset, output: Path, data_seed: int, *, m0_dir: Path | None = None
) -> dict[str, Any]:
    """Write the tokenizer, the task's splits and M0 under `output`: M0 is kept while its recipe (preset sizes,
    data seed, corpus) holds, copied from the shipped one when that has the recipe, else pretrained here.
    `m0_dir` pretrains M0 into that directory instead, whatever exists."""
    tokenizer = build_demo_tokenizer(output / "tokenizer")
    task, corpus, easier = task_and_corpus(preset, data_seed, tokenizer)
    write_jsonl(task.train, output / "data" / "train.jsonl")
    write_jsonl(task.test, output / "data" / "test.jsonl")
    write_jsonl(validation_split(preset, data_seed, task), output / "data" / "validation.jsonl")
    recipe = m0_recipe(preset, data_seed, corpus, easier)
    if m0_dir is not None:
        pretrain_base_model(tokenizer, corpus, m0_dir, preset, data_seed, recipe, easier)
        return read_json(m0_dir / RECIPE_FILE)["pretraining"]
    info_path, m0 = output / M0_INFO, output / "m0"
    if (m0 / "config.json").is_file() and info_path.is_file() and read_recipe(m0) == recipe:
        return read_json(info_path)
    if read_recipe(SHIPPED_M0) == recipe:
        with atomic_directory(m0) as tmp:
            shutil.copytree(SHIPPED_M0, tmp, dirs_exist_ok=True)
        source = "shipped with wmss (make demo-m0 rebuilds it)"
    else:
        logger.info("pretraining M0 for %d steps (the shipped M0 has another recipe)", preset.pretrain_steps)
        pretrain_base_model(tokenizer, corpus, m0, preset, data_seed, recipe, easier)
        source = "pretrained in this run"
    info = {
        "source": source,
        "data_seed": data_seed,
        "corpus_documents": len(corpus),
        **read_json(m0 / RECIPE_FILE)["pretraining"],
    }
    atomic_write_json(info_path, info)
    return info


def validation_split(preset: DemoPreset, data_seed: int, task: DemoTask) -> list[dict[str, Any]]:
    """The validation problems (model selection only): the test's distribution, disjoint from train and test."""
    return validation_problems(
        data_seed, preset.n_validation, **_problem_shape(preset), exclude=task.test_keys | task.train_keys
    )


def chat_text(tokenizer: Any, question: str, answer: str) -> str:
    """A worked problem as the chat the demo trains and evaluates on (no system prompt), ending the turn."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": question}, {"role": "assistant", "content": answer}], tokenize=False
    )


def chat_prompt(tokenizer: Any, question: str) -> str:
    """The generation prompt of a problem, exactly as evaluation renders it (no system prompt)."""
    return apply_template(tokenizer, [{"role": "user", "content": question}], None)[0]
