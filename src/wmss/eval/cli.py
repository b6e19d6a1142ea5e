"""`wmss eval`: score models on math/code benchmarks (one table across models), or grade saved responses.

--max-new-tokens defaults to 4096: long enough for most reasoning traces on GSM8K-level problems; a cut-off
generation counts as wrong, so check the truncation rate in the details table and raise it for AIME/AMC.
"""

from __future__ import annotations

import argparse
import gc
from typing import Any

from wmss.errors import ConfigError
from wmss.eval.backends import DTYPES, GenerationBackend, HFBackend, VLLMBackend
from wmss.eval.datasets import BENCHMARKS, load_benchmark
from wmss.eval.records import BenchmarkRecord
from wmss.eval.results import EvalResult, merge_results, result_paths, results_markdown, write_results
from wmss.eval.runner import evaluate, grade_responses
from wmss.eval.sandbox import require_code_execution_opt_in, require_isolation
from wmss.io import ensure_output_file
from wmss.prompts import resolve_system_prompt

DEFAULT_MAX_NEW_TOKENS = 4096


def _comma_list(value: str) -> list[str]:
    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of benchmark names")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the `wmss eval` options."""
    parser.add_argument(
        "--model", action="append", metavar="PATH", help="model directory or hub id; repeat to compare models"
    )
    parser.add_argument(
        "--benchmarks", type=_comma_list, help=f"comma-separated benchmark names ({', '.join(BENCHMARKS)})"
    )
    parser.add_argument("--data-dir", help="directory with <name>/test.json (or .jsonl) benchmark files")
    parser.add_argument("--limit", type=int, help="evaluate only the first N records of each benchmark")
    parser.add_argument("--backend", choices=("hf", "vllm"), default="hf", help="generation backend")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (hf backend)")
    parser.add_argument(
        "--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS, help="generation budget per sample"
    )
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (paper); 0.5 for sampling")
    parser.add_argument(
        "--top-p", type=float, default=1.0, help="nucleus sampling (paper: 0.95 when sampling)"
    )
    parser.add_argument(
        "--n-samples", type=int, default=1, help="samples per question; >1 reports mean@n, pass@n"
    )
    parser.add_argument(
        "--system-prompt",
        default="reasoning",
        help='"reasoning" (the paper\'s prompt), "none", or literal text',
    )
    parser.add_argument(
        "--allow-code-execution", action="store_true", help="run model-written code for humaneval/mbpp"
    )
    parser.add_argument(
        "--require-isolation",
        action="store_true",
        help="refuse to run unless model-written code would be fully confined by the kernel",
    )
    parser.add_argument(
        "--authors-compat", action="store_true", help="score math with the authors' LaTeX-only grader"
    )
    parser.add_argument("--code-timeout", type=float, default=10.0, help="seconds per code test program")
    parser.add_argument(
        "--responses", metavar="FILE", help="grade this JSONL of saved outputs; loads no model"
    )
    parser.add_argument(
        "--output", default="runs/eval", help="directory for samples.jsonl, summary.json, results.md"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ...; unset: cuda when available (hf backend)")
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help="model weights dtype (hf backend)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")


def _check_args(args: argparse.Namespace) -> None:
    if args.responses and args.model:
        raise ConfigError("--responses grades saved outputs without a model; do not combine it with --model")
    if not args.responses and not args.model:
        raise ConfigError(
            "give --model PATH (repeatable) to generate, or --responses FILE to grade saved outputs"
        )
    if args.model and not args.benchmarks:
        raise ConfigError(f"--benchmarks is required with --model (known: {', '.join(BENCHMARKS)})")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    if args.n_samples < 1:
        raise ConfigError(f"--n-samples must be >= 1, got {args.n_samples}")
    if args.n_samples > 1 and args.temperature == 0:
        raise ConfigError(
            "--n-samples > 1 needs --temperature > 0 (the paper samples at 0.5 with --top-p 0.95)"
        )


def _system_prompt(value: str) -> str | None:
    return None if value.strip().lower() == "none" else resolve_system_prompt(value)


def _make_backend(args: argparse.Namespace, model: str) -> tuple[GenerationBackend, Any]:
    if args.backend == "vllm":
        from transformers import AutoTokenizer

        backend = VLLMBackend(
            model,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            dtype=args.dtype,
        )
        return backend, AutoTokenizer.from_pretrained(model)
    hf = HFBackend(
        model,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        device=args.device,
        dtype=args.dtype,
        seed=args.seed,
    )
    return hf, hf.tokenizer


def _free_accelerator_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _generation_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "models": args.model,
        "backend": args.backend,
        "data_dir": args.data_dir,
        "limit": args.limit,
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "n_samples": args.n_samples,
        "batch_size": args.batch_size,
        "dtype": args.dtype,
        "seed": args.seed,
    }


def _with_settings(results: list[EvalResult], args: argparse.Namespace) -> EvalResult:
    merged = merge_results(results)
    merged.settings = {**merged.settings, **_generation_settings(args)}
    return merged


def _evaluate_models(args: argparse.Namespace) -> EvalResult:
    records: dict[str, list[BenchmarkRecord]] = {
        name: load_benchmark(name, args.data_dir, args.limit) for name in dict.fromkeys(args.benchmarks)
    }
    # Refuse before loading any model: a missing opt-in should not cost a model load and a generation pass.
    if any(record.kind == "code" for name_records in records.values() for record in name_records):
        require_code_execution_opt_in(args.allow_code_execution)
    results: list[EvalResult] = []
    for model in args.model:
        backend, tokenizer = _make_backend(args, model)
        results.append(
            evaluate(
                backend,
                records,
                model_name=model,
                tokenizer=tokenizer,
                system_prompt=_system_prompt(args.system_prompt),
                n_samples=args.n_samples,
                allow_code_execution=args.allow_code_execution,
                authors_compat=args.authors_compat,
                code_timeout_s=args.code_timeout,
            )
        )
        del backend, tokenizer
        _free_accelerator_memory()
        if len(results) < len(args.model):
            # Partial results on disk: a failure on a later model keeps the finished ones.
            write_results(_with_settings(results, args), args.output)
    return _with_settings(results, args)


def run_cli(args: argparse.Namespace) -> None:
    """Run `wmss eval` and print the results table and the files written."""
    _check_args(args)
    # Re-grading a samples.jsonl into its own folder would replace the responses being graded.
    inputs = {"--responses": args.responses, "--data-dir": args.data_dir}
    inputs |= {f"--model {model}": model for model in args.model or []}
    for path in result_paths(args.output).values():
        ensure_output_file(path, inputs)
    if args.require_isolation:
        require_isolation()
    if args.responses:
        result = grade_responses(
            args.responses,
            args.data_dir,
            allow_code_execution=args.allow_code_execution,
            authors_compat=args.authors_compat,
            code_timeout_s=args.code_timeout,
        )
    else:
        result = _evaluate_models(args)
    paths = write_results(result, args.output)
    print(results_markdown(result), end="")
    for path in paths.values():
        print(f"wrote {path}")
