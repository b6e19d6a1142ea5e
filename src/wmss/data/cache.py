"""Tokenised training data cached on disk, so the stages of one run tokenise the data once."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import datasets

from wmss.config import DataConfig
from wmss.data.encode import TrainingData, build_dataset
from wmss.data.records import DataStats
from wmss.io import atomic_directory, atomic_write_json, read_json

logger = logging.getLogger(__name__)


def source_state(train: str | None) -> Any:
    """Identity of a data source: its files' paths, sizes and modification times, or a hub name itself."""
    path = Path(train or "").expanduser()
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else []
    )
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files] or train


def _tokenizer_state(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocab = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    parts = [vocab, str(tokenizer.chat_template), str(tokenizer.eos_token), str(tokenizer.bos_token)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cache_key(cfg: DataConfig, tokenizer: Any) -> str:
    """Hash of everything tokenisation depends on: data settings, source files and tokenizer."""
    payload = [dataclasses.asdict(cfg), source_state(cfg.train), _tokenizer_state(tokenizer)]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_dataset(cfg: DataConfig, tokenizer: Any, cache_dir: Path, write: bool = True) -> TrainingData:
    """`build_dataset`, reusing the copy under `cache_dir` when data, settings and tokenizer are unchanged."""
    folder = Path(cache_dir) / cache_key(cfg, tokenizer)
    if (folder / "meta.json").is_file():
        meta = read_json(folder / "meta.json")
        logger.info(
            "data %s: tokenised copy from %s (fingerprint %s)", cfg.train, folder, meta["fingerprint"]
        )
        dataset = datasets.load_from_disk(str(folder / "dataset"))
        return TrainingData(dataset, DataStats(**meta["stats"]), meta["fingerprint"])
    data = build_dataset(cfg, tokenizer)
    if write:
        with atomic_directory(folder) as tmp:
            data.dataset.save_to_disk(str(tmp / "dataset"))
            atomic_write_json(
                tmp / "meta.json", {"fingerprint": data.fingerprint, "stats": data.stats.to_dict()}
            )
    return data
