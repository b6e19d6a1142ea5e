"""The data layer: training records -> rendered prompt/completion -> tokenised examples with masked labels.

`records` reads and validates (JSONL/JSON files, Hugging Face datasets), `render` applies the chat template
or the plain format, `encode` tokenises, truncates, fingerprints and collates.
"""

from __future__ import annotations

from wmss.data.encode import (
    FEATURES,
    IGNORE_INDEX,
    TrainingData,
    build_dataset,
    dataset_fingerprint,
    encode_example,
    make_collator,
    tokenize_records,
)
from wmss.data.records import DataStats, load_records
from wmss.data.render import has_chat_template, render_example

__all__ = [
    "FEATURES",
    "IGNORE_INDEX",
    "DataStats",
    "TrainingData",
    "build_dataset",
    "dataset_fingerprint",
    "encode_example",
    "has_chat_template",
    "load_records",
    "make_collator",
    "render_example",
    "tokenize_records",
]
