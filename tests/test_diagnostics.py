"""Logit statistics against a float64 python-loop twin, the gradient probe against autograd, `diagnose` and its CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wmss.cli import main
from wmss.compare import diagnostics
from wmss.compare.diagnostics import (
    STATS,
    diagnose,
    gradient_norms,
    gradient_probe,
    logit_stats,
    relative_change,
    summarize_gradient_norms,
)
from wmss.config import load_config
from wmss.errors import ConfigError
from wmss.models import load_causal_lm, load_tokenizer
from wmss.phases.common import load_training_data

IGNORE = -100


def naive_row_stats(z: list[float], y: int) -> dict[str, float]:
    v = len(z)
    mean = sum(z) / v
    distractors = [z[i] for i in range(v) if i != y]
    m = max(z)
    total = sum(math.exp(x - m) for x in z)
    probs = [math.exp(x - m) / total for x in z]
    return {
        "target_logit": z[y],
        "distractor_logit_mean": sum(distractors) / len(distractors),
        "gap": z[y] - sum(distractors) / len(distractors),
        "margin": z[y] - max(distractors),
        "logit_std": math.sqrt(sum((x - mean) ** 2 for x in z) / v),
        "mean_logit": mean,
        "centered_norm": math.sqrt(sum((x - mean) ** 2 for x in z)),
        "max_logit": m,
        "min_logit": min(z),
        "l2_norm": math.sqrt(sum(x * x for x in z)),
        "entropy": -sum(p * math.log(p) for p in probs if p > 0),
        "max_prob": max(probs),
    }


def naive_logit_stats(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    z, lab = logits.double().tolist(), labels.tolist()
    rows = [
        naive_row_stats(z[b][t], lab[b][t + 1])
        for b in range(len(lab))
        for t in range(len(lab[b]) - 1)
        if lab[b][t + 1] != IGNORE
    ]
    return {key: sum(r[key] for r in rows) / len(rows) for key in rows[0]}


def make_batch(
    seed: int, dtype: torch.dtype = torch.float64, vocab: int = 11
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(3, 6, vocab, generator=gen, dtype=torch.float64)).to(dtype)
    labels = torch.randint(0, vocab, (3, 6), generator=gen)
    labels[0, :3] = IGNORE  # a prompt
    labels[1, :] = IGNORE  # a sample without trained positions
    labels[2, 4:] = IGNORE  # padding
    return logits, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logit_stats_match_naive_float64_loop(seed):
    logits, labels = make_batch(seed)
    got = logit_stats(logits, labels)
    assert list(got) == list(STATS)
    want = naive_logit_stats(logits, labels)
    for key in STATS:
        assert got[key] == pytest.approx(want[key], rel=1e-10, abs=1e-12), key


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_logits_are_computed_in_float32(dtype):
    logits, labels = make_batch(3, dtype, vocab=300)
    got = logit_stats(logits, labels)
    want = naive_logit_stats(logits, labels)  # the same (rounded) logits, in float64
    for key in STATS:
        assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-5), key


def test_ignored_positions_do_not_count(monkeypatch):
    logits, labels = make_batch(4)
    reference = logit_stats(logits, labels)
    changed = logits.clone()
    changed[1] = 100.0  # a sample with no trained label
    changed[0, :2] = -50.0  # positions predicting prompt tokens
    changed[:, -1] = 7.0  # the last position predicts nothing
    assert logit_stats(changed, labels) == pytest.approx(reference, rel=1e-12)
    monkeypatch.setattr(diagnostics.defaults, "CHUNK_SIZE", 2)  # chunk boundaries change nothing
    assert logit_stats(logits, labels) == pytest.approx(reference, rel=1e-12)


def test_logit_stats_refuses_no_positions_and_bad_shapes():
    logits, labels = make_batch(5)
    with pytest.raises(ValueError, match="no trained positions"):
        logit_stats(logits, torch.full_like(labels, IGNORE))
    with pytest.raises(ValueError, match="expected logits"):
        logit_stats(logits[0], labels)


def autograd_norms(strong, weak, labels, lam):
    mask = labels[:, 1:] != IGNORE
    targets = labels[:, 1:][mask]
    out = []
    for mixed in (False, True):
        z = strong.clone().requires_grad_(True)
        rows = z[:, :-1][mask]
        if mixed:
            rows = lam * rows + (1 - lam) * weak[:, :-1][mask]
        F.cross_entropy(rows, targets, reduction="sum").backward()
        # With a summed loss, the gradient row of a position is the gradient of that position's own loss.
        out.append(z.grad[:, :-1][mask].norm(dim=1))
    return out


@pytest.mark.parametrize(("seed", "lam"), [(0, 0.5), (1, 0.3), (2, 1.0), (3, 0.0)])
def test_gradient_probe_matches_autograd_float64(seed, lam):
    strong, labels = make_batch(seed)
    weak, _ = make_batch(seed + 10)
    plain, mixed = autograd_norms(strong, weak, labels, lam)
    got = gradient_probe(strong, weak, labels, lam=lam)
    for name, norms in (("plain", plain), ("mixed", mixed)):
        v = norms.numpy()
        assert got[f"{name}_mean"] == pytest.approx(v.mean(), rel=1e-10)
        assert got[f"{name}_median"] == pytest.approx(np.median(v), rel=1e-10)
        assert got[f"{name}_p10"] == pytest.approx(np.percentile(v, 10), rel=1e-10)
        assert got[f"{name}_p90"] == pytest.approx(np.percentile(v, 90), rel=1e-10)
    assert got["mixed_over_plain"] == pytest.approx(mixed.mean().item() / plain.mean().item(), rel=1e-10)
    assert got["n_positions"] == plain.numel()


def test_gradient_norms_stay_accurate_where_plain_ce_saturates():
    vocab, targets = 50, torch.tensor([3, 7])
    strong = torch.zeros(2, vocab)
    strong[0, 3], strong[1, 7] = 25.0, 30.0  # p_y within 1e-9 of 1 in float32
    weak = torch.zeros(2, vocab)  # uniform weak model
    plain, mixed = gradient_norms(strong, weak, targets, lam=0.5)
    want_plain, want_mixed = autograd_norms(
        strong.double()[:, None].expand(2, 2, vocab).contiguous(),
        weak.double()[:, None].expand(2, 2, vocab).contiguous(),
        torch.stack([torch.full((2,), IGNORE), targets], dim=1),
        0.5,
    )
    assert plain.double() == pytest.approx(want_plain, rel=1e-4)
    assert mixed.double() == pytest.approx(want_mixed, rel=1e-4)
    assert (plain < 1e-8).all() and (mixed > 1e-6).all()  # Appendix B: the weak partner keeps gradients alive


def test_summary_and_relative_change():
    summary = summarize_gradient_norms(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 6.0]), 0.5)
    assert summary["plain_median"] == 2.0 and summary["mixed_over_plain"] == 2.0 and summary["lam"] == 0.5
    with pytest.raises(ValueError):
        summarize_gradient_norms(torch.zeros(0), torch.zeros(0), 0.5)
    change = relative_change({"a": 2.0, "b": -4.0, "c": 0.0}, {"a": 3.0, "b": -2.0, "c": 1.0})
    assert change == {"a": 50.0, "b": 50.0, "c": None}


@pytest.fixture(scope="module")
def tokenised(tiny_model_dir, train_jsonl):
    config = load_config(values={"data.train": str(train_jsonl)})
    return load_training_data(config, load_tokenizer(str(tiny_model_dir)))


def test_diagnose_equals_per_example_full_forward(tiny_model_dir, tiny_model_dir_2, tokenised):
    models = {"m0": str(tiny_model_dir), "m1": str(tiny_model_dir_2)}
    result = diagnose(models, tokenised, n=100, seed=0, weak=str(tiny_model_dir), lam=0.5, batch_size=5)
    json.dumps(result)  # JSON-able
    dataset = tokenised.dataset
    assert result["n_samples"] == len(dataset)
    weak = load_causal_lm(str(tiny_model_dir)).eval()
    for name, path in models.items():
        model = load_causal_lm(path).eval()
        sums, n, plain, mixed = dict.fromkeys(STATS, 0.0), 0, [], []
        with torch.no_grad():
            for row in dataset:  # one unpadded sequence at a time, through the model's own forward
                ids, labels = torch.tensor([row["input_ids"]]), torch.tensor([row["labels"]])
                logits, weak_logits = model(ids).logits, weak(ids).logits
                count = int((labels[0, 1:] != IGNORE).sum())
                for key, value in logit_stats(logits, labels).items():
                    sums[key] += value * count
                n += count
                mask = labels[0, 1:] != IGNORE
                p, m = gradient_norms(logits[0, :-1][mask], weak_logits[0, :-1][mask], labels[0, 1:][mask])
                plain.append(p)
                mixed.append(m)
        assert result["n_positions"] == n
        for key in STATS:
            assert result[name][key] == pytest.approx(sums[key] / n, rel=1e-4, abs=1e-5), (name, key)
        want = summarize_gradient_norms(torch.cat(plain), torch.cat(mixed), 0.5)
        assert result["gradient_probe"][name] == pytest.approx(want, rel=1e-4)
    # Against itself the mixed gradient is exactly λ times the plain one.
    assert result["gradient_probe"]["m0"]["mixed_over_plain"] == pytest.approx(0.5, rel=1e-6)


def test_diagnose_draw_is_seeded(tiny_model_dir, tokenised):
    models = {"m0": str(tiny_model_dir)}
    first = diagnose(models, tokenised, n=5, seed=3)
    assert first == diagnose(models, tokenised, n=5, seed=3)
    assert first["n_samples"] == 5 and first["gradient_probe"] == {}
    with pytest.raises(ConfigError, match="reserved"):
        diagnose({"n_samples": str(tiny_model_dir)}, tokenised)


def test_diagnose_cli_writes_json_and_prints_a_table(
    tiny_model_dir, tiny_model_dir_2, train_jsonl, tmp_path, capsys
):
    out = tmp_path / "diag.json"
    argv = [
        "diagnose",
        "--models",
        f"base={tiny_model_dir},sft={tiny_model_dir_2}",
        "--data",
        str(train_jsonl),
    ]
    argv += ["--n", "6", "--weak", str(tiny_model_dir), "--set", "wmss.lam=0.3", "--output", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert set(result) == {"n_samples", "n_positions", "base", "sft", "gradient_probe"}
    assert result["gradient_probe"]["sft"]["lam"] == 0.3
    printed = capsys.readouterr().out
    assert "target_logit" in printed and "gradient probe" in printed and "%)" in printed


@pytest.mark.parametrize(
    ("models", "message"), [("a=", "is not NAME=PATH"), ("a=x,a=y", "given twice"), (",", "at least one")]
)
def test_diagnose_cli_reports_bad_models_in_one_line(models, message, train_jsonl, capsys):
    assert main(["diagnose", "--models", models, "--data", str(train_jsonl)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
