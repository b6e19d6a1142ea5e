"""`wmss prepare am-r1`: the paper's training data from AM-DeepSeek-R1-Distilled-1.4M (see `wmss.prepare`)."""

from __future__ import annotations

import argparse

from wmss.prepare.am_r1 import prepare_am_r1
from wmss.prepare.decontam import DEFAULT_NGRAM
from wmss.prepare.dedup import DEDUP_MODES
from wmss.prepare.filters import FORMATS, POLICIES
from wmss.prepare.options import DEFAULT_MAX_LENGTH, PrepareOptions
from wmss.prepare.shards import HUB_CONFIGS
from wmss.prepare.verify import GRADERS


def _comma_list(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the `wmss prepare` options."""
    parser.add_argument("dataset", choices=("am-r1",), help="am-r1: a-m-team/AM-DeepSeek-R1-Distilled-1.4M")
    parser.add_argument(
        "--input",
        required=True,
        help="a shard (.jsonl, .jsonl.zst, .jsonl.gz, .parquet), a directory of shards, or hub:<dataset id>",
    )
    parser.add_argument(
        "--output", required=True, help="training JSONL to write (the report goes next to it)"
    )
    parser.add_argument("--math", choices=POLICIES["math"], default="verify", help="math samples")
    parser.add_argument(
        "--code", choices=POLICIES["code"], default="drop", help="code samples; verify runs their test cases"
    )
    parser.add_argument(
        "--other",
        choices=POLICIES["other"],
        default="drop",
        help="samples with no reference answer nor tests",
    )
    parser.add_argument(
        "--format",
        dest="response_format",
        choices=FORMATS,
        default="strict",
        help="response format check: strict = the authors' exact pattern",
    )
    parser.add_argument(
        "--grader",
        choices=GRADERS,
        default="wmss",
        help="math grader: wmss eval's, or the authors' LaTeX-only one",
    )
    parser.add_argument(
        "--tokenizer", help="target model (directory or hub id) whose tokenizer counts tokens"
    )
    parser.add_argument(
        "--max-length",
        type=int,
        help=f"drop examples over this many tokens (with --tokenizer; {DEFAULT_MAX_LENGTH} when not given)",
    )
    parser.add_argument(
        "--system-prompt",
        default="reasoning",
        help='system prompt of the training run, counted in the length: "reasoning", "none" or text',
    )
    parser.add_argument("--dedup", choices=DEDUP_MODES, default="normalized", help="prompt de-duplication")
    parser.add_argument(
        "--decontaminate",
        action="append",
        default=[],
        metavar="PATH",
        help="benchmark file, or directory of <name>/test.json files, to decontaminate against (repeatable)",
    )
    parser.add_argument(
        "--ngram", type=int, default=DEFAULT_NGRAM, help="words per n-gram for decontamination"
    )
    parser.add_argument(
        "--allow-code-execution", action="store_true", help="allow running code samples (with --code verify)"
    )
    parser.add_argument("--code-timeout", type=float, default=10.0, help="seconds per code test program")
    parser.add_argument("--workers", type=int, help="processes (default: min(CPU cores, shards))")
    parser.add_argument(
        "--hub-configs",
        type=_comma_list,
        default=HUB_CONFIGS,
        help="configs streamed for a hub:<dataset id> input, comma-separated",
    )


def run_cli(args: argparse.Namespace) -> None:
    """Run `wmss prepare` with parsed arguments."""
    options = PrepareOptions(
        input=args.input,
        output=args.output,
        math=args.math,
        code=args.code,
        other=args.other,
        response_format=args.response_format,
        grader=args.grader,
        tokenizer=args.tokenizer,
        max_length=args.max_length,
        system_prompt=None if args.system_prompt.lower() == "none" else args.system_prompt,
        dedup=args.dedup,
        benchmarks=tuple(args.decontaminate),
        ngram=args.ngram,
        code_timeout_s=args.code_timeout,
        allow_code_execution=args.allow_code_execution,
        workers=args.workers,
        hub_configs=tuple(args.hub_configs),
    )
    result = prepare_am_r1(options)
    print(
        f"kept {result.kept} of {result.read} rows -> {result.output} ({result.shards_processed} shard(s) "
        f"filtered, {result.shards_reused} reused); report: {result.report}"
    )
