"""`wmss` command line: the table of sub-commands and the entry point; one line per user error, never a traceback.

The method's commands live in `wmss.commands`; `wmss demo`, `wmss eval` and `wmss prepare` in their packages'
`cli` modules. Each is imported only when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from wmss.errors import WMSSError


@dataclass(frozen=True)
class Command:
    """One sub-command: where its options and its action live, imported only when it runs (`wmss --help` is fast)."""

    module: str
    help: str
    options: str = "add_arguments"
    action: str = "run_cli"


def _method(name: str, help_: str) -> Command:
    """A command of the method, in `wmss.commands`: `<name>_options(parser)` and `<name>(args)`."""
    return Command("wmss.commands", help_, f"{name}_options", name)


COMMANDS: dict[str, Command] = {
    "sft": _method("sft", "Phase 1: supervised fine-tuning M0 -> M1 (completion-only loss)."),
    "entropy": _method("entropy", "Per-sample mean completion entropy of a model (Eq. 3/8)."),
    "curriculum": _method("curriculum", "Phase 2: entropy-gap sampling weights and active set (Eq. 9-10)."),
    "joint": _method("joint", "Phase 3: joint weak/strong training on mixed logits (Eq. 11-12)."),
    "extract": _method("extract", "Write the strong (or weak) branch as a plain HF checkpoint."),
    "run": _method("run", "Algorithm 1 end to end, resumable, in one run directory."),
    "compare": _method(
        "compare", "WMSS vs baselines and controls from the same M1, over seeds and sweeps, with paired CIs."
    ),
    "diagnose": _method(
        "diagnose",
        "Logit statistics and the mixed-CE gradient probe of models on training data (Tables 2/6).",
    ),
    "regime": _method(
        "regime", "Premise checks: is a weak/strong pair in the regime the paper's claim is about?"
    ),
    "demo": Command("wmss.demo.cli", "Offline demo: tiny tokenizer, model and task; WMSS vs continued SFT."),
    "eval": Command("wmss.eval.cli", "Evaluate models on math/code benchmarks or grade saved responses."),
    "prepare": Command(
        "wmss.prepare.cli", "Build the paper's training data from AM-DeepSeek-R1-Distilled, verified."
    ),
}


def _root_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wmss",
        description="Weak-Driven Learning (WMSS) for any Hugging Face causal LM.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n"
        + "\n".join(f"  {name:<11} {command.help}" for name, command in COMMANDS.items())
        + "\n\nRun `wmss <command> --help` for the options of one command.",
    )
    parser.add_argument(
        "command", choices=list(COMMANDS), metavar="command", help="one of the commands below"
    )
    return parser


def build_parser(command: str) -> argparse.ArgumentParser:
    """Return the argument parser of one sub-command."""
    spec = COMMANDS[command]
    module = importlib.import_module(spec.module)
    parser = argparse.ArgumentParser(
        prog=f"wmss {command}", description=spec.help, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    getattr(module, spec.options)(parser)
    parser.set_defaults(_run=getattr(module, spec.action))
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
