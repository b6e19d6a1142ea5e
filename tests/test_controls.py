"""Weak-logit controls of the joint stage against naive float64 twins: uniform (temperature 1/lam) and shuffled."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from wmss.method.joint_model import JointModel
from wmss.method.mixed_loss import chunked_mixed_cross_entropy, mixed_logit_cross_entropy, shuffle_logits


def heads(hidden: int, vocab: int, seed: int) -> tuple[nn.Linear, nn.Linear]:
    torch.manual_seed(seed)
    return (nn.Linear(hidden, vocab, bias=False).double(), nn.Linear(hidden, vocab, bias=False).double())


@settings(max_examples=25, deadline=None)
@given(st.floats(0.05, 1.0), st.floats(-50.0, 50.0), st.integers(0, 1000))
def test_constant_weak_logits_are_training_at_temperature_one_over_lambda(lam, constant, seed):
    generator = torch.Generator().manual_seed(seed)
    strong = torch.randn(2, 5, 9, generator=generator, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 9, (2, 5), generator=generator)
    labels[0, :2] = -100
    mixed = mixed_logit_cross_entropy(strong, torch.full_like(strong, constant), labels, lam=lam)
    tempered = F.cross_entropy(
        (lam * strong[:, :-1]).reshape(-1, 9), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    (g_mixed,) = torch.autograd.grad(mixed, strong)
    (g_tempered,) = torch.autograd.grad(tempered, strong)
    torch.testing.assert_close(mixed, tempered, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(g_mixed, g_tempered, rtol=1e-9, atol=1e-12)


def test_uniform_control_in_chunks_equals_the_tempered_reference():
    strong_head, _ = heads(6, 11, seed=0)
    h = torch.randn(13, 6, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (13,))
    loss = chunked_mixed_cross_entropy(
        h, None, strong_head, None, targets, lam=0.3, chunk_size=4, weak_control="uniform"
    )
    twin = F.cross_entropy(0.3 * strong_head(h), targets, reduction="sum")
    g, gw = torch.autograd.grad(loss, [h, strong_head.weight])
    tg, tgw = torch.autograd.grad(twin, [h, strong_head.weight])
    torch.testing.assert_close(loss, twin)
    torch.testing.assert_close(g, tg)
    torch.testing.assert_close(gw, tgw)


def test_shuffled_rows_keep_their_values_and_entropy():
    logits = torch.randn(7, 50, dtype=torch.float64)
    shuffled = shuffle_logits(logits, seed=3)
    torch.testing.assert_close(shuffled.sort(dim=-1).values, logits.sort(dim=-1).values)
    entropy = lambda z: -(z.softmax(-1) * z.log_softmax(-1)).sum(-1)  # noqa: E731
    torch.testing.assert_close(entropy(shuffled), entropy(logits))
    assert not torch.equal(shuffled, logits)
    torch.testing.assert_close(shuffle_logits(logits, seed=3), shuffled)  # same seed, same permutations


def test_shuffled_control_matches_a_naive_twin_with_gradients():
    strong_head, weak_head = heads(5, 8, seed=1)
    h_s = torch.randn(9, 5, dtype=torch.float64, requires_grad=True)
    h_w = torch.randn(9, 5, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 8, (9,))
    lam, chunk, seed = 0.4, 4, 17
    loss = chunked_mixed_cross_entropy(
        h_s,
        h_w,
        strong_head,
        weak_head,
        targets,
        lam=lam,
        chunk_size=chunk,
        weak_control="shuffled",
        control_seed=seed,
    )
    # Twin: position by position, the same permutation the chunk's seed draws, applied with explicit indexing.
    total = torch.zeros((), dtype=torch.float64)
    for c, start in enumerate(range(0, 9, chunk)):
        rows = range(start, min(start + chunk, 9))
        generator = torch.Generator().manual_seed(seed + c)
        order = torch.rand((len(rows), 8), generator=generator).argsort(dim=-1)
        for r, t in enumerate(rows):
            z_w = weak_head(h_w[t])
            permuted = torch.stack([z_w[int(order[r, v])] for v in range(8)])
            z = lam * strong_head(h_s[t]) + (1 - lam) * permuted
            total = total - torch.log_softmax(z, dim=-1)[targets[t]]
    params = [h_s, h_w, strong_head.weight, weak_head.weight]
    torch.testing.assert_close(loss, total)
    for got, want in zip(torch.autograd.grad(loss, params), torch.autograd.grad(total, params), strict=True):
        torch.testing.assert_close(got, want)


def test_joint_model_with_the_uniform_control_needs_no_weak_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    strong = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    joint = JointModel(strong, None, lam=0.5, weak_control="uniform")
    ids = torch.randint(0, 50, (2, 8))
    labels = ids.clone()
    labels[:, :3] = -100
    loss = joint(input_ids=ids, labels=labels)["loss"]
    reference = mixed_logit_cross_entropy(
        strong(ids).logits, torch.zeros(2, 8, strong.config.vocab_size), labels, 0.5
    )
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
    assert joint.branch_grad_norms()["weak"] == 0.0
