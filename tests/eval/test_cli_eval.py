"""End to end: `wmss eval` on tiny saved models, saved-response grading, and exact accuracies with a fake backend."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.fakes import FakeBackend
from wmss.cli import main
from wmss.errors import WMSSError
from wmss.eval.runner import evaluate, grade_responses
from wmss.prompts import REASONING_SYSTEM_PROMPT

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "benchmarks"

GSM8K = [
    {"instruction": "Tom has 3 apples and buys 4. How many?", "input": "", "output": "9", "answer": "7.0"},
    {"instruction": "What is 12 times 10?", "input": "", "output": "", "answer": "120.0"},
    {"instruction": "What is 1000 + 234?", "input": "", "output": "", "answer": "1234"},
    {"instruction": "What is 9 - 4?", "input": "", "output": "", "answer": "5"},
]
AQUA = [
    {"instruction": "2+2? Answer Choices: (A) 3 (B) 4 (C) 5 (D) 6 (E) 7", "input": "", "answer": "B"},
    {"instruction": "3+3? Answer Choices: (A) 6 (B) 4 (C) 5 (D) 8 (E) 7", "input": "", "answer": "A"},
]
MBPP = [
    {
        "task_id": 1,
        "text": "Write add(a, b).",
        "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"],
    }
]
HUMANEVAL = [
    {
        "task_id": "HumanEval/0",
        "prompt": 'def double(x):\n    """Return 2 * x."""\n',
        "test": "def check(candidate):\n    assert candidate(2) == 4\n",
        "entry_point": "double",
    }
]
# Per question: the output the fake model gives. gsm8k 3/4 right, aqua 1/2 right.
ANSWERS = {
    "Tom has 3 apples": "<think>3 + 4 = 7</think> <answer>7</answer>",
    "12 times 10": "<think>easy</think> <answer>120</answer>",
    "1000 + 234": "<think>sum</think> <answer>1,234</answer>",
    "9 - 4": "<think>oops</think> <answer>6</answer>",
    "2+2?": "<think>four</think> <answer>B</answer>",
    "3+3?": "<think>six?</think> <answer>C</answer>",
    "add(a, b)": "```python\ndef add(a, b):\n    return a + b\n```",
    "def double": "```python\ndef double(x):\n    return x + x\n```",
}


def fake_answer(prompt: str) -> str:
    return next(answer for key, answer in ANSWERS.items() if key in prompt)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "benchmarks"
    for name, rows in (("gsm8k", GSM8K), ("aqua", AQUA)):
        (root / name).mkdir(parents=True)
        (root / name / "test.json").write_text(json.dumps(rows))
    (root / "mbpp.jsonl").write_text("".join(json.dumps(row) + "\n" for row in MBPP))
    (root / "humaneval.jsonl").write_text("".join(json.dumps(row) + "\n" for row in HUMANEVAL))
    return root


def accuracies(summary_path: Path) -> dict[tuple[str, str], float]:
    summaries = json.loads(summary_path.read_text())["summaries"]
    return {(s["model"], s["benchmark"]): s["accuracy"] for s in summaries}


def test_fake_backend_end_to_end_exact_accuracy(data_dir: Path) -> None:
    backend = FakeBackend(fake_answer)
    result = evaluate(backend, ["gsm8k", "aqua"], model_name="fake", tokenizer=None, data_dir=data_dir)
    by_benchmark = {s.benchmark: s for s in result.summaries}
    assert by_benchmark["gsm8k"].accuracy == 0.75
    assert by_benchmark["aqua"].accuracy == 0.5
    assert by_benchmark["gsm8k"].prompt_format == "plain"
    assert [(s.prompt_id, s.correct, s.extracted) for s in result.samples if s.benchmark == "aqua"] == [
        ("aqua/0", True, "B"),
        ("aqua/1", False, "C"),
    ]
    assert backend.prompts[0] == f"{REASONING_SYSTEM_PROMPT}\n\nUser: {GSM8K[0]['instruction']}\nAssistant: "


def test_authors_compat_uses_the_latex_only_scorer(data_dir: Path) -> None:
    backend = FakeBackend(fake_answer)
    ours = evaluate(backend, ["gsm8k"], model_name="m", tokenizer=None, data_dir=data_dir)
    authors = evaluate(
        backend, ["gsm8k"], model_name="m", tokenizer=None, data_dir=data_dir, authors_compat=True
    )
    # The authors' scorer cannot read a plain `<answer> 7 </answer>`, which is the point of the flag.
    assert ours.summaries[0].accuracy == 0.75
    assert authors.summaries[0].accuracy == 0.0


def test_code_benchmarks_require_opt_in_before_generating(data_dir: Path, monkeypatch) -> None:
    monkeypatch.delenv("WMSS_ALLOW_CODE_EXECUTION", raising=False)
    backend = FakeBackend(fake_answer)
    with pytest.raises(WMSSError, match="allow-code-execution"):
        evaluate(backend, ["mbpp"], model_name="m", tokenizer=None, data_dir=data_dir)
    assert backend.prompts == []


def test_code_benchmarks_run_the_tests(data_dir: Path) -> None:
    wrong = {**ANSWERS, "add(a, b)": "def add(a, b):\n    return a - b"}
    results = {}
    for name, answers in (("right", ANSWERS), ("wrong", wrong)):
        backend = FakeBackend(
            lambda prompt, answers=answers: next(a for k, a in answers.items() if k in prompt)
        )
        result = evaluate(
            backend,
            ["mbpp", "humaneval"],
            model_name=name,
            tokenizer=None,
            data_dir=data_dir,
            allow_code_execution=True,
        )
        results[name] = {s.benchmark: s.accuracy for s in result.summaries}
    assert results == {"right": {"mbpp": 1.0, "humaneval": 1.0}, "wrong": {"mbpp": 0.0, "humaneval": 1.0}}


def test_cli_two_tiny_models_one_table(
    tiny_model_dir: Path, tiny_model_dir_2: Path, data_dir: Path, tmp_path, capsys
) -> None:
    out = tmp_path / "eval"
    argv = [
        "eval",
        "--model",
        str(tiny_model_dir),
        "--model",
        str(tiny_model_dir_2),
        "--benchmarks",
        "gsm8k,aqua",
    ]
    argv += ["--data-dir", str(data_dir), "--limit", "3", "--max-new-tokens", "8", "--output", str(out)]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "| Model | gsm8k | aqua | Math Avg |" in stdout
    assert re.search(rf"\| {re.escape(str(tiny_model_dir))} \| \d+\.\d \| \d+\.\d \| \d+\.\d \|", stdout)
    assert f"| {tiny_model_dir_2} |" in stdout
    assert f"wrote {out / 'summary.json'}" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert {(s["model"], s["benchmark"], s["n_records"]) for s in summary["summaries"]} == {
        (str(model), name, count)
        for model in (tiny_model_dir, tiny_model_dir_2)
        for name, count in (("gsm8k", 3), ("aqua", 2))
    }
    assert summary["settings"]["max_new_tokens"] == 8
    assert len((out / "samples.jsonl").read_text().splitlines()) == 2 * (3 + 2)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared benchmark files not available")
def test_cli_acceptance_on_the_real_benchmark_files(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    argv = [
        "eval",
        "--model",
        str(tiny_model_dir),
        "--benchmarks",
        "gsm8k,svamp,aqua",
        "--data-dir",
        str(SHARED),
    ]
    argv += ["--limit", "3", "--max-new-tokens", "8", "--output", str(tmp_path / "eval")]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "| Model | gsm8k | svamp | aqua | Math Avg |" in stdout
    assert "| gsm8k | " in stdout and "| 3/1319 |" in stdout
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert [s["prompt_format"] for s in summary["summaries"]] == ["chat_template"] * 3


def test_cli_grades_saved_responses_without_a_model(data_dir: Path, tmp_path: Path, capsys) -> None:
    responses = [
        {"benchmark": "gsm8k", "id": "gsm8k/0", "output": "<answer>7</answer>", "model": "a"},
        {"benchmark": "gsm8k", "index": 1, "output": "The answer is 121.", "model": "a"},
        {"benchmark": "aqua", "id": "aqua/1", "output": "<answer>(A) 6</answer>", "model": "a"},
        {"benchmark": "gsm8k", "index": 0, "output": "<answer>7</answer>", "model": "b"},
        {"benchmark": "gsm8k", "index": 1, "output": "<answer>120</answer>", "model": "b"},
        {
            "benchmark": "aime2025",
            "gold": "336^\\circ",
            "kind": "latex",
            "output": "\\boxed{336^\\circ}",
            "model": "b",
        },
    ]
    path = tmp_path / "responses.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in responses))
    out = tmp_path / "graded"
    assert main(["eval", "--responses", str(path), "--data-dir", str(data_dir), "--output", str(out)]) == 0
    assert accuracies(out / "summary.json") == {
        ("a", "gsm8k"): 0.5,
        ("a", "aqua"): 1.0,
        ("b", "gsm8k"): 1.0,
        ("b", "aime2025"): 1.0,
    }
    stdout = capsys.readouterr().out
    assert "| Model | gsm8k | aqua | aime2025 | Math Avg |" in stdout
    assert "| a | 50.0 | 100.0 | - | 75.0 |" in stdout


def test_responses_errors_name_file_and_line(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"benchmark": "gsm8k", "id": "gsm8k/99", "output": "1"}) + "\n")
    with pytest.raises(
        WMSSError, match=re.escape(f"{path} line 1: benchmark gsm8k has no record with id 'gsm8k/99'")
    ):
        grade_responses(path, data_dir)
    path.write_text(json.dumps({"benchmark": "gsm8k", "output": "1"}) + "\n")
    with pytest.raises(WMSSError, match=re.escape(f"{path} line 1: needs an 'id', an 'index'")):
        grade_responses(path, data_dir)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give --model PATH"),
        (["--model", "m", "--benchmarks", "gsm8k", "--n-samples", "2"], "needs --temperature > 0"),
        (["--model", "m"], "--benchmarks is required"),
        (["--model", "does/not/exist", "--benchmarks", "mbpp"], "allow-code-execution"),
    ],
)
def test_cli_user_errors_exit_2_without_traceback(extra, message, data_dir, monkeypatch, capsys) -> None:
    monkeypatch.delenv("WMSS_ALLOW_CODE_EXECUTION", raising=False)
    assert main(["eval", "--data-dir", str(data_dir), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
