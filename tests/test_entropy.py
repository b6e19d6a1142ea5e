"""Eq. 3/8: per-sample entropy against a float64 python-loop twin, chunked == full, gradients, bounds."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wmss.method.entropy import (
    chunked_sample_entropy,
    sample_entropy,
    scored_token_counts,
    token_entropy,
)

IGNORE = -100


def naive_probs(row: list[float]) -> list[float]:
    m = max(row)
    exps = [math.exp(z - m) for z in row]
    total = sum(exps)
    return [e / total for e in exps]


def naive_entropy(row: list[float]) -> float:
    return -sum(p * math.log(p) for p in naive_probs(row) if p > 0)


def scored_positions(labels: list[list[int]]) -> list[list[int]]:
    # Causal convention written out: logits at t predict labels[t + 1].
    return [[t for t in range(len(row) - 1) if row[t + 1] != IGNORE] for row in labels]


def naive_sample_entropy(logits: torch.Tensor, labels: torch.Tensor) -> list[float]:
    z, lab = logits.double().tolist(), labels.tolist()
    out = []
    for b, positions in enumerate(scored_positions(lab)):
        ents = [naive_entropy(z[b][t]) for t in positions]
        out.append(sum(ents) / len(ents) if ents else 0.0)
    return out


def make_labels() -> torch.Tensor:
    # Sample 0: prompt then completion; 1: completion then right padding; 2: only labels[:, 0] set, which
    # nothing predicts, so no scored position; 3: fully trained.
    return torch.tensor(
        [
            [IGNORE, IGNORE, IGNORE, 4, 2, 6, 1],
            [IGNORE, 3, 0, 5, IGNORE, IGNORE, IGNORE],
            [2, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE],
            [1, 2, 3, 4, 5, 6, 0],
        ]
    )


def test_sample_entropy_matches_naive_loop() -> None:
    torch.manual_seed(0)
    labels = make_labels()
    logits = 3 * torch.randn(4, 7, 9, dtype=torch.float64)
    got = sample_entropy(logits, labels)
    assert got.dtype == torch.float64
    assert got.tolist() == pytest.approx(naive_sample_entropy(logits, labels), abs=1e-12)
    assert got[2].item() == 0.0
    assert scored_token_counts(labels).tolist() == [4, 3, 0, 6]


def test_scored_positions_follow_transformers_causal_shift() -> None:
    labels = make_labels()
    # ForCausalLMLoss pads labels on the right with ignore_index and drops the first column.
    shifted = torch.nn.functional.pad(labels, (0, 1), value=IGNORE)[:, 1:]
    assert scored_token_counts(labels).tolist() == (shifted != IGNORE).sum(1).tolist()


def test_sample_entropy_gradient_matches_closed_form() -> None:
    torch.manual_seed(1)
    labels = make_labels()
    logits = (2 * torch.randn(4, 7, 5, dtype=torch.float64)).requires_grad_()
    sample_w = torch.tensor([0.3, -1.2, 0.7, 2.0], dtype=torch.float64)
    (grad,) = torch.autograd.grad((sample_entropy(logits, labels) * sample_w).sum(), logits)

    # dH_t/dz_j = -p_j (log p_j + H_t); each sample averages over its scored positions.
    z, lab = logits.detach().tolist(), labels.tolist()
    expected = [[[0.0] * 5 for _ in range(7)] for _ in range(4)]
    for b, positions in enumerate(scored_positions(lab)):
        for t in positions:
            probs, h = naive_probs(z[b][t]), naive_entropy(z[b][t])
            for j, p in enumerate(probs):
                expected[b][t][j] = sample_w[b].item() * -p * (math.log(p) + h) / len(positions)
    torch.testing.assert_close(grad, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-12)


def test_token_entropy_special_rows() -> None:
    v = 6
    assert token_entropy(torch.zeros(v)).item() == pytest.approx(math.log(v), abs=1e-6)
    assert token_entropy(torch.tensor([0.0, -math.inf, -math.inf])).item() == 0.0
    assert token_entropy(torch.tensor([1.0, 2.0, -math.inf])).item() == pytest.approx(
        naive_entropy([1.0, 2.0])
    )
    peaked = token_entropy(torch.tensor([1e4, 0.0, -1e4])).item()
    assert 0.0 <= peaked < 1e-30


def test_bf16_logits_are_upcast_to_float32() -> None:
    torch.manual_seed(2)
    labels = make_labels()
    logits = (4 * torch.randn(4, 7, 9)).bfloat16()
    got = sample_entropy(logits, labels)
    assert got.dtype == torch.float32
    assert got.tolist() == pytest.approx(naive_sample_entropy(logits, labels), abs=1e-5)


def make_head(hidden: int, vocab: int, dtype: torch.dtype = torch.float64) -> torch.nn.Linear:
    head = torch.nn.Linear(hidden, vocab, bias=False).to(dtype)
    torch.nn.init.normal_(head.weight, std=1.0)
    return head


@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_chunked_equals_full(chunk_size: int) -> None:
    torch.manual_seed(3)
    labels = make_labels()
    hidden = torch.randn(4, 7, 5, dtype=torch.float64, requires_grad=True)
    head = make_head(5, 11)
    calls = []
    head.register_forward_hook(lambda *_: calls.append(1))

    got = chunked_sample_entropy(hidden, head, labels, chunk_size=chunk_size)
    assert not got.requires_grad
    n_scored = int(scored_token_counts(labels).sum())
    assert len(calls) == math.ceil(n_scored / chunk_size)
    with torch.no_grad():
        torch.testing.assert_close(got, sample_entropy(head(hidden), labels), rtol=0, atol=1e-12)
    assert got.tolist() == pytest.approx(naive_sample_entropy(head(hidden).detach(), labels), abs=1e-12)


def test_chunked_min_chunks_and_no_scored_tokens() -> None:
    torch.manual_seed(4)
    labels = torch.full((2, 5), IGNORE)
    head = make_head(3, 7)
    calls = []
    head.register_forward_hook(lambda *_: calls.append(1))
    got = chunked_sample_entropy(torch.randn(2, 5, 3, dtype=torch.float64), head, labels, min_chunks=3)
    assert got.tolist() == [0.0, 0.0]
    assert len(calls) == 3


def test_chunked_bf16_model() -> None:
    torch.manual_seed(5)
    labels = make_labels()
    hidden = torch.randn(4, 7, 8).bfloat16()
    head = make_head(8, 13, torch.bfloat16)
    got = chunked_sample_entropy(hidden, head, labels, chunk_size=2)
    assert got.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(got, sample_entropy(head(hidden), labels), rtol=0, atol=1e-6)


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="labels"):
        sample_entropy(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="chunk_size"):
        chunked_sample_entropy(
            torch.zeros(1, 3, 2), make_head(2, 3), torch.zeros(1, 3, dtype=torch.long), chunk_size=0
        )


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    vocab=st.integers(2, 40),
    scale=st.sampled_from([1e-3, 1.0, 10.0, 100.0]),
    seed=st.integers(0, 2**16),
)
def test_entropy_bounds(vocab: int, scale: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(3, 6, vocab, generator=gen)
    labels = torch.randint(0, vocab, (3, 6), generator=gen)
    labels[torch.rand(3, 6, generator=gen) < 0.4] = IGNORE
    log_v = math.log(vocab)
    ent = token_entropy(logits)
    assert torch.all(ent >= 0) and torch.all(ent <= log_v + 1e-5)
    per_sample = sample_entropy(logits, labels)
    assert torch.all(per_sample >= 0) and torch.all(per_sample <= log_v + 1e-5)
