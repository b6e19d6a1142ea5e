"""Extraction: the strong branch of a joint run as a standalone HF checkpoint (zero extra inference cost)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from wmss.config import ModelConfig
from wmss.errors import ModelError
from wmss.models import load_causal_lm, load_tokenizer
from wmss.phases.common import save_model_dir

logger = logging.getLogger(__name__)


def branch_dir(joint_dir: str | Path, branch: str = "strong") -> Path:
    """Locate a branch in a joint stage directory, its `final/` folder, or a `checkpoint-N` folder."""
    root = Path(joint_dir)
    for candidate in (root / "final" / branch, root / branch):
        if (candidate / "config.json").is_file():
            return candidate
    raise ModelError(
        f"no '{branch}' model under {root}: expected {root / 'final' / branch} (a finished `wmss joint` run) "
        f"or {root / branch} (a checkpoint-N directory)"
    )


def run_extract(
    joint_dir: str | Path,
    output_dir: str | Path,
    branch: str = "strong",
    model_cfg: ModelConfig | None = None,
) -> Path:
    """Write one branch of a joint run as a plain HF checkpoint (safetensors, config, tokenizer, generation)."""
    source = branch_dir(joint_dir, branch)
    # Only loading options (trust_remote_code, attention) apply: the weights keep the dtype they were saved in.
    model_cfg = replace(model_cfg or ModelConfig(), tokenizer=None)
    model = load_causal_lm(str(source), model_cfg, dtype="auto")
    tokenizer = load_tokenizer(str(source), model_cfg)
    return save_model_dir(model, tokenizer, Path(output_dir))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss extract`."""
    parser.add_argument("--joint", required=True, help="output directory of `wmss joint` (or a checkpoint-N)")
    parser.add_argument("--output", required=True, help="directory for the standalone checkpoint")
    parser.add_argument(
        "--branch", choices=["strong", "weak"], default="strong", help="which model to extract"
    )


def run_cli(args: argparse.Namespace) -> None:
    """Run `wmss extract`."""
    path = run_extract(args.joint, args.output, args.branch)
    print(f"{args.branch} model written to {path} (load it with AutoModelForCausalLM.from_pretrained)")
