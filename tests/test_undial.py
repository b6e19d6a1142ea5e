"""UNDIAL's loss against a naive float64 twin (value and gradients), and its trainer on a tiny model."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wmss.compare.undial import undial_loss_sum, undial_targets


def naive_undial(student, teacher, targets, beta, noise=None):
    """Row by row, element by element: -sum_v q_v log p_v with q = softmax(z_t - beta*s*e_y)."""
    total = 0.0
    for row in range(student.shape[0]):
        y = int(targets[row])
        shift = 1.0 if noise is None else float(noise[row])
        adjusted = [
            float(teacher[row, v]) - (beta * shift if v == y else 0.0) for v in range(teacher.shape[1])
        ]
        top = max(adjusted)
        weights = [math.exp(a - top) for a in adjusted]
        q = [w / sum(weights) for w in weights]
        logits = [student[row, v] for v in range(student.shape[1])]
        log_norm = torch.logsumexp(torch.stack(logits), dim=0)
        total = total - sum(q[v] * (logits[v] - log_norm) for v in range(len(logits)))
    return total


def test_loss_and_gradient_match_naive_twin():
    torch.manual_seed(0)
    student = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(5, 7, dtype=torch.float64)
    targets = torch.tensor([0, 3, 6, 3, 1])
    for noise in (None, torch.randn(5, dtype=torch.float64)):
        loss = undial_loss_sum(student, teacher, targets, beta=10.0, noise=noise)
        (grad,) = torch.autograd.grad(loss, student)
        twin = naive_undial(student, teacher, targets, 10.0, noise)
        (twin_grad,) = torch.autograd.grad(twin, student)
        torch.testing.assert_close(loss, twin, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad, twin_grad, rtol=1e-10, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(2, 9), st.floats(0.0, 30.0), st.integers(0, 10_000))
def test_targets_are_distributions_with_the_target_pushed_down(n, vocab, beta, seed):
    generator = torch.Generator().manual_seed(seed)
    teacher = torch.randn(n, vocab, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, vocab, (n,), generator=generator)
    soft = undial_targets(teacher, targets, beta)
    torch.testing.assert_close(soft.sum(-1), torch.ones(n, dtype=torch.float64))
    plain = teacher.softmax(-1)
    rows = torch.arange(n)
    # Subtracting beta >= 0 from the target logit can only lower the target's probability.
    assert bool((soft[rows, targets] <= plain[rows, targets] + 1e-12).all())


def test_beta_zero_is_self_distillation():
    torch.manual_seed(1)
    teacher = torch.randn(4, 6, dtype=torch.float64)
    targets = torch.tensor([1, 2, 3, 4])
    torch.testing.assert_close(undial_targets(teacher, targets, 0.0), teacher.softmax(-1))
