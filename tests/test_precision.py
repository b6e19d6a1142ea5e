"""Precision policy: trained weights are float32 masters (bf16 via autocast); pure bf16/fp16 training is opt-in."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.conftest import tiny_qwen3_config
from wmss.config import load_config
from wmss.errors import ConfigError
from wmss.models import load_causal_lm
from wmss.training import make_training_arguments


def test_plain_optimizer_on_bf16_weights_loses_small_updates():
    # Why the policy exists: at lr 1e-5 an AdamW step changes a bf16 weight of 1.0 by far less than its ulp.
    for dtype, changed in ((torch.bfloat16, False), (torch.float32, True)):
        weight = torch.nn.Parameter(torch.ones(8, dtype=dtype))
        optimizer = torch.optim.AdamW([weight], lr=1e-5, weight_decay=0.0)
        weight.grad = torch.ones_like(weight)
        optimizer.step()
        assert bool((weight != 1).all()) is changed


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("section", ["sft", "joint"])
def test_low_precision_training_is_refused_naming_the_settings(tmp_path, dtype, section):
    config = load_config(None, [f"model.dtype={dtype}"])
    with pytest.raises(ConfigError) as refused:
        make_training_arguments(config, section, tmp_path)
    message = str(refused.value)
    assert "'model.dtype'" in message and f"'{section}.bf16: true'" in message
    assert "'model.low_precision_training: true'" in message


def test_opt_in_and_float32_masters_are_accepted(tmp_path):
    opted = load_config(None, ["model.dtype=bfloat16", "model.low_precision_training=true"])
    assert make_training_arguments(opted, "joint", tmp_path).output_dir == str(tmp_path)
    autocast = load_config(None, ["model.dtype=auto", "joint.bf16=true", "joint.extra={use_cpu: true}"])
    assert make_training_arguments(autocast, "joint", tmp_path).bf16


def test_trained_models_load_as_float32_masters_from_a_bf16_checkpoint(tmp_path):
    AutoModelForCausalLM.from_config(tiny_qwen3_config(64)).to(torch.bfloat16).save_pretrained(tmp_path)
    trained = load_causal_lm(str(tmp_path), for_training=True)
    assert {p.dtype for p in trained.parameters()} == {torch.float32}
    scored = load_causal_lm(str(tmp_path))  # inference (entropy, a frozen weak model) keeps the saved dtype
    assert {p.dtype for p in scored.parameters()} == {torch.bfloat16}
