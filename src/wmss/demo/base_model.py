"""The demo's base model M0: a tiny Qwen3 pretrained from scratch on a related arithmetic corpus."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import (
    GenerationConfig,
    PreTrainedTokenizerBase,
    Qwen3Config,
    Qwen3ForCausalLM,
    Trainer,
    TrainingArguments,
    set_seed,
)

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


def pretrain_base_model(
    tokenizer: PreTrainedTokenizerBase,
    corpus: list[str],
    output_dir: Path,
    preset: DemoPreset,
    seed: int,
    recipe: dict[str, Any],
) -> Path:
    """Pretrain M0 on `corpus` (causal LM); save model, tokenizer, generation config and recipe to `output_dir`."""
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
    with tempfile.TemporaryDirectory(prefix="wmss-demo-pretrain-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            num_train_epochs=preset.pretrain_epochs,
            per_device_train_batch_size=preset.pretrain_batch_size,
            learning_rate=preset.pretrain_learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=preset.warmup_ratio,  # transformers 5 reads a float in [0, 1) as a ratio
            weight_decay=0.0,
            logging_steps=max(1, len(dataset) // preset.pretrain_batch_size // 5),
            save_strategy="no",
            report_to=[],
            seed=seed,
            data_seed=seed,
            disable_tqdm=True,
            dataloader_num_workers=0,
            dataloader_pin_memory=torch.cuda.is_available(),
        )
        result = Trainer(model=model, args=args, train_dataset=dataset).train()
    logger.info(
        "pretrained M0 on %d blocks of %d tokens: train loss %.3f in %.1f s",
        len(dataset),
        preset.pretrain_block_size,
        result.training_loss,
        result.metrics["train_runtime"],
    )
    record = {
        "train_loss": round(result.training_loss, 4),
        "optimizer_steps": result.global_step,
        "seconds": round(time.time() - began, 1),
    }
    with atomic_directory(output_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / RECIPE_FILE, {"recipe": recipe, "pretraining": record})
    return output_dir
