"""Every plot writes a real PNG atomically; empty or mismatched inputs are refused with ValueError."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from wmss.compare import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, tmp_path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # no temporary left behind


ARMS = ["M1", "sft_continued", "wmss", "neftune"]
MEANS = [0.60, 0.62, 0.65, 0.61]
LOW = [0.55, 0.57, 0.60, 0.56]
HIGH = [0.65, 0.67, 0.70, 0.66]


def test_accuracy_and_difference_plots(tmp_path):
    path = plots.plot_accuracy(
        ARMS, MEANS, LOW, HIGH, tmp_path / "acc.png", reference="sft_continued", title="t"
    )
    assert path == tmp_path / "acc.png"
    assert_png(path, tmp_path)
    path = plots.plot_differences(
        ["M1", "wmss"],
        [-0.02, 0.03],
        [-0.05, 0.01],
        [0.01, 0.05],
        tmp_path / "sub" / "d.png",
        "sft_continued",
    )
    assert_png(path, tmp_path / "sub")


def test_loss_curves_sweep_histograms_and_logit_stats(tmp_path):
    curves = {
        "sft_continued": [(s, 2.0 * 0.9**s) for s in range(60)],
        "wmss": [(0, 2.1), (10, 0.9), (20, 0.5)],
    }
    assert_png(plots.plot_loss_curves(curves, tmp_path / "loss.png"), tmp_path)
    sweep = plots.plot_sweep(
        [0.7, 0.3, 0.5],
        [0.6, 0.62, 0.64],
        [0.55, 0.57, 0.6],
        [0.65, 0.66, 0.69],
        tmp_path / "sweep.png",
        xlabel="wmss.lam",
        reference_value=0.61,
    )
    assert_png(sweep, tmp_path)
    rng = np.random.default_rng(0)
    series = {"weak": rng.gamma(2.0, 0.5, 300), "strong": rng.gamma(1.0, 0.2, 300)}
    assert_png(plots.plot_histograms(series, tmp_path / "h.png", title="entropies", xlabel="nats"), tmp_path)
    heavy = {"weights": np.concatenate([np.full(5000, 1e-6), [0.5]])}
    assert_png(plots.plot_histograms(heavy, tmp_path / "w.png", title="ESS 2 of 5001", xlabel="p"), tmp_path)
    stats = {
        "M1": {"target_logit": 20.0, "gap": 25.0, "entropy": 0.1, "max_prob": 0.97, "logit_std": 3.0},
        "wmss": {"target_logit": 22.0, "gap": 28.0, "entropy": 0.08, "max_prob": 0.98, "logit_std": 3.3},
    }
    assert_png(plots.plot_logit_stats(stats, tmp_path / "logits.png"), tmp_path)


def test_overwrites_an_existing_plot(tmp_path):
    target = tmp_path / "acc.png"
    target.write_bytes(b"old")
    plots.plot_accuracy(["a"], [0.5], [0.4], [0.6], target)
    assert target.read_bytes().startswith(PNG_SIGNATURE)


def test_log_scale_only_when_losses_span_decades():
    assert plots.use_log_scale([2.0, 0.5, 0.01])
    assert not plots.use_log_scale([2.0, 0.5, 0.1])
    assert not plots.use_log_scale([2.0, 0.0, 0.001])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: plots.plot_accuracy([], [], [], [], p), "arms is empty"),
        (lambda p: plots.plot_accuracy(["a", "b"], [0.5], [0.4], [0.6], p), "expected 2"),
        (lambda p: plots.plot_accuracy(["a"], [0.5], [0.6], [0.7], p), "must contain its value"),
        (lambda p: plots.plot_differences(["a"], [0.1], [0.0], [0.2, 0.3], p, "ref"), "expected 1"),
        (lambda p: plots.plot_loss_curves({}, p), "curves is empty"),
        (lambda p: plots.plot_loss_curves({"a": []}, p), "non-empty list of"),
        (lambda p: plots.plot_sweep([0.3, 0.5], [0.6], [0.5], [0.7], p, "lam"), "expected 2"),
        (lambda p: plots.plot_sweep([], [], [], [], p, "lam"), "xs is empty"),
        (lambda p: plots.plot_histograms({}, p, "t", "x"), "series is empty"),
        (lambda p: plots.plot_histograms({"a": []}, p, "t", "x"), "is empty"),
        (lambda p: plots.plot_histograms({"a": [1.0, float("nan")]}, p, "t", "x"), "finite"),
        (lambda p: plots.plot_logit_stats({}, p), "stats is empty"),
        (lambda p: plots.plot_logit_stats({"a": {"gap": 1.0}, "b": {"entropy": 1.0}}, p), "share none"),
    ],
)
def test_bad_inputs_raise_value_error(call, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        call(tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_importing_wmss_plots_does_not_import_matplotlib():
    code = "import sys, wmss.compare.plots; print('matplotlib' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        == "False\n"
    )
