"""Sampling metrics (pass@k, distinct answers, truncation, entropy), HFBackend's token entropies, the pass@k plot."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM

from tests.conftest import tiny_qwen3_config
from tests.fakes import FakeBackend
from wmss.compare import plots
from wmss.errors import ConfigError, WMSSError
from wmss.eval.backends import SAMPLING_TEMPERATURE, SAMPLING_TOP_P, Generation, HFBackend, encode_prompt
from wmss.eval.code import pass_at_k
from wmss.eval.records import BenchmarkRecord
from wmss.eval.sampling import (
    ProblemSamples,
    answer_key,
    distinct_answers,
    grade_samples,
    pass_at_k_curve,
    sample_metrics,
    summarize_samples,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PROMPTS = ["What is 2+3?", "a", "A much longer prompt than the others, to force left padding.", "xyz"]


@pytest.fixture(scope="module")
def random_model(tokenizer):
    torch.manual_seed(0)
    config = tiny_qwen3_config(len(tokenizer))
    config.initializer_range = 0.3  # peaked enough that entropies differ clearly between steps
    model = AutoModelForCausalLM.from_config(config).eval()
    model.generation_config.eos_token_id = None
    return model


# --- answers and their keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extracted", "kind", "key"),
    [
        ("18", "numeric", "18"),
        ("18.0", "numeric", "18"),
        ("$18", "numeric", "18"),
        ("1,800 apples", "numeric", "1800"),
        ("\\frac{1}{2}", "latex", "0.5"),
        ("-0", "numeric", "0"),
        ("x^2  +\n 1", "latex", "x^2 + 1"),
        ("b", "choice", "B"),
        ("def f():  \n    return 1\n\n", "code", "def f():\n    return 1"),
        (None, "numeric", None),
        ("   ", "latex", None),
    ],
)
def test_answer_key_reads_answers_as_the_grader_does(extracted, kind: str, key) -> None:
    assert answer_key(extracted, kind) == key


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["18", "19", "x", "B"])), min_size=1, max_size=16))
def test_distinct_answers_counts_no_answer_as_one_value(answers: list[str | None]) -> None:
    count = distinct_answers(answers)
    assert count == len(Counter(answers))
    assert 1 <= count <= len(answers)
    assert distinct_answers(list(reversed(answers))) == count
    assert distinct_answers([*answers, None]) == count + (None not in answers)


# --- summaries ------------------------------------------------------------------------------------------------


def problem(
    correct: list[bool], answers=None, truncated=None, entropies=None, name: str = "p"
) -> ProblemSamples:
    n = len(correct)
    return ProblemSamples(
        name,
        correct,
        answers if answers is not None else ["1"] * n,
        truncated if truncated is not None else [False] * n,
        entropies if entropies is not None else [0.5] * n,
    )


def test_summary_by_hand() -> None:
    problems = [
        problem(
            [True, False, False, False], ["18", "17", None, "17"], [False, False, True, False], [1.0] * 4
        ),
        problem([False] * 4, [None] * 4, [True] * 4, [3.0] * 4, name="q"),
    ]
    metrics = summarize_samples(problems, temperature=0.5, top_p=0.95, seed=3)
    assert metrics["n"] == 4 and metrics["n_problems"] == 2 and metrics["seed"] == 3
    assert metrics["mean_accuracy"] == pytest.approx(1 / 8)
    assert metrics["pass@1"] == pytest.approx(1 / 8)
    assert metrics["pass@2"] == pytest.approx((1 - 3 / 6) / 2)  # 1 - C(3,2)/C(4,2) for the first problem
    assert metrics["pass@4"] == pytest.approx(1 / 2)
    assert "pass@8" not in metrics  # k > n is left out
    assert metrics["distinct_answers"] == pytest.approx((3 + 1) / 2)
    assert metrics["truncation_rate"] == pytest.approx(5 / 8)
    assert metrics["mean_token_entropy"] == pytest.approx(2.0)
    assert metrics["per_problem"][1] == {
        "id": "q",
        "correct": [False] * 4,
        "answers": [None] * 4,
        "truncated": [True] * 4,
        "entropies": [3.0] * 4,
    }
    assert pass_at_k_curve(metrics) == {1: metrics["pass@1"], 2: metrics["pass@2"], 4: metrics["pass@4"]}
    json.dumps(metrics)


def test_missing_entropies_and_uneven_samples() -> None:
    assert (
        summarize_samples([problem([True], entropies=[None])], temperature=1.0, top_p=1.0)[
            "mean_token_entropy"
        ]
        is None
    )
    with pytest.raises(WMSSError, match="same number"):
        summarize_samples([problem([True]), problem([True, False])], temperature=1.0, top_p=1.0)
    with pytest.raises(WMSSError, match="no problems"):
        summarize_samples([], temperature=1.0, top_p=1.0)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    st.integers(1, 12).flatmap(
        lambda n: st.lists(st.integers(0, n), min_size=1, max_size=6).map(lambda c: (n, c))
    )
)
def test_pass_at_k_grows_with_k_from_mean_accuracy_to_any_correct(args: tuple[int, list[int]]) -> None:
    n, counts = args
    problems = [problem([i < c for i in range(n)]) for c in counts]
    metrics = summarize_samples(problems, temperature=0.5, top_p=0.95, ks=range(1, n + 1))
    curve = [metrics[f"pass@{k}"] for k in range(1, n + 1)]
    assert curve[0] == pytest.approx(metrics["mean_accuracy"])
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(curve))
    assert curve[-1] == pytest.approx(sum(c > 0 for c in counts) / len(counts))
    assert curve == [
        pytest.approx(sum(pass_at_k(n, c, k) for c in counts) / len(counts)) for k in range(1, n + 1)
    ]


# --- end to end -----------------------------------------------------------------------------------------------


RECORDS = [
    BenchmarkRecord("a", "What is 9+9?", "18", "numeric"),
    BenchmarkRecord("b", "Pick one.", "C", "choice", {"A": "1", "B": "2", "C": "3"}),
]


class Scripted:
    """A backend that returns fixed generations (with `finished` and entropies), recording its prompts."""

    def __init__(self, generations: list[list[Generation]]) -> None:
        self.generations = generations
        self.prompts: list[str] = []

    def generate(self, prompts: list[str], n: int = 1) -> list[list[Generation]]:
        """Return the scripted generations."""
        self.prompts += prompts
        return self.generations


def test_sample_metrics_grades_a_backend_s_samples() -> None:
    texts = [
        ["<answer>18</answer>", "<answer>$18.00</answer>", "The answer is 17", "<think>cut off"],
        ["<answer>C</answer>", "<answer>B</answer>", "<answer>B</answer>", "no letter here"],
    ]
    backend = Scripted(
        [
            [Generation(t, finished=not t.startswith("<think>"), n_tokens=5, mean_entropy=0.25) for t in row]
            for row in texts
        ]
    )
    metrics = sample_metrics(backend, RECORDS, n=4)
    assert (metrics["temperature"], metrics["top_p"]) == (SAMPLING_TEMPERATURE, SAMPLING_TOP_P) == (0.5, 0.95)
    assert metrics["per_problem"][0]["answers"] == ["18", "18", "17", None]
    assert metrics["per_problem"][1]["answers"] == ["C", "B", "B", None]
    assert metrics["per_problem"][0]["correct"] == [True, True, False, False]
    assert metrics["mean_accuracy"] == pytest.approx(3 / 8)
    assert metrics["distinct_answers"] == pytest.approx(3.0)
    assert metrics["truncation_rate"] == pytest.approx(1 / 8)
    assert metrics["mean_token_entropy"] == pytest.approx(0.25)
    assert backend.prompts[0].endswith("User: What is 9+9?\nAssistant: ")  # plain format without a tokenizer
    json.dumps(metrics)
    with pytest.raises(WMSSError, match="not 2 each"):
        sample_metrics(backend, RECORDS, n=2)
    assert (
        sample_metrics(FakeBackend(lambda prompt: "<answer>18</answer>"), RECORDS)["mean_token_entropy"]
        is None
    )


def test_sample_metrics_runs_a_model_with_entropies(random_model, tokenizer) -> None:
    metrics = sample_metrics(random_model, RECORDS, tokenizer=tokenizer, n=2, max_new_tokens=4, seed=1)
    assert [key for key in metrics if key.startswith("pass@")] == ["pass@1", "pass@2"]
    assert metrics["seed"] == 1 and metrics["n_problems"] == 2
    entropies = [e for p in metrics["per_problem"] for e in p["entropies"]]
    assert len(entropies) == 4 and all(0 < e < math.log(len(tokenizer)) + 1e-6 for e in entropies)
    assert metrics["mean_token_entropy"] == pytest.approx(sum(entropies) / 4)
    assert (
        sample_metrics(random_model, RECORDS, tokenizer=tokenizer, n=2, max_new_tokens=4, seed=1) == metrics
    )


def test_sample_metrics_refusals(random_model, tokenizer, monkeypatch) -> None:
    greedy = HFBackend(random_model, tokenizer, max_new_tokens=2)
    with pytest.raises(ConfigError, match=r"temperature=0\.0"):
        sample_metrics(greedy, RECORDS)
    with pytest.raises(ConfigError, match="temperature > 0"):
        sample_metrics(FakeBackend(lambda p: "1"), RECORDS, temperature=0.0)
    with pytest.raises(ConfigError, match="mix_with"):
        sample_metrics(FakeBackend(lambda p: "1"), RECORDS, mix_with=random_model)
    with pytest.raises(WMSSError, match="at least one"):
        sample_metrics(FakeBackend(lambda p: "1"), [])
    monkeypatch.delenv("WMSS_ALLOW_CODE_EXECUTION", raising=False)
    code = BenchmarkRecord("c", "Write f.", "", "code", metadata={"test_list": ["assert f() == 1"]})
    with pytest.raises(WMSSError, match="allow"):
        sample_metrics(FakeBackend(lambda p: "1"), [code])
    with pytest.raises(WMSSError, match="2 problems"):
        grade_samples(RECORDS, [[Generation("1", True, 1)]])


# --- HFBackend token entropies --------------------------------------------------------------------------------


def test_a_uniform_model_has_entropy_log_v(tokenizer) -> None:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_qwen3_config(len(tokenizer), tie=False))
    with torch.no_grad():
        model.lm_head.weight.zero_()
    # All logits equal: greedy takes id 0, which is EOS, after one step of entropy log V.
    (generation,) = HFBackend(model, tokenizer, token_entropy=True).generate(["hi"])[0]
    assert (generation.finished, generation.n_tokens) == (True, 1)
    assert generation.mean_entropy == pytest.approx(math.log(len(tokenizer)), abs=1e-6)


def test_entropies_match_transformers_output_logits(random_model, tokenizer, monkeypatch) -> None:
    n, seed = 3, 4
    settings_ = {"batch_size": 8, "max_new_tokens": 6, "temperature": 0.5, "top_p": 0.95, "seed": seed}
    # The twin: the same single batch (longest prompt first, as HFBackend orders it), through output_logits.
    order = sorted(range(len(PROMPTS)), key=lambda i: -len(encode_prompt(tokenizer, PROMPTS[i])))
    encoded = [encode_prompt(tokenizer, PROMPTS[i]) for i in order]
    width = max(len(ids) for ids in encoded)

    def twin(backend: HFBackend):
        input_ids = torch.tensor([[backend.pad_id] * (width - len(ids)) + ids for ids in encoded])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
        config = backend._generation_config(n)
        config.return_dict_in_generate = config.output_logits = True
        torch.manual_seed(seed)
        with torch.inference_mode():
            return random_model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)

    # An extra stop token that the samples draw now and then, so that rows stop at different steps.
    first = twin(HFBackend(random_model, tokenizer, **settings_)).sequences
    monkeypatch.setattr(random_model.generation_config, "eos_token_id", int(first[0, width + 1]))
    backend = HFBackend(random_model, tokenizer, token_entropy=True, **settings_)
    generations = backend.generate(PROMPTS, n=n)
    output = twin(backend)
    logits = torch.stack(output.logits, dim=1).double()  # [prompts * n, steps, V]: row i * n + j is sample j
    log_p = logits.log_softmax(-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    finished = 0
    for row_index, prompt_index in enumerate(order):
        for j, generation in enumerate(generations[prompt_index]):
            row = row_index * n + j
            tokens = output.sequences[row, width : width + generation.n_tokens].tolist()
            kept = tokens[:-1] if generation.finished else tokens  # the text leaves the stop token out
            assert tokenizer.decode(kept, skip_special_tokens=True) == generation.text
            expected = entropy[row, : generation.n_tokens].mean().item()
            assert generation.mean_entropy == pytest.approx(expected, abs=1e-5)
            finished += generation.finished
    assert 0 < finished < len(PROMPTS) * n  # some samples stop early: the padding after them is left out
    assert len({round(g.mean_entropy, 4) for samples in generations for g in samples}) > 1


def test_default_path_is_unchanged(random_model, tokenizer, monkeypatch) -> None:
    calls = []
    generate = random_model.generate

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return generate(*args, **kwargs)

    monkeypatch.setattr(random_model, "generate", spy)
    settings_ = {"batch_size": 2, "max_new_tokens": 5, "temperature": 0.5, "top_p": 0.95}
    plain = HFBackend(random_model, tokenizer, **settings_).generate(PROMPTS, n=2)
    # generate's own default: no processor of ours, no return_dict/output_logits on the default path; only the
    # stop at the closing answer tag.
    assert calls[0]["logits_processor"] is None
    assert sorted(calls[0]) == [
        "attention_mask",
        "generation_config",
        "input_ids",
        "logits_processor",
        "stopping_criteria",
    ]
    assert not calls[0]["generation_config"].return_dict_in_generate
    measured = HFBackend(random_model, tokenizer, token_entropy=True, **settings_).generate(PROMPTS, n=2)
    assert all(g.mean_entropy is None for samples in plain for g in samples)
    # Recording entropies changes neither the tokens nor the random draws.
    strip = [[Generation(g.text, g.finished, g.n_tokens) for g in samples] for samples in measured]
    assert strip == plain


# --- the plot -------------------------------------------------------------------------------------------------


def test_pass_at_k_plot(tmp_path) -> None:
    curves = {"M1": {1: 0.4, 2: 0.5, 4: 0.58, 8: 0.63}, "wmss": {1: 0.45, 2: 0.53, 4: 0.6}}
    path = plots.plot_pass_at_k(curves, tmp_path / "sub" / "pass_at_k.png")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    assert [p.name for p in path.parent.iterdir()] == ["pass_at_k.png"]  # no temporary left behind
    with pytest.raises(ValueError, match="empty"):
        plots.plot_pass_at_k({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="finite"):
        plots.plot_pass_at_k({"m": {1: float("nan")}}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="k must be"):
        plots.plot_pass_at_k({"m": {0: 0.1}}, tmp_path / "x.png")
