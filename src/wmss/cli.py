"""`wmss` command line: one sub-command per WMSS phase, plus the pipeline, the demo and evaluation."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from wmss.errors import WMSSError

# Sub-commands are imported lazily so that `wmss --help` stays fast; each module exposes
# `add_arguments(parser)` and `run_cli(args)`.
COMMANDS: dict[str, tuple[str, str]] = {
    "sft": ("wmss.phases.sft", "Phase 1: supervised fine-tuning M0 -> M1 (completion-only loss)."),
    "entropy": ("wmss.phases.entropy", "Per-sample mean completion entropy of a model (Eq. 3/8)."),
    "curriculum": (
        "wmss.phases.curriculum",
        "Phase 2: entropy-gap sampling weights and active set (Eq. 9-10).",
    ),
    "joint": ("wmss.phases.joint", "Phase 3: joint weak/strong training on mixed logits (Eq. 11-12)."),
    "extract": ("wmss.phases.extract", "Write the strong (or weak) branch as a plain HF checkpoint."),
    "run": ("wmss.pipeline", "Algorithm 1 end to end, resumable, in one run directory."),
    "compare": (
        "wmss.compare.runner",
        "WMSS vs baselines and controls from the same M1, over seeds and sweeps, with paired CIs.",
    ),
    "diagnose": (
        "wmss.diagnostics",
        "Logit statistics and the mixed-CE gradient probe of models on training data (Tables 2/6).",
    ),
    "regime": (
        "wmss.regime_cli",
        "Premise checks: is a weak/strong pair in the regime the paper's claim is about?",
    ),
    "demo": ("wmss.demo.cli", "Offline demo: tiny tokenizer, model and task; WMSS vs continued SFT."),
    "eval": ("wmss.eval.cli", "Evaluate models on math/code benchmarks or grade saved responses."),
    "prepare": (
        "wmss.prepare.cli",
        "Build the paper's training data from AM-DeepSeek-R1-Distilled, verified.",
    ),
}


def _root_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wmss",
        description="Weak-Driven Learning (WMSS) for any Hugging Face causal LM.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n"
        + "\n".join(f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items())
        + "\n\nRun `wmss <command> --help` for the options of one command.",
    )
    parser.add_argument(
        "command", choices=list(COMMANDS), metavar="command", help="one of the commands below"
    )
    return parser


def build_parser(command: str) -> argparse.ArgumentParser:
    """Return the argument parser of one sub-command."""
    module_name, help_ = COMMANDS[command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(
        prog=f"wmss {command}", description=help_, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    module.add_arguments(parser)
    parser.set_defaults(_run=module.run_cli)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `wmss` console script; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        _root_parser().print_help(sys.stderr)
        return 2
    if argv[0] not in COMMANDS:
        _root_parser().parse_args(argv[:1])  # prints help or "invalid choice" and exits
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser(argv[0]).parse_args(argv[1:])
    try:
        args._run(args)
    except WMSSError as exc:
        print(f"wmss {argv[0]}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"wmss {argv[0]}: interrupted; re-run the same command to resume.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
