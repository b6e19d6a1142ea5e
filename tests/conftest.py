"""Fixtures: a tiny tokenizer, tiny causal LMs built from configs, and a small JSONL data set (all offline)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config

from tests.helpers import make_tiny_tokenizer

torch.set_num_threads(int(os.environ.get("WMSS_TEST_THREADS", "1")))


def tiny_qwen3_config(vocab_size: int, tie: bool = True) -> Qwen3Config:
    """Qwen3 with hidden 32 and 2 layers (Qwen3 needs an explicit head_dim at this size)."""
    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=512,
        tie_word_embeddings=tie,
    )


def tiny_llama_config(vocab_size: int) -> LlamaConfig:
    """Llama with hidden 32 and 2 layers, untied output embeddings."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )


def save_tiny_model(path: Path, config, seed: int) -> Path:
    """Build a model from a config with a fixed seed and save it with the tiny tokenizer."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = 1
    model.save_pretrained(path)
    make_tiny_tokenizer(path)
    return path


@pytest.fixture(scope="session")
def tokenizer():
    """The tiny char-level tokenizer with a ChatML template."""
    return make_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A saved tiny Qwen3 (M0) with its tokenizer."""
    return save_tiny_model(tmp_path_factory.mktemp("m0"), tiny_qwen3_config(len(tokenizer)), seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir_2(tmp_path_factory, tokenizer) -> Path:
    """A second tiny Qwen3 with other weights (stands in for M1)."""
    return save_tiny_model(tmp_path_factory.mktemp("m1"), tiny_qwen3_config(len(tokenizer)), seed=1)


def write_arithmetic_jsonl(path: Path, n: int = 24, seed: int = 0) -> Path:
    """Write n prompt/completion records of small additions."""
    rng = random.Random(seed)
    with path.open("w") as handle:
        for _ in range(n):
            a, b = rng.randint(1, 50), rng.randint(1, 50)
            record = {
                "prompt": f"{a}+{b}?",
                "completion": f"<think>{a}+{b}={a + b}</think><answer>{a + b}</answer>",
            }
            handle.write(json.dumps(record) + "\n")
    return path


@pytest.fixture(scope="session")
def train_jsonl(tmp_path_factory) -> Path:
    """A 24-record prompt/completion JSONL file."""
    return write_arithmetic_jsonl(tmp_path_factory.mktemp("data") / "train.jsonl")
