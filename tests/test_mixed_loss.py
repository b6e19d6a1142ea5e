"""Eq. 11-12: mixed-logit CE against float64 loop twins and closed-form gradients; fused == chunked == reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode
from transformers.loss.loss_utils import ForCausalLMLoss

from wmss.errors import ModelError
from wmss.method.mixed_loss import (
    chunked_mixed_cross_entropy,
    fused_mixed_cross_entropy,
    gather_trained_positions,
    mixed_logit_cross_entropy,
    mixed_logits,
)

IGNORE = -100
B, T, H, V = 3, 6, 4, 9


def make_labels() -> torch.Tensor:
    # Prompt-masked, right-padded, and fully trained rows.
    return torch.tensor(
        [
            [IGNORE, IGNORE, 3, 1, 8, 0],
            [IGNORE, 2, 5, IGNORE, IGNORE, IGNORE],
            [4, 7, 6, 5, 4, 3],
        ]
    )


def trained(labels: list[list[int]]) -> list[tuple[int, int, int]]:
    # (sample, position, target): logits at t predict labels[t + 1].
    return [
        (b, t, row[t + 1])
        for b, row in enumerate(labels)
        for t in range(len(row) - 1)
        if row[t + 1] != IGNORE
    ]


def naive_mix_probs(zs: list[float], zw: list[float], lam: float) -> list[float]:
    z = [lam * a + (1 - lam) * b for a, b in zip(zs, zw, strict=True)]
    m = max(z)
    exps = [math.exp(v - m) for v in z]
    return [e / sum(exps) for e in exps]


def naive_loss(strong: torch.Tensor, weak: torch.Tensor, labels: torch.Tensor, lam: float) -> float:
    zs, zw = strong.detach().double().tolist(), weak.detach().double().tolist()
    items = trained(labels.tolist())
    nll = [-math.log(naive_mix_probs(zs[b][t], zw[b][t], lam)[y]) for b, t, y in items]
    return sum(nll) / len(nll)


def random_logits(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    strong = (2 * torch.randn(B, T, V, generator=gen, dtype=torch.float64)).requires_grad_()
    weak = (2 * torch.randn(B, T, V, generator=gen, dtype=torch.float64)).requires_grad_()
    return strong, weak


@pytest.mark.parametrize("lam", [0.5, 0.3, 0.85])
def test_reference_matches_naive_value_and_closed_form_gradients(lam: float) -> None:
    strong, weak = random_logits(0)
    labels = make_labels()
    loss = mixed_logit_cross_entropy(strong, weak, labels, lam=lam)
    assert loss.item() == pytest.approx(naive_loss(strong, weak, labels, lam), abs=1e-12)

    g_strong, g_weak = torch.autograd.grad(loss, (strong, weak))
    # dL/dz_strong = λ(P_mix - e_y)/N and dL/dz_weak = (1-λ)(P_mix - e_y)/N at trained positions, else 0.
    zs, zw = strong.detach().tolist(), weak.detach().tolist()
    items = trained(labels.tolist())
    residual = torch.zeros(B, T, V, dtype=torch.float64)
    for b, t, y in items:
        probs = naive_mix_probs(zs[b][t], zw[b][t], lam)
        residual[b, t] = torch.tensor([p - (v == y) for v, p in enumerate(probs)], dtype=torch.float64)
    residual /= len(items)
    torch.testing.assert_close(g_strong, lam * residual, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(g_weak, (1 - lam) * residual, rtol=1e-10, atol=1e-13)
    untouched = torch.ones(B, T, dtype=torch.bool)
    for b, t, _ in items:
        untouched[b, t] = False
    assert torch.all(g_strong[untouched] == 0) and torch.all(g_weak[untouched] == 0)


@pytest.mark.parametrize("lam", [1.0, 0.0])
def test_endpoints_reduce_to_plain_cross_entropy(lam: float) -> None:
    strong, weak = random_logits(1)
    labels = make_labels()
    active, other = (strong, weak) if lam == 1.0 else (weak, strong)
    loss = mixed_logit_cross_entropy(strong, weak, labels, lam=lam)
    plain = F.cross_entropy(active[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=IGNORE)
    torch.testing.assert_close(loss, plain, rtol=1e-12, atol=0)
    # transformers downcasts to float32, hence the looser tolerance; the positions it scores must match ours.
    assert loss.item() == pytest.approx(ForCausalLMLoss(active, labels, vocab_size=V).item(), rel=1e-6)
    g_active, g_other = torch.autograd.grad(loss, (active, other))
    torch.testing.assert_close(g_active, torch.autograd.grad(plain, active)[0], rtol=1e-12, atol=1e-15)
    assert torch.all(g_other == 0)


def test_no_trained_positions_gives_graph_connected_zero() -> None:
    strong, weak = random_logits(2)
    labels = torch.full((B, T), IGNORE)
    labels[:, 0] = 1  # first column is never a target
    loss = mixed_logit_cross_entropy(strong, weak, labels)
    assert loss.item() == 0.0 and loss.requires_grad
    g_strong, g_weak = torch.autograd.grad(loss, (strong, weak))
    assert torch.all(g_strong == 0) and torch.all(g_weak == 0)


def test_bf16_logits_mixed_in_float32() -> None:
    strong, weak = random_logits(3)
    labels = make_labels()
    loss = mixed_logit_cross_entropy(strong.bfloat16(), weak.bfloat16(), labels)
    assert loss.dtype == torch.float32
    expected = naive_loss(strong.bfloat16(), weak.bfloat16(), labels, 0.5)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_invalid_inputs() -> None:
    strong, weak = random_logits(4)
    with pytest.raises(ModelError, match="vocabulary"):
        mixed_logits(strong, weak[..., :-1])
    with pytest.raises(ValueError, match="lam"):
        mixed_logits(strong, weak, lam=1.5)
    with pytest.raises(ValueError, match="labels"):
        mixed_logit_cross_entropy(strong, weak, make_labels()[:, :-1])
    with pytest.raises(ValueError, match="chunk_size"):
        chunked_mixed_cross_entropy(
            strong[0],
            weak[0],
            torch.nn.Identity(),
            torch.nn.Identity(),
            torch.zeros(T, dtype=torch.long),
            chunk_size=0,
        )


def make_models(
    seed: int, n_hidden: int = H
) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Linear, torch.nn.Linear]:
    torch.manual_seed(seed)
    h_strong = torch.randn(B, T, n_hidden, dtype=torch.float64, requires_grad=True)
    h_weak = torch.randn(B, T, n_hidden, dtype=torch.float64, requires_grad=True)
    heads = [torch.nn.Linear(n_hidden, V, bias=False).double() for _ in range(2)]
    for head in heads:
        torch.nn.init.normal_(head.weight)
    return h_strong, h_weak, heads[0], heads[1]


def test_gather_trained_positions() -> None:
    h_strong, _, _, _ = make_models(5)
    labels = make_labels()
    rows, targets = gather_trained_positions(h_strong, labels)
    items = trained(labels.tolist())
    assert targets.tolist() == [y for _, _, y in items]
    torch.testing.assert_close(rows, torch.stack([h_strong[b, t] for b, t, _ in items]), rtol=0, atol=0)


@pytest.mark.parametrize("chunk_size", [1, 5, 1000])
@pytest.mark.parametrize("frozen_weak", [False, True])
def test_chunked_equals_reference(chunk_size: int, frozen_weak: bool) -> None:
    h_strong, h_weak, head_s, head_w = make_models(6)
    if frozen_weak:
        h_weak = h_weak.detach()
        head_w.requires_grad_(False)
    labels = make_labels()
    lam = 0.4
    ref = mixed_logit_cross_entropy(head_s(h_strong), head_w(h_weak), labels, lam=lam)

    rows_s, targets = gather_trained_positions(h_strong, labels)
    rows_w, _ = gather_trained_positions(h_weak, labels)
    loss = chunked_mixed_cross_entropy(rows_s, rows_w, head_s, head_w, targets, lam, chunk_size) / len(
        targets
    )
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=0)

    params = [h_strong, head_s.weight] if frozen_weak else [h_strong, h_weak, head_s.weight, head_w.weight]
    for got, want in zip(torch.autograd.grad(loss, params), torch.autograd.grad(ref, params), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-13)
    if frozen_weak:
        rows_s, _ = gather_trained_positions(h_strong, labels)
        loss = chunked_mixed_cross_entropy(rows_s, rows_w, head_s, head_w, targets, lam, chunk_size)
        loss.backward()
        assert head_w.weight.grad is None and h_weak.grad is None
        assert head_s.weight.grad is not None


def test_chunked_keeps_no_full_vocab_tensor_for_backward() -> None:
    torch.manual_seed(7)
    n, chunk = 60, 8
    h_strong = torch.randn(n, H, requires_grad=True)
    h_weak = torch.randn(n, H, requires_grad=True)
    head_s, head_w = torch.nn.Linear(H, V, bias=False), torch.nn.Linear(H, V, bias=False)
    targets = torch.randint(0, V, (n,))

    def saved_numels(fn: object) -> list[int]:
        numels: list[int] = []

        def pack(t: torch.Tensor) -> torch.Tensor:
            numels.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()  # type: ignore[operator]
        return numels

    chunked = saved_numels(
        lambda: chunked_mixed_cross_entropy(h_strong, h_weak, head_s, head_w, targets, 0.5, chunk)
    )
    # Only the [chunk, H] inputs and targets are kept; even one chunk's logits are recomputed in backward.
    assert max(chunked) < chunk * V
    # Control: the unchunked reference does save [N, V] tensors, so the hook would catch one.
    full = saved_numels(
        lambda: mixed_logit_cross_entropy(head_s(h_strong)[None], head_w(h_weak)[None], targets[None], 0.5)
    )
    assert max(full) >= (n - 1) * V

    loss = chunked_mixed_cross_entropy(h_strong, h_weak, head_s, head_w, targets, 0.5, chunk)
    loss.backward()
    assert torch.isfinite(h_strong.grad).all() and torch.isfinite(head_w.weight.grad).all()


def test_chunked_empty_batch_calls_heads_and_yields_zero_grads() -> None:
    _, _, head_s, head_w = make_models(8)
    calls: list[int] = []
    head_s.register_forward_hook(lambda *_: calls.append(1))
    empty = torch.zeros(0, H, dtype=torch.float64, requires_grad=True)
    loss = chunked_mixed_cross_entropy(
        empty, empty, head_s, head_w, torch.zeros(0, dtype=torch.long), chunk_size=4, min_chunks=2
    )
    assert len(calls) == 2
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(head_s.weight.grad == 0) and torch.all(head_w.weight.grad == 0)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(lam=st.floats(0.0, 1.0), scale=st.sampled_from([0.1, 1.0, 20.0]), seed=st.integers(0, 2**16))
def test_mixed_ce_equals_direct_log_softmax(lam: float, scale: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    strong = scale * torch.randn(2, 5, 7, generator=gen, dtype=torch.float64)
    weak = scale * torch.randn(2, 5, 7, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 7, (2, 5), generator=gen)
    labels[torch.rand(2, 5, generator=gen) < 0.3] = IGNORE
    loss = mixed_logit_cross_entropy(strong, weak, labels, lam=lam)

    mask = labels[:, 1:] != IGNORE
    logp = torch.log_softmax(lam * strong[:, :-1] + (1 - lam) * weak[:, :-1], dim=-1)
    nll = -logp.gather(-1, labels[:, 1:].clamp(min=0)[..., None])[..., 0]
    direct = nll[mask].sum() / max(int(mask.sum()), 1)
    assert torch.isfinite(loss) and loss.item() >= 0
    torch.testing.assert_close(loss, direct, rtol=1e-12, atol=1e-12)


def naive_fused_twin(
    hs: torch.Tensor,
    hw: torch.Tensor | None,
    ws: torch.Tensor,
    ww: torch.Tensor | None,
    y: torch.Tensor,
    lam: float,
) -> tuple[float, list[list[list[float]]]]:
    """Float64 loops: summed mixed CE and its closed-form gradients [dh_s, dW_s, dh_w, dW_w] (no autograd)."""
    hs_, ws_ = hs.detach().double().tolist(), ws.detach().double().tolist()
    terms = [(hs_, ws_, lam)]
    if hw is not None:
        terms.append((hw.detach().double().tolist(), ww.detach().double().tolist(), 1 - lam))
    grads = [
        [[0.0] * len(h[0]) for _ in h] if not i % 2 else [[0.0] * len(w[0]) for _ in w]
        for h, w, _ in terms
        for i in (0, 1)
    ]
    total = 0.0
    for n, target in enumerate(y.tolist()):
        z = [
            sum(s * sum(a * b for a, b in zip(h[n], w[v], strict=True)) for h, w, s in terms)
            for v in range(len(ws_))
        ]
        m = max(z)
        exps = [math.exp(v - m) for v in z]
        total += math.log(sum(exps)) + m - z[target]
        residual = [e / sum(exps) - (v == target) for v, e in enumerate(exps)]
        for i, (h, w, s) in enumerate(terms):
            for v, r in enumerate(residual):
                for k in range(len(h[n])):
                    grads[2 * i][n][k] += s * r * w[v][k]
                    grads[2 * i + 1][v][k] += s * r * h[n][k]
    return total, grads


def fused_inputs(
    seed: int, n: int = 11, h_strong: int = 5, h_weak: int = 3, vocab: int = V, scale: float = 1.0
):
    gen = torch.Generator().manual_seed(seed)
    tensors = [
        scale * torch.randn(shape, generator=gen, dtype=torch.float64)
        for shape in ((n, h_strong), (vocab, h_strong), (n, h_weak), (vocab, h_weak))
    ]
    return [t.requires_grad_() for t in tensors], torch.randint(0, vocab, (n,), generator=gen)


@pytest.mark.parametrize("chunk_size", [1, 4, 1000])
@pytest.mark.parametrize("weak", ["co-trained", "frozen", "uniform"])
def test_fused_matches_naive_twin_in_value_and_gradients(chunk_size: int, weak: str) -> None:
    (hs, ws, hw, ww), y = fused_inputs(9)
    lam = 0.3
    if weak == "frozen":
        hw, ww = hw.detach(), ww.detach()
    if weak == "uniform":
        hw = ww = None
    loss = fused_mixed_cross_entropy(hs, hw, ws, ww, y, lam, chunk_size)
    want_loss, want_grads = naive_fused_twin(hs, hw, ws, ww, y, lam)
    assert loss.item() == pytest.approx(want_loss, rel=1e-12)
    trained_inputs = [hs, ws] + ([hw, ww] if weak == "co-trained" else [])
    grads = torch.autograd.grad(3.0 * loss, trained_inputs)  # an upstream factor is applied in backward
    for got, want in zip(grads, want_grads, strict=False):
        torch.testing.assert_close(got, 3.0 * torch.tensor(want, dtype=torch.float64), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("frozen_weak", [False, True])
def test_fused_equals_reference_and_recompute_paths(frozen_weak: bool) -> None:
    h_strong, h_weak, head_s, head_w = make_models(10)
    if frozen_weak:
        h_weak = h_weak.detach()
        head_w.requires_grad_(False)
    labels = make_labels()
    rows_s, targets = gather_trained_positions(h_strong, labels)
    rows_w, _ = gather_trained_positions(h_weak, labels)
    fused = fused_mixed_cross_entropy(rows_s, rows_w, head_s.weight, head_w.weight, targets, 0.7, 2) / len(
        targets
    )
    ref = mixed_logit_cross_entropy(head_s(h_strong), head_w(h_weak), labels, lam=0.7)
    torch.testing.assert_close(fused, ref, rtol=1e-12, atol=0)
    params = [h_strong, head_s.weight] + ([] if frozen_weak else [h_weak, head_w.weight])
    fused.backward()
    got = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    ref.backward()
    for g, p in zip(got, params, strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-10, atol=1e-13)
    if frozen_weak:
        assert head_w.weight.grad is None and h_weak.grad is None


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    lam=st.floats(0.0, 1.0),
    scale=st.sampled_from([0.1, 1.0, 8.0]),
    n=st.integers(0, 9),
    chunk_size=st.integers(1, 10),
    seed=st.integers(0, 2**16),
)
def test_fused_property_matches_twin(lam: float, scale: float, n: int, chunk_size: int, seed: int) -> None:
    (hs, ws, hw, ww), y = fused_inputs(seed, n=n, h_strong=3, h_weak=2, vocab=6, scale=scale)
    loss = fused_mixed_cross_entropy(hs, hw, ws, ww, y, lam, chunk_size)
    want_loss, want_grads = naive_fused_twin(hs, hw, ws, ww, y, lam)
    assert loss.item() == pytest.approx(want_loss, rel=1e-10, abs=1e-12) and loss.item() >= 0
    # n == 0 still yields a graph-connected zero with zero gradients for every input.
    for got, want in zip(torch.autograd.grad(loss, [hs, ws, hw, ww]), want_grads, strict=True):
        torch.testing.assert_close(
            got, torch.tensor(want, dtype=torch.float64).reshape(got.shape), rtol=1e-9, atol=1e-10
        )


class _OpLog(TorchDispatchMode):
    """Records every aten op with the element count of its largest output."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        sizes = [t.numel() for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        self.ops.append((func.__name__, max(sizes, default=0)))
        return out


def test_fused_holds_one_chunk_of_logits_and_recomputes_nothing_in_backward() -> None:
    (hs, ws, hw, ww), y = fused_inputs(11, n=40, vocab=50)
    chunk = 8
    with _OpLog() as forward:
        loss = fused_mixed_cross_entropy(hs, hw, ws, ww, y, 0.5, chunk)
    with _OpLog() as backward:
        loss.backward()
    assert max(size for _, size in forward.ops) == chunk * 50  # one [chunk, V] buffer, never [N, V]
    matmuls = [name for name, _ in forward.ops if name.split(".")[0] in ("mm", "addmm", "addmm_")]
    assert len(matmuls) == 6 * (40 // chunk)  # per chunk: 2 for the logits, 4 for the gradients
    assert not [name for name, _ in backward.ops if "mm" in name]  # backward only scales the stored gradients
    again = fused_mixed_cross_entropy(hs, hw, ws, ww, y, 0.5, chunk)
    again.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="already backpropagated"):  # the stored gradients are spent
        again.backward()


def test_fused_under_no_grad_computes_no_gradients() -> None:
    (hs, ws, hw, ww), y = fused_inputs(12, n=16)
    with torch.no_grad(), _OpLog() as log:
        loss = fused_mixed_cross_entropy(hs, hw, ws, ww, y, 0.5, 4)
    assert not loss.requires_grad
    assert len([name for name, _ in log.ops if "mm" in name]) == 2 * 4


def test_fused_low_precision_inputs_accumulate_in_float32() -> None:
    (hs, ws, hw, ww), y = fused_inputs(13, n=12)
    low = [t.detach().bfloat16().requires_grad_() for t in (hs, ws, hw, ww)]
    loss = fused_mixed_cross_entropy(low[0], low[2], low[1], low[3], y, 0.5, 5)
    assert loss.dtype == torch.float32
    want_loss, _ = naive_fused_twin(low[0].float(), low[2].float(), low[1].float(), low[3].float(), y, 0.5)
    assert loss.item() == pytest.approx(want_loss, rel=1e-5)
    loss.backward()
    assert all(t.grad.dtype == torch.bfloat16 for t in low)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # CPU runs the matmuls in float32 even under autocast
        auto = fused_mixed_cross_entropy(hs.float(), hw.float(), ws.float(), ww.float(), y, 0.5, 5)
    plain = fused_mixed_cross_entropy(hs.float(), hw.float(), ws.float(), ww.float(), y, 0.5, 5)
    assert auto.dtype == torch.float32 and auto.item() == plain.item()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fused_cuda_bf16_autocast_matches_float64() -> None:
    (hs, ws, hw, ww), y = fused_inputs(14, n=300, h_strong=64, h_weak=32, vocab=1000)
    cuda = [t.detach().float().cuda().requires_grad_() for t in (hs, ws, hw, ww)]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = fused_mixed_cross_entropy(cuda[0], cuda[2], cuda[1], cuda[3], y.cuda(), 0.5, 128)
    loss.backward()
    assert loss.dtype == torch.float32 and all(t.grad.dtype == torch.float32 for t in cuda)
    ref = fused_mixed_cross_entropy(hs, hw, ws, ww, y, 0.5, 1000)
    ref_grads = torch.autograd.grad(ref, [hs, ws, hw, ww])
    assert loss.item() == pytest.approx(ref.item(), rel=2e-2)
    for t, want in zip(cuda, ref_grads, strict=True):
        torch.testing.assert_close(
            t.grad.double().cpu(), want, rtol=5e-2, atol=5e-2 * want.abs().max().item()
        )
