"""The tokenised-data cache: reused when nothing changed, rebuilt when data, settings or tokenizer change."""

from __future__ import annotations

import os

from tests.helpers import make_tiny_tokenizer
from wmss.config import DataConfig
from wmss.data.cache import cache_key, cached_dataset


def test_cache_is_reused_and_identical(tmp_path, train_jsonl, tokenizer):
    cfg = DataConfig(train=str(train_jsonl))
    first = cached_dataset(cfg, tokenizer, tmp_path)
    second = cached_dataset(cfg, tokenizer, tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    assert second.fingerprint == first.fingerprint
    assert second.stats == first.stats
    assert second.dataset["input_ids"] == first.dataset["input_ids"]


def test_key_changes_with_settings_source_and_tokenizer(tmp_path, tokenizer):
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "1+1?", "completion": "2"}\n')
    cfg = DataConfig(train=str(data))
    key = cache_key(cfg, tokenizer)
    assert cache_key(DataConfig(train=str(data), max_length=64), tokenizer) != key
    assert cache_key(cfg, make_tiny_tokenizer(chat_template=False)) != key
    data.write_text('{"prompt": "1+2?", "completion": "3"}\n')
    os.utime(data, ns=(1, 1))
    assert cache_key(cfg, tokenizer) != key
