"""The demo's base model M0: a tiny Qwen3 pretrained from scratch on a related arithmetic corpus."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    DataCollatorForSeq2Seq,
    GenerationConfig,
    PreTrainedTokenizerBase,
    Qwen3Config,
    Qwen3ForCausalLM,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from wmss.defaults import IGNORE_INDEX
from wmss.demo.presets import DemoPreset
from wmss.demo.recipe import RECIPE_FILE
from wmss.demo.tokenizer import IM_END
from wmss.io import atomic_directory, atomic_write_json

logger = logging.getLogger(__name__)


def make_base_config(tokenizer: PreTrainedTokenizerBase, preset: DemoPreset) -> Qwen3Config:
    """Return the tiny Qwen3 configuration of M0 for this tokenizer and preset."""
    return Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=preset.hidden_size,
        intermediate_size=preset.intermediate_size,
        num_hidden_layers=preset.num_hidden_layers,
        num_attention_heads=preset.num_attention_heads,
        num_key_value_heads=preset.num_key_value_heads,
        head_dim=preset.head_dim,
        max_position_embeddings=preset.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _packed_blocks(
    tokenizer: PreTrainedTokenizerBase, corpus: list[str], block_size: int
) -> list[dict[str, torch.Tensor]]:
    # Packing documents into full blocks wastes no compute on padding, which matters on a CPU.
    ids: list[int] = []
    for document in corpus:
        ids.extend(tokenizer(document, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    n_blocks = len(ids) // block_size
    if n_blocks == 0:
        raise ValueError(f"the corpus has {len(ids)} tokens, fewer than one block of {block_size}")
    blocks = torch.tensor(ids[: n_blocks * block_size]).view(n_blocks, block_size)
    return [{"input_ids": block, "labels": block} for block in blocks]


def _completion_examples(
    tokenizer: PreTrainedTokenizerBase, chats: list[tuple[str, str]]
) -> list[dict[str, list[int]]]:
    # (prompt, full chat) pairs: the loss covers only what follows the prompt, the worked solution.
    examples = []
    for prompt, chat in chats:
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = tokenizer(chat, add_special_tokens=False)["input_ids"]
        if ids[: len(prompt_ids)] != prompt_ids:
            raise ValueError(f"the chat does not start with its prompt: {chat!r}")
        labels = [IGNORE_INDEX] * len(prompt_ids) + ids[len(prompt_ids) :]
        examples.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return examples


class _Snapshots(TrainerCallback):
    """Calls `save(model, step)` every `every` optimizer steps and at the last: at a constant rate, the k-step
    recipes of one run."""

    def __init__(self, save: Callable[[Any, int], None], every: int) -> None:
        self.save, self.every = save, every

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self.save(model, state.global_step)


def _train(
    model: Qwen3ForCausalLM,
    dataset: Any,
    preset: DemoPreset,
    seed: int,
    collator: Any = None,
    callbacks: Sequence[TrainerCallback] = (),
    **kwargs: Any,
) -> Any:
    with tempfile.TemporaryDirectory(prefix="wmss-demo-m0-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=preset.pretrain_batch_size,
            # A constant rate after a fixed warmup: the first k steps of a longer run are the k-step recipe.
            lr_scheduler_type="constant_with_warmup",
            warmup_steps=preset.pretrain_warmup_steps,
            weight_decay=0.0,
            logging_steps=max(1, kwargs["max_steps"] // 10),
            save_strategy="no",
            report_to=[],
            seed=seed,
            data_seed=seed,
            disable_tqdm=True,
            dataloader_num_workers=0,
            dataloader_pin_memory=torch.cuda.is_available(),
            **kwargs,
        )
        trainer = Trainer(
            model=model, args=args, train_dataset=dataset, data_collator=collator, callbacks=list(callbacks)
        )
        return trainer.train()


def pretrain_base_model(
    tokenizer: PreTrainedTokenizerBase,
    corpus: list[str],
    output_dir: Path,
    preset: DemoPreset,
    seed: int,
    recipe: dict[str, Any],
    easier: Sequence[tuple[str, str]] = (),
    snapshots: tuple[Path, int, Callable[[int], dict[str, Any]]] | None = None,
) -> Path:
    """Pretrain M0 on `corpus` (causal LM), then mid-train it on `easier` (prompt, chat) pairs (completion-only
    loss); save model, tokenizer, generation config and recipe to `output_dir`. `snapshots` = (directory, every,
    recipe of k steps) also saves the mid-training checkpoints at 0, every, 2·every, ... steps as M0 candidates."""
    began = time.time()
    output_dir = Path(output_dir)
    set_seed(seed)
    model = Qwen3ForCausalLM(make_base_config(tokenizer, preset))
    # Chat-formatted generations end with <|im_end|>; plain text ends with the eos token.
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids(IM_END), tokenizer.eos_token_id],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    dataset = _packed_blocks(tokenizer, corpus, preset.pretrain_block_size)
    result = _train(
        model,
        dataset,
        preset,
        seed,
        max_steps=preset.pretrain_steps,
        learning_rate=preset.pretrain_learning_rate,
    )
    logger.info("pretrained M0 for %d steps: train loss %.3f", result.global_step, result.training_loss)
    record: dict[str, Any] = {
        "train_loss": round(result.training_loss, 4),
        "optimizer_steps": result.global_step,
    }
    callbacks: list[TrainerCallback] = []
    if snapshots is not None:
        directory, every, recipe_of = snapshots

        def save(snapshot: Any, step: int) -> None:
            info = {**record, "midtrain_steps": step, "snapshot_of": str(output_dir)}
            _save_model(snapshot, tokenizer, directory / f"midtrain-{step}", recipe_of(step), info)

        save(model, 0)
        callbacks.append(_Snapshots(save, every))
    if preset.midtrain_steps:
        midtrain = _train(
            model,
            _completion_examples(tokenizer, list(easier)),
            preset,
            seed,
            max_steps=preset.midtrain_steps,
            learning_rate=preset.midtrain_learning_rate,
            collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX),
            callbacks=callbacks,
        )
        logger.info("mid-trained M0 for %d steps: loss %.3f", midtrain.global_step, midtrain.training_loss)
        record |= {"midtrain_loss": round(midtrain.training_loss, 4), "midtrain_steps": midtrain.global_step}
    record["seconds"] = round(time.time() - began, 1)
    return _save_model(model, tokenizer, output_dir, recipe, record)


def _save_model(
    model: Any, tokenizer: PreTrainedTokenizerBase, output_dir: Path, recipe: dict[str, Any], record: dict
) -> Path:
    with atomic_directory(output_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / RECIPE_FILE, {"recipe": recipe, "pretraining": record})
    return output_dir
