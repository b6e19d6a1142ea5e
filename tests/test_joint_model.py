"""The joint module's loss (fused and recompute paths) equals the reference form, in value and gradients, on tiny LMs."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.conftest import tiny_llama_config, tiny_qwen3_config
from wmss.errors import ModelError
from wmss.method.joint_model import JointModel, local_head_weight
from wmss.method.mixed_loss import mixed_logit_cross_entropy
from wmss.models import check_same_vocabulary

VOCAB = 64


def _pair(make_config, seed: int = 0):
    torch.manual_seed(seed)
    strong = AutoModelForCausalLM.from_config(make_config(VOCAB)).double()
    weak = AutoModelForCausalLM.from_config(make_config(VOCAB)).double()
    return strong, weak


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, VOCAB, (3, 12), generator=g)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2, 9:] = 0  # right padding
    labels = input_ids.clone()
    labels[:, :5] = -100  # prompt
    labels[2, 9:] = -100
    return input_ids, attention_mask, labels


def _grads(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("make_config", [tiny_qwen3_config, tiny_llama_config], ids=["qwen3-tied", "llama"])
@pytest.mark.parametrize("weak_trainable", [True, False], ids=["co-trained", "frozen"])
@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
@pytest.mark.parametrize("path", ["fused", "recompute"])
def test_chunked_joint_loss_matches_reference(make_config, weak_trainable, chunk_size, path, monkeypatch):
    if path == "recompute":  # what sharded heads (ZeRO-3, FSDP2 units of their own) take
        monkeypatch.setattr("wmss.method.joint_model.local_head_weight", lambda head: None)
    strong, weak = _pair(make_config)
    input_ids, attention_mask, labels = _batch()
    joint = JointModel(strong, weak, lam=0.3, weak_trainable=weak_trainable, chunk_size=chunk_size)
    loss = joint(input_ids=input_ids, attention_mask=attention_mask, labels=labels)["loss"]
    loss.backward()
    got = {"strong": _grads(strong), "weak": _grads(weak)}
    strong.zero_grad()
    weak.zero_grad()

    # Reference: full logits of both models, then the readable Eq. 11-12 form.
    z_s = strong(input_ids=input_ids, attention_mask=attention_mask).logits
    with torch.set_grad_enabled(weak_trainable):
        z_w = weak(input_ids=input_ids, attention_mask=attention_mask).logits
    ref = mixed_logit_cross_entropy(z_s, z_w, labels, lam=0.3)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-12)
    want = {"strong": _grads(strong), "weak": _grads(weak)}
    for branch in ("strong", "weak"):
        assert got[branch].keys() == want[branch].keys()
        for name in want[branch]:
            torch.testing.assert_close(got[branch][name], want[branch][name], rtol=1e-8, atol=1e-11)
    # Both backbones and both output embeddings receive gradients when co-trained; none reach a frozen weak.
    assert any("embed_tokens" in n for n in got["strong"])
    if not strong.config.tie_word_embeddings:
        assert any("lm_head" in n for n in got["strong"])
    assert bool(got["weak"]) is weak_trainable


def test_frozen_weak_has_no_trainable_parameters_and_stays_in_eval():
    strong, weak = _pair(tiny_qwen3_config)
    joint = JointModel(strong, weak, weak_trainable=False).train()
    assert not weak.training and strong.training
    assert all(not p.requires_grad for p in weak.parameters())
    trainable = {id(p) for p in joint.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in strong.parameters()}


def test_num_items_in_batch_normalises_the_sum():
    strong, weak = _pair(tiny_qwen3_config)
    input_ids, attention_mask, labels = _batch()
    joint = JointModel(strong, weak)
    n_trained = int(labels[:, 1:].ne(-100).sum())
    mean = joint(input_ids=input_ids, attention_mask=attention_mask, labels=labels)["loss"]
    scaled = joint(input_ids=input_ids, attention_mask=attention_mask, labels=labels, num_items_in_batch=100)[
        "loss"
    ]
    torch.testing.assert_close(scaled, mean * n_trained / 100)


def test_lambda_one_is_plain_sft_loss():
    strong, weak = _pair(tiny_llama_config)
    input_ids, attention_mask, labels = _batch()
    joint = JointModel(strong, weak, lam=1.0)
    loss = joint(input_ids=input_ids, attention_mask=attention_mask, labels=labels)["loss"]
    sft = strong(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    # transformers computes its loss in float32; ours keeps float64.
    torch.testing.assert_close(loss, sft.double(), rtol=1e-6, atol=1e-6)


def test_vocabulary_mismatch_is_refused(tokenizer):
    strong = AutoModelForCausalLM.from_config(tiny_qwen3_config(VOCAB))
    weak = AutoModelForCausalLM.from_config(tiny_qwen3_config(VOCAB + 8))
    with pytest.raises(ModelError, match="different vocabularies"):
        check_same_vocabulary(weak, strong)
    same = AutoModelForCausalLM.from_config(tiny_qwen3_config(VOCAB))
    shifted = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer)
    shifted.add_tokens(["<extra_token>"])
    with pytest.raises(ModelError, match="tokenizers differ"):
        check_same_vocabulary(same, strong, tokenizer, shifted)


def test_fused_loss_takes_whole_bias_free_linear_heads_only():
    head = torch.nn.Linear(4, VOCAB, bias=False)
    assert local_head_weight(head) is head.weight
    assert local_head_weight(torch.nn.Linear(4, VOCAB)) is None  # a bias: called as a module
    assert local_head_weight(torch.nn.Embedding(VOCAB, 4)) is None
    head.weight.ds_id = 0  # how DeepSpeed ZeRO-3 marks a partitioned parameter
    assert local_head_weight(head) is None
