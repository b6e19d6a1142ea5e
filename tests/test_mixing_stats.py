"""`mixing_stats` (the token-level premises of WMSS) against a float64 python-loop twin with autograd gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from wmss import defaults
from wmss.compare import diagnostics
from wmss.compare.diagnostics import MIXING_STATS, mixing_stats

IGNORE = -100


def naive_margin(z: torch.Tensor, y: int) -> float:
    return z[y].item() - max(z[k].item() for k in range(z.numel()) if k != y)


def naive_mixing_stats(strong: torch.Tensor, weak: torch.Tensor, labels: torch.Tensor, lam: float) -> dict:
    """Position by position in float64; gradients of each position's CE w.r.t. z_strong by autograd."""
    counts = dict.fromkeys(MIXING_STATS[:4], 0.0)
    grad = {"sft_err": 0.0, "sft_all": 0.0, "mix_err": 0.0, "mix_all": 0.0}
    n = 0
    batch, length, _ = strong.shape
    for b in range(batch):
        for t in range(length - 1):
            y = int(labels[b, t + 1])
            if y == IGNORE:
                continue
            n += 1
            zs = strong[b, t].double().clone().requires_grad_(True)
            zw = weak[b, t].double()
            ps, pw = torch.softmax(zs, 0), torch.softmax(zw, 0)
            h = [-(p * torch.log(p)).sum().item() for p in (ps, pw)]
            counts["frac_weak_more_uncertain"] += h[1] > h[0]
            z_mix = lam * zs + (1 - lam) * zw
            counts["frac_mix_lowers_target"] += torch.softmax(z_mix, 0)[y].item() < ps[y].item()

            counts["frac_weak_margin_le_strong"] += naive_margin(zw, y) <= naive_margin(zs, y)
            counts["frac_weak_confidently_wrong"] += int(zw.argmax()) != y and pw.max().item() > 0.9
            (g_sft,) = torch.autograd.grad(F.cross_entropy(zs[None], torch.tensor([y])), zs)
            (g_mix,) = torch.autograd.grad(F.cross_entropy(z_mix[None], torch.tensor([y])), zs)
            wrong = int(zs.argmax()) != y
            grad["sft_all"] += g_sft.norm().item()
            grad["mix_all"] += g_mix.norm().item()
            if wrong:
                grad["sft_err"] += g_sft.norm().item()
                grad["mix_err"] += g_mix.norm().item()
    result = {key: value / n for key, value in counts.items()}
    result["grad_share_strong_errors_sft"] = grad["sft_err"] / grad["sft_all"]
    result["grad_share_strong_errors_mixed"] = grad["mix_err"] / grad["mix_all"]
    return result


def _case(seed: int, batch: int = 3, length: int = 6, vocab: int = 7, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    strong = torch.randn(batch, length, vocab, generator=g) * scale
    weak = torch.randn(batch, length, vocab, generator=g) * scale
    labels = torch.randint(0, vocab, (batch, length), generator=g)
    labels[:, :2] = IGNORE  # a prompt
    labels[0, -1] = IGNORE  # padding
    return strong, weak, labels


@pytest.mark.parametrize("lam", [0.5, 0.2, 0.9])
def test_matches_float64_twin(lam: float) -> None:
    strong, weak, labels = _case(0)
    got = mixing_stats(strong, weak, labels, lam=lam)
    want = naive_mixing_stats(strong, weak, labels, lam)
    for key in MIXING_STATS:
        assert got[key] == pytest.approx(want[key], abs=1e-5), key
    assert got["n_positions"] == int((labels[:, 1:] != IGNORE).sum())


def test_confidently_wrong_and_saturated_strong() -> None:
    # Position 0: the weak model is confidently wrong and the strong one is right and saturated.
    strong = torch.tensor([[[10.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    weak = torch.tensor([[[0.0, 12.0, 0.0], [0.0, 0.0, 0.0]]])
    labels = torch.tensor([[IGNORE, 0]])
    got = mixing_stats(strong, weak, labels)
    assert got["frac_weak_confidently_wrong"] == 1.0
    assert got["frac_mix_lowers_target"] == 1.0
    assert got["frac_weak_margin_le_strong"] == 1.0
    assert got["frac_weak_more_uncertain"] == 0.0  # more confident than the strong model, though wrong
    assert got["grad_share_strong_errors_sft"] == 0.0  # the strong model makes no error


def test_chunking_does_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    strong, weak, labels = _case(3, batch=4, length=9)
    whole = mixing_stats(strong, weak, labels)
    monkeypatch.setattr(defaults, "CHUNK_SIZE", 2)
    monkeypatch.setattr(diagnostics.defaults, "CHUNK_SIZE", 2)
    chunked = mixing_stats(strong, weak, labels)
    for key in MIXING_STATS:
        assert chunked[key] == pytest.approx(whole[key], abs=1e-6)


def test_every_label_ignored_is_refused() -> None:
    strong, weak, labels = _case(1)
    with pytest.raises(ValueError, match="no trained positions"):
        mixing_stats(strong, weak, torch.full_like(labels, IGNORE))


def test_shape_mismatch_is_refused() -> None:
    strong, weak, labels = _case(1)
    with pytest.raises(ValueError, match="differ in shape"):
        mixing_stats(strong, weak[:, :-1], labels)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), lam=st.floats(0.05, 1.0), scale=st.floats(0.1, 20.0))
def test_properties(seed: int, lam: float, scale: float) -> None:
    strong, weak, labels = _case(seed, scale=scale)
    got = mixing_stats(strong, weak, labels, lam=lam)
    assert all(0.0 <= got[key] <= 1.0 for key in MIXING_STATS)
    same = mixing_stats(strong, strong, labels, lam=lam)
    # Against itself the weak model is never more uncertain, its margin always <= its own, and mixing is a no-op.
    assert same["frac_weak_more_uncertain"] == 0.0
    assert same["frac_weak_margin_le_strong"] == 1.0
    assert same["frac_mix_lowers_target"] == 0.0
    if math.isclose(lam, 1.0):
        assert got["frac_mix_lowers_target"] == 0.0


def test_public_address() -> None:
    from wmss import diagnostics as public

    assert public.mixing_stats is mixing_stats and public.logit_stats is diagnostics.logit_stats
