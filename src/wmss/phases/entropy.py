"""Per-sample mean completion entropy of one model over the training data (Eq. 3/8), sharded across processes."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from wmss import defaults
from wmss.cli_args import add_config_arguments, config_from_args
from wmss.config import RunConfig, require
from wmss.data import make_collator
from wmss.errors import DataError
from wmss.io import atomic_write_json, ensure_output_file, read_json_object
from wmss.method.entropy import chunked_sample_entropy, sample_entropy, scored_token_counts
from wmss.method.joint_model import uses_plain_output_head
from wmss.models import check_model_path, load_causal_lm, load_tokenizer
from wmss.phases.common import data_inputs, load_training_data
from wmss.training import process_state

logger = logging.getLogger(__name__)


@torch.no_grad()
def dataset_entropies(
    model: PreTrainedModel,
    dataset: Dataset,
    collator: Any,
    batch_size: int = 8,
    chunk_size: int = defaults.CHUNK_SIZE,
    state: PartialState | None = None,
) -> dict[int, tuple[float, int]]:
    """Map each sample's idx to (mean completion entropy, scored tokens); work is split across processes."""
    state = state or process_state()
    model.eval()
    # Length-sorted batches waste little compute on padding.
    lengths = [len(ids) for ids in dataset["input_ids"]]
    order = sorted(range(len(dataset)), key=lengths.__getitem__)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    results: list[tuple[int, float, int]] = []
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    plain_head = uses_plain_output_head(model)
    # Every n-th batch per rank, so that the long (late, length-sorted) batches are spread over all ranks.
    shard = batches[state.process_index :: state.num_processes]
    for batch_rows in tqdm(shard, desc="entropy", disable=not state.is_local_main_process):
        rows = dataset.select(batch_rows)
        batch = collator([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])
        batch = {k: v.to(state.device) for k, v in batch.items()}
        inputs = {
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "use_cache": False,
        }
        if plain_head:
            entropy = chunked_sample_entropy(
                decoder(**inputs)[0], head, batch["labels"], chunk_size=chunk_size
            )
        else:  # soft-capped or scaled logits: only the model's own forward computes them right
            entropy = sample_entropy(model(**inputs).logits, batch["labels"])
        counts = scored_token_counts(batch["labels"])
        results += [(int(i), float(h), int(n)) for i, h, n in zip(rows["idx"], entropy, counts, strict=True)]
    gathered = gather_object(results) if state.num_processes > 1 else results
    return {idx: (h, n) for idx, h, n in gathered}


def run_entropy(
    config: RunConfig, model_path: str, output_file: str | Path, data_cache: Path | None = None
) -> Path:
    """Compute entropies of `model_path` on the configured data and write them (keyed by idx) to JSON."""
    state = process_state()
    # Before the model runs, not after; never over the data or the model it reads.
    output_file = ensure_output_file(output_file, {"the model": model_path, **data_inputs(config)})
    check_model_path(model_path)
    tokenizer = load_tokenizer(model_path, config.model)
    data = load_training_data(config, tokenizer, data_cache)
    model = load_causal_lm(model_path, config.model).to(state.device)
    values = dataset_entropies(
        model,
        data.dataset,
        make_collator(tokenizer),
        batch_size=config.wmss.entropy_batch_size,
        chunk_size=config.wmss.loss_chunk_size,
        state=state,
    )
    if state.is_main_process:
        idx = sorted(values)
        atomic_write_json(
            output_file,
            {
                "model": str(model_path),
                "data_fingerprint": data.fingerprint,
                "n": len(idx),
                "mean_entropy": sum(values[i][0] for i in idx) / max(len(idx), 1),
                "idx": idx,
                "entropy": [values[i][0] for i in idx],
                "n_tokens": [values[i][1] for i in idx],
            },
        )
        logger.info("entropy of %s on %d samples -> %s", model_path, len(idx), output_file)
    state.wait_for_everyone()
    return output_file


ENTROPY_REMEDY = (
    "delete it and re-run the command that wrote it (`wmss entropy`, or the same `wmss run`/`wmss compare`, "
    "which recomputes that entropy stage)"
)


def _numbers(path: Path, data: dict[str, Any], key: str, kinds: tuple[type, ...]) -> list[Any]:
    values = data[key]
    if not all(isinstance(v, kinds) and not isinstance(v, bool) for v in values):
        raise DataError(f"{path}: field '{key}' must hold only numbers; {ENTROPY_REMEDY}")
    return values


def read_entropy_file(path: str | Path) -> dict[str, Any]:
    """Read an entropy file written by `run_entropy`, checking every field; DataError naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"entropy file not found: {path}")
    fields = {"idx": list, "entropy": list, "data_fingerprint": str, "model": str}
    data = read_json_object(path, fields, ENTROPY_REMEDY)
    idx = _numbers(path, data, "idx", (int,))
    entropy = _numbers(path, data, "entropy", (int, float))
    if len(idx) != len(entropy):
        raise DataError(
            f"{path}: 'idx' has {len(idx)} entries but 'entropy' has {len(entropy)}; {ENTROPY_REMEDY}"
        )
    if len(set(idx)) != len(idx):
        raise DataError(f"{path}: 'idx' repeats sample ids; {ENTROPY_REMEDY}")
    if not all(math.isfinite(h) and h >= 0 for h in entropy):
        raise DataError(f"{path}: 'entropy' holds negative or non-finite values; {ENTROPY_REMEDY}")
    return data


SHORTCUTS = {
    "data": "data.train",
    "batch_size": "wmss.entropy_batch_size",
    "system_prompt": "data.system_prompt",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss entropy`."""
    add_config_arguments(parser)
    parser.add_argument("--model", required=True, help="model directory or hub id")
    parser.add_argument("--data", help="training data: JSONL file or HF dataset name (data.train)")
    parser.add_argument("--system-prompt", help="'reasoning' (the paper's prompt) or literal text")
    parser.add_argument("--batch-size", type=int, help="sequences per forward pass (wmss.entropy_batch_size)")
    parser.add_argument("--output", required=True, help="JSON file to write (idx -> mean completion entropy)")


def run_cli(args: argparse.Namespace) -> None:
    """Run `wmss entropy`."""
    config = config_from_args(args, SHORTCUTS)
    require(config, "data.train")
    path = run_entropy(config, args.model, args.output)
    print(f"entropies written to {path}")
