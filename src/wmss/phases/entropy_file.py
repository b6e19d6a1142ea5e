"""The entropy file of one model: its per-sample mean completion entropy (Eq. 3/8) over the training data.

`run_entropy` scores the configured data (sharded across processes, `model_entropies`) and writes the file, keyed
by idx;
`read_entropy_file` reads one back, checking every field.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from accelerate import PartialState

from wmss.config import RunConfig
from wmss.data import TrainingData, make_collator
from wmss.errors import DataError
from wmss.io import atomic_write_json, ensure_output_file, read_json_object
from wmss.method.entropy import dataset_entropies
from wmss.models import check_model_path, load_causal_lm, load_tokenizer
from wmss.phases.common import data_inputs, load_training_data
from wmss.training import process_state

logger = logging.getLogger(__name__)


def model_entropies(
    config: RunConfig, model_path: str, data: TrainingData, tokenizer: Any, state: PartialState | None = None
) -> dict[int, tuple[float, int]]:
    """(mean completion entropy, scored tokens) of every sample of tokenised training data under one model, by idx."""
    state = state or process_state()
    model = load_causal_lm(model_path, config.model).to(state.device)
    scores = dataset_entropies(
        model,
        data.dataset,
        make_collator(tokenizer),
        batch_size=config.wmss.entropy_batch_size,
        chunk_size=config.wmss.loss_chunk_size,
        state=state,
    )
    return dict(zip(data.dataset["idx"], scores, strict=True))


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
    values = model_entropies(config, model_path, data, tokenizer, state)
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
