"""What a gain is made of: accuracy, pass@k, answer diversity, truncation and entropy of n samples each.

Greedy accuracy says whether a model got better, not how: concentrating probability on answers it could
already reach (mean accuracy up, pass@8 flat, fewer distinct answers, lower entropy) reads differently from
reaching new ones (pass@8 up). `sample_metrics` draws n generations per problem at the paper's sampling settings
(temperature 0.5, top-p 0.95) and reports, over problems:

* mean_accuracy: the fraction of correct samples (every problem has n, so every sample weighs the same);
* pass@k for k in 1, 2, 4, 8 with k <= n: Chen et al.'s (2021) unbiased estimator, averaged over problems;
* distinct_answers: the mean number of different final answers among a problem's n samples, as the grader
  reads them (`answer_key`: numbers by value, so "18", "18.0" and "$18" are one answer; choice letters; other
  answers by their whitespace-collapsed text, code by its text). Samples with no answer at all count together
  as one more value, "no answer": 8 unanswered samples are 1 answer, 4 times "18" and 4 unanswered are 2;
* truncation_rate: the fraction of samples cut at max_new_tokens;
* mean_token_entropy: the mean over samples of each sample's mean token entropy (nats, the model's own
  distribution before temperature and top-p; the mixed one under `mix_with`), None when the backend does not
  report entropies.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wmss import defaults
from wmss.errors import ConfigError, WMSSError
from wmss.eval.answers import parse_number
from wmss.eval.backends import (
    SAMPLING_TEMPERATURE,
    SAMPLING_TOP_P,
    Generation,
    GenerationBackend,
    HFBackend,
    _check_n,
    _check_sampling,
)
from wmss.eval.code import pass_at_k
from wmss.eval.prompting import build_prompt, format_question
from wmss.eval.records import BenchmarkRecord
from wmss.eval.runner import grade_output
from wmss.eval.sandbox import require_code_execution_opt_in
from wmss.prompts import REASONING_SYSTEM_PROMPT

if TYPE_CHECKING:
    from transformers import PreTrainedModel

PASS_AT_K = (1, 2, 4, 8)
N_SAMPLES = 8


@dataclass
class ProblemSamples:
    """One problem's graded samples: correctness, answer keys (None: no answer), truncation, entropies."""

    id: str
    correct: list[bool]
    answers: list[str | None]
    truncated: list[bool]
    entropies: list[float | None]


def answer_key(extracted: str | None, kind: str) -> str | None:
    """The normalised form under which two answers count as the same; None when there is no answer."""
    if extracted is None or not extracted.strip():
        return None
    if kind == "code":
        return "\n".join(line.rstrip() for line in extracted.strip("\n").splitlines())
    if kind == "choice":
        return extracted.strip().upper()
    value = parse_number(extracted)
    if value is not None:
        # + 0.0 turns -0.0 into 0.0; ten digits keep answers the grader tells apart apart.
        return format(value + 0.0, ".10g")
    return " ".join(extracted.split())


def distinct_answers(answers: Sequence[str | None]) -> int:
    """How many different answer keys a problem's samples gave; all missing answers together count as one."""
    return len(set(answers))


def grade_samples(
    records: Sequence[BenchmarkRecord],
    generations: Sequence[Sequence[Generation]],
    authors_compat: bool = False,
    code_timeout_s: float = 10.0,
) -> list[ProblemSamples]:
    """Grade every problem's generations with the evaluation's grader (`grade_output`)."""
    if len(records) != len(generations):
        raise WMSSError(f"{len(generations)} lists of generations for {len(records)} problems")
    problems = []
    for record, samples in zip(records, generations, strict=True):
        graded = [
            grade_output(record, sample.text, sample.finished, authors_compat, code_timeout_s)
            for sample in samples
        ]
        problems.append(
            ProblemSamples(
                id=record.id,
                correct=[correct for correct, _, _ in graded],
                answers=[answer_key(extracted, record.kind) for _, extracted, _ in graded],
                truncated=[truncated for _, _, truncated in graded],
                entropies=[sample.mean_entropy for sample in samples],
            )
        )
    return problems


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def summarize_samples(
    problems: Sequence[ProblemSamples],
    *,
    temperature: float,
    top_p: float,
    seed: int | None = None,
    ks: Sequence[int] = PASS_AT_K,
) -> dict[str, Any]:
    """The JSON-ready metrics of graded problems that all have the same number n of samples."""
    if not problems:
        raise WMSSError("no problems to summarise")
    sizes = {len(problem.correct) for problem in problems}
    if len(sizes) != 1 or 0 in sizes:
        raise WMSSError(f"every problem needs the same number (>= 1) of samples, got {sorted(sizes)}")
    (n,) = sizes
    samples = [(problem, index) for problem in problems for index in range(n)]
    metrics: dict[str, Any] = {
        "n": n,
        "temperature": temperature,
        "top_p": top_p,
        **({} if seed is None else {"seed": seed}),
        "n_problems": len(problems),
        "mean_accuracy": _mean([float(problem.correct[index]) for problem, index in samples]),
    }
    for k in sorted(set(ks)):
        if k <= n:
            metrics[f"pass@{k}"] = _mean([pass_at_k(n, sum(problem.correct), k) for problem in problems])
    metrics["distinct_answers"] = _mean([float(distinct_answers(problem.answers)) for problem in problems])
    metrics["truncation_rate"] = _mean([float(problem.truncated[index]) for problem, index in samples])
    entropies = [entropy for problem in problems for entropy in problem.entropies if entropy is not None]
    metrics["mean_token_entropy"] = _mean(entropies) if len(entropies) == len(samples) else None
    metrics["per_problem"] = [
        {
            "id": problem.id,
            "correct": problem.correct,
            "answers": problem.answers,
            "truncated": problem.truncated,
            "entropies": problem.entropies,
        }
        for problem in problems
    ]
    return metrics


def pass_at_k_curve(metrics: dict[str, Any]) -> dict[int, float]:
    """{k: pass@k} from a `sample_metrics` / `summarize_samples` result, for `wmss.compare.plots.plot_pass_at_k`."""
    return {
        int(key.removeprefix("pass@")): value for key, value in metrics.items() if key.startswith("pass@")
    }


def _check_backend(backend: Any, temperature: float, top_p: float, seed: int) -> None:
    """A ready backend must already sample at the settings the metrics will be reported under."""
    for name, wanted in (("temperature", temperature), ("top_p", top_p), ("seed", seed)):
        actual = getattr(backend, name, wanted)
        if actual != wanted:
            raise ConfigError(
                f"the backend samples with {name}={actual}, but sample_metrics was asked for {wanted}"
            )


def sample_metrics(
    model: str | os.PathLike[str] | PreTrainedModel | GenerationBackend,
    records: Sequence[BenchmarkRecord],
    *,
    tokenizer: Any = None,
    n: int = N_SAMPLES,
    temperature: float = SAMPLING_TEMPERATURE,
    top_p: float = SAMPLING_TOP_P,
    seed: int = 0,
    max_new_tokens: int = 1024,
    batch_size: int = 8,
    device: str | None = None,
    dtype: str = "auto",
    system_prompt: str | None = REASONING_SYSTEM_PROMPT,
    ks: Sequence[int] = PASS_AT_K,
    mix_with: str | PreTrainedModel | None = None,
    mix_lambda: float = defaults.LAMBDA,
    authors_compat: bool = False,
    allow_code_execution: bool = False,
    code_timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Sample n generations per problem from one model (path, loaded model or backend) and summarise them.

    A path or loaded model is run by an HFBackend with token entropies (and `mix_with`, if given); a ready
    backend must already sample at `temperature` / `top_p` / `seed` (checked where it exposes them). Prompts
    use `tokenizer`, else the backend's own tokenizer, else the plain format, as `wmss eval` builds them.
    """
    if not records:
        raise WMSSError("sample_metrics needs at least one problem")
    _check_sampling(temperature, top_p, max_new_tokens)
    _check_n(n, temperature)
    if any(record.kind == "code" for record in records):
        require_code_execution_opt_in(allow_code_execution)
    import torch

    if isinstance(model, GenerationBackend) and not isinstance(model, torch.nn.Module):
        if mix_with is not None:
            raise ConfigError("mix_with needs a model path or a loaded model, not a ready backend")
        _check_backend(model, temperature, top_p, seed)
        backend = model
    else:
        backend = HFBackend(
            str(model) if isinstance(model, os.PathLike) else model,
            tokenizer,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            device=device,
            dtype=dtype,
            seed=seed,
            token_entropy=True,
            mix_with=mix_with,
            mix_lambda=mix_lambda,
        )
    prompt_tokenizer = tokenizer if tokenizer is not None else getattr(backend, "tokenizer", None)
    prompts = [
        build_prompt(prompt_tokenizer, format_question(record), system_prompt)[0] for record in records
    ]
    generations = backend.generate(prompts, n=n)
    if any(len(samples) != n for samples in generations):
        raise WMSSError(
            f"the backend returned {[len(samples) for samples in generations]} samples, not {n} each"
        )
    problems = grade_samples(records, generations, authors_compat, code_timeout_s)
    return summarize_samples(problems, temperature=temperature, top_p=top_p, seed=seed, ks=ks)
