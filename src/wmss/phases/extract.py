"""Extraction: the strong branch of a joint run as a standalone HF checkpoint (zero extra inference cost)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from wmss.config import ModelConfig
from wmss.errors import ModelError
from wmss.io import atomic_write_text, ensure_directory
from wmss.method.joint_model import JOINT_MARKER
from wmss.method.lora import WEAK
from wmss.models import load_causal_lm, load_tokenizer
from wmss.phases.common import save_model_dir

logger = logging.getLogger(__name__)


def _is_joint_folder(folder: Path) -> bool:
    # WMSSTrainer marks what it saves; folders saved before the marker existed show their weak branch, or are
    # the `final/` beside the summary.json of a `wmss joint` stage directory.
    legacy_final = folder.name == "final" and (folder.parent / "summary.json").is_file()
    return (folder / JOINT_MARKER).is_file() or (folder / WEAK / "config.json").is_file() or legacy_final


def branch_dir(joint_dir: str | Path, branch: str = "strong") -> Path:
    """Locate a branch in a joint stage directory, its `final/` folder, or a `checkpoint-N` folder."""
    root = Path(joint_dir)
    # WMSSTrainer's layout: the strong model at a folder's root, the weak one in its `weak/` subfolder.
    sub = "" if branch == "strong" else WEAK
    folders = (root / "final", root)
    candidates = tuple(folder / sub for folder in folders)
    for folder, candidate in zip(folders, candidates, strict=True):
        if not (candidate / "config.json").is_file():
            continue
        if not _is_joint_folder(folder):
            raise ModelError(
                f"{folder} is a plain model, not the output of `wmss joint` (no {JOINT_MARKER}, no weak/ "
                "branch): give a joint stage directory, its final/ or a checkpoint-N folder; a plain model "
                "needs no extraction"
            )
        return candidate
    raise ModelError(
        f"no '{branch}' model under {root}: expected {candidates[0]} (a finished `wmss joint` run) "
        f"or {candidates[1]} (a checkpoint-N directory)"
    )


PAPER_URL = "https://arxiv.org/abs/2602.08222"


def model_card(
    base_model: str | None,
    hyperparameters: dict[str, Any] | None = None,
    datasets: list[str] | None = None,
    evaluation: dict[str, float] | None = None,
) -> str:
    """A Hugging Face model card (YAML metadata + Markdown) describing a WMSS-trained model."""
    meta = {
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["wmss", "weak-driven-learning"],
    }
    if base_model:
        meta["base_model"] = base_model
    if datasets:
        meta["datasets"] = list(datasets)
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "", "# WMSS model", ""]
    lines += [
        f"Trained with WMSS (Weak-Driven Learning, [arXiv 2602.08222]({PAPER_URL})): SFT of the base model, "
        "an entropy-gap curriculum, then joint training of weak and strong on mixed logits "
        "z_mix = λ·z_strong + (1-λ)·z_weak; this is the strong model, a plain checkpoint.",
        "",
        f"- Base model: {base_model or 'not recorded'}",
        f"- Data: {', '.join(datasets) if datasets else 'not recorded'}",
    ]
    if hyperparameters:
        lines += ["", "## Hyperparameters", "", "| name | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(hyperparameters.items())]
    if evaluation:
        lines += ["", "## Evaluation", "", "| benchmark | score |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(evaluation.items())]
    return "\n".join(lines) + "\n"


def run_extract(
    joint_dir: str | Path,
    output_dir: str | Path,
    branch: str = "strong",
    model_cfg: ModelConfig | None = None,
    card: dict[str, Any] | None = None,
) -> Path:
    """Write one branch of a joint run as a plain HF checkpoint with a model card (README.md)."""
    source = branch_dir(joint_dir, branch)
    # The output is replaced as a whole: it must neither be nor hold the joint run it reads.
    ensure_directory(output_dir, {"the joint run (--joint)": joint_dir}, replaces=True)
    # Only loading options (trust_remote_code, attention) apply: the weights keep the dtype they were saved in.
    model_cfg = replace(model_cfg or ModelConfig(), tokenizer=None)
    model = load_causal_lm(str(source), model_cfg, dtype="auto")
    tokenizer = load_tokenizer(str(source), model_cfg)
    path = save_model_dir(model, tokenizer, Path(output_dir))
    atomic_write_text(path / "README.md", model_card(**(card or {"base_model": None})))
    return path
