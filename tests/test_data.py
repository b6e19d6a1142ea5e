"""Data layer: loading/validation, idx, rendering, prompt-token masking, truncation, fingerprint, collator."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import datasets
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import ALPHABET, BOS, EOS, IM_END, PAD, make_tiny_tokenizer
from wmss.config import DataConfig
from wmss.data import (
    IGNORE_INDEX,
    DataStats,
    build_dataset,
    encode,
    encode_example,
    load_records,
    make_collator,
    render_example,
    tokenize_records,
)
from wmss.errors import ConfigError, DataError
from wmss.prompts import REASONING_SYSTEM_PROMPT


def chat(prompt: str, completion: str, system: str | None = None, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    return {"messages": messages, **extra}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def config(path: Path | str, **kwargs: Any) -> DataConfig:
    return DataConfig(train=str(path), **kwargs)


def completion_span(row: dict[str, Any]) -> list[int]:
    return [label for label in row["labels"] if label != IGNORE_INDEX]


ROWS = [
    chat("What is 2+2?", "<think>2+2=4</think> <answer>4</answer>"),
    {"prompt": "Name a colour.", "completion": "Blue."},
    chat("Hi", "Hello!", system="Be terse."),
    {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
            {"role": "assistant", "content": "d"},
        ]
    },
]


@pytest.mark.parametrize("template", [True, False], ids=["chat_template", "plain"])
def test_prompt_tokens_never_labelled(tmp_path: Path, template: bool) -> None:
    tokenizer = make_tiny_tokenizer(chat_template=template)
    cfg = config(write_jsonl(tmp_path / "train.jsonl", ROWS), system_prompt="reasoning")
    records, _ = load_records(cfg)
    data = build_dataset(cfg, tokenizer)
    assert data.dataset.column_names == ["idx", "input_ids", "labels"]
    assert len(data.dataset) == len(ROWS)
    for record, row in zip(records, data.dataset, strict=True):
        prompt_ids, completion_ids = encode_example(record, tokenizer, cfg.system_prompt)
        n = len(prompt_ids)
        assert row["input_ids"] == prompt_ids + completion_ids
        assert row["labels"][:n] == [IGNORE_INDEX] * n
        assert row["labels"][n:] == row["input_ids"][n:]
        _, completion_text = render_example(record, tokenizer, cfg.system_prompt)
        assert tokenizer.decode(completion_span(row)) == completion_text
        assert completion_text.startswith(record["completion"])
    assert data.stats.n_completion_tokens == sum(len(completion_span(row)) for row in data.dataset)


def test_chat_template_rendering() -> None:
    tokenizer = make_tiny_tokenizer()
    record = {"system": None, "prompt_messages": [{"role": "user", "content": "Q"}], "completion": "A"}
    prompt, completion = render_example(record, tokenizer, None)
    assert prompt == "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    assert completion == "A<|im_end|>\n"


def test_plain_rendering_multi_turn_and_eos() -> None:
    tokenizer = make_tiny_tokenizer(chat_template=False)
    record = {
        "system": None,
        "prompt_messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ],
        "completion": "d",
    }
    assert render_example(record, tokenizer, None) == (
        "User: a\nAssistant: b\nUser: c\nAssistant: ",
        "d" + EOS,
    )
    record["prompt_messages"] = record["prompt_messages"][:1]
    assert render_example(record, tokenizer, "Sys") == ("Sys\n\nUser: a\nAssistant: ", "d" + EOS)


def test_template_fallback_when_full_render_is_not_prefixed() -> None:
    # A generation prompt that the full rendering does not repeat, as with templates that rewrite history.
    tokenizer = make_tiny_tokenizer()
    tokenizer.chat_template = tokenizer.chat_template.replace(
        "assistant\\n' }}{%- endif", "assistant\\n<think>' }}{%- endif"
    )
    record = {"system": None, "prompt_messages": [{"role": "user", "content": "Q"}], "completion": "A!"}
    prompt, completion = render_example(record, tokenizer, None)
    assert prompt.endswith("assistant\n<think>")
    assert completion == "A!<|im_end|>\n"
    # A template that rewrites the content itself: the end-of-turn token is <|im_end|>.
    tokenizer.chat_template = tokenizer.chat_template.replace(
        "message['content']", "message['content'] | upper"
    )
    record["completion"] = "ok"
    assert render_example(record, tokenizer, None)[1] == "ok" + IM_END


@pytest.mark.parametrize("template", [True, False], ids=["chat_template", "plain"])
def test_system_prompts(tmp_path: Path, template: bool) -> None:
    tokenizer = make_tiny_tokenizer(chat_template=template)
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"prompt": "p", "completion": "c"},
            {"prompt": "p", "completion": "c", "system": "Own system."},
            chat("p", "c", system="Chat system."),
            {"prompt": "p", "completion": "c", "system": "  "},
        ],
    )
    for value, expected in [("reasoning", REASONING_SYSTEM_PROMPT), ("Be brief.", "Be brief."), (None, None)]:
        records, _ = load_records(config(path))
        prompts = [render_example(r, tokenizer, value)[0] for r in records]
        for prompt in (prompts[0], prompts[3]):
            assert (expected in prompt) if expected else ("\n\n" not in prompt and "system" not in prompt)
        assert "Own system." in prompts[1] and "Chat system." in prompts[2]
        for prompt in prompts[1:3]:
            assert REASONING_SYSTEM_PROMPT not in prompt and "Be brief." not in prompt


def test_records_are_normalised(tmp_path: Path) -> None:
    records, stats = load_records(config(write_jsonl(tmp_path / "train.jsonl", ROWS)))
    assert stats == DataStats(
        n_read=4, n_bad=0, n_truncated=0, n_dropped=0, n_examples=0, n_completion_tokens=0
    )
    assert records[1] == {
        "idx": 1,
        "system": None,
        "prompt_messages": [{"role": "user", "content": "Name a colour."}],
        "completion": "Blue.",
        "source": f"{tmp_path / 'train.jsonl'}:2",
    }
    assert records[2]["system"] == "Be terse."
    assert records[3]["prompt_messages"] == ROWS[3]["messages"][:3]
    assert records[3]["completion"] == "d"


def test_field_map(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [{"question": "q", "solution": "s", "id": 7}, {"conversation": chat("u", "a")["messages"], "id": 9}],
    )
    cfg = config(
        path,
        field_map={"prompt": "question", "completion": "solution", "messages": "conversation", "idx": "id"},
    )
    records, _ = load_records(cfg)
    assert [(r["idx"], r["prompt_messages"][0]["content"], r["completion"]) for r in records] == [
        (7, "q", "s"),
        (9, "u", "a"),
    ]
    with pytest.raises(DataError, match=r"line 1: has neither a 'messages' field nor 'prompt'/'completion'"):
        load_records(config(path))
    with pytest.raises(ConfigError, match=r"'data\.field_map' has unknown key\(s\) promt"):
        load_records(config(path, field_map={"promt": "question"}))


def test_forced_format(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "p", "completion": "c"}])
    with pytest.raises(DataError, match=r"train\.jsonl line 1: field 'messages' is missing"):
        load_records(config(path, format="chat"))
    path = write_jsonl(tmp_path / "chat.jsonl", [chat("p", "c")])
    with pytest.raises(DataError, match=r"chat\.jsonl line 1: field 'prompt' is missing"):
        load_records(config(path, format="prompt_completion"))


def test_idx_own_and_line_number(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [chat("a", "b"), "", {"prompt": "p", "completion": "c", "idx": 100}, "   ", chat("x", "y")],
    )
    records, stats = load_records(config(path))
    assert [r["idx"] for r in records] == [0, 100, 4]  # line number minus 1; blank lines keep their number
    assert [r["source"].rsplit(":", 1)[1] for r in records] == ["1", "3", "5"]
    assert stats.n_read == 3
    data = build_dataset(config(path), make_tiny_tokenizer())
    assert data.dataset["idx"] == [0, 100, 4]


def test_duplicate_idx_names_both_lines(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "train.jsonl", [chat("a", "b", idx=5), chat("c", "d"), chat("e", "f", idx=1)]
    )
    with pytest.raises(
        DataError, match=r"train\.jsonl line 3: duplicate idx 1 \(already used by .*train\.jsonl line 2\)"
    ):
        load_records(config(path))


def test_json_array_file(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps([chat("a", "b"), {"prompt": "p", "completion": "c", "idx": 10}], indent=2))
    records, _ = load_records(config(path))
    assert [r["idx"] for r in records] == [0, 10]
    path.write_text(json.dumps([chat("a", "b"), {"prompt": "p"}], indent=2))
    with pytest.raises(DataError, match=r"train\.json item 1: field 'completion' is missing"):
        load_records(config(path))
    path.write_text('[{"prompt": "p",\n "completion": }]')
    with pytest.raises(DataError, match=r"train\.json line 2: invalid JSON"):
        load_records(config(path))


def test_saved_dataset_directory(tmp_path: Path) -> None:
    rows = [{"prompt": "p0", "completion": "c0"}, {"prompt": "p1", "completion": "c1"}]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "single"))
    records, _ = load_records(config(tmp_path / "single"))
    assert [(r["idx"], r["completion"], r["source"]) for r in records] == [
        (0, "c0", f"{tmp_path / 'single'}[0]"),
        (1, "c1", f"{tmp_path / 'single'}[1]"),
    ]
    chats = [chat("u", "a", idx=3), chat("v", "b", idx=4)]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(chats)}).save_to_disk(str(tmp_path / "dict"))
    assert [r["idx"] for r in load_records(config(tmp_path / "dict"))[0]] == [3, 4]
    with pytest.raises(DataError, match=r"no split 'test' \(available: train\)"):
        load_records(config(tmp_path / "dict", split="test"))


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the Arrow files `load_dataset` prepares out of the user's cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    return tmp_path / "hf_cache"


def test_plain_data_directory(tmp_path: Path, hf_cache: Path) -> None:
    (tmp_path / "dir").mkdir()
    write_jsonl(tmp_path / "dir" / "train.jsonl", [chat("u", "a"), chat("v", "b")])
    records, _ = load_records(config(tmp_path / "dir"))
    assert [(r["idx"], r["completion"]) for r in records] == [(0, "a"), (1, "b")]
    assert hf_cache.is_dir()


def test_parquet_file(tmp_path: Path, hf_cache: Path) -> None:
    datasets.Dataset.from_list([{"question": "q", "answer": "a"}]).to_parquet(str(tmp_path / "t.parquet"))
    records, _ = load_records(
        config(tmp_path / "t.parquet", field_map={"prompt": "question", "completion": "answer"})
    )
    assert records[0]["completion"] == "a" and records[0]["source"].endswith("t.parquet[0]")


def test_hub_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def fake_load_dataset(name: str, split: str) -> datasets.Dataset:
        calls.append((name, split))
        return datasets.Dataset.from_list([chat("u", "a"), chat("v", "")])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    with pytest.raises(
        DataError, match=r"org/set row 1: field 'messages'\[1\] \(the final assistant turn\) is empty"
    ):
        load_records(DataConfig(train="org/set", split="dev"))
    assert calls == [("org/set", "dev")]
    records, stats = load_records(DataConfig(train="org/set", skip_bad_records=True))
    assert [r["idx"] for r in records] == [0] and stats.n_bad == 1


def test_hub_unreachable_and_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(name: str, split: str) -> None:
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"'org/nope' does not exist as a local file.*Hugging Face.*offline"):
        load_records(DataConfig(train="org/nope"))
    with pytest.raises(DataError, match=r"data file not found: .*missing\.jsonl"):
        load_records(config(tmp_path / "missing.jsonl"))
    with pytest.raises(DataError, match=r"set 'data\.train'"):
        load_records(DataConfig())


BAD_LINES = [
    ('{"prompt": "p", "completion": ', "invalid JSON"),
    ("[1, 2]", "expected a JSON object, got list"),
    ('"text"', "expected a JSON object, got str"),
    ({"prompt": "p", "completion": ""}, "field 'completion' is empty"),
    ({"prompt": "  ", "completion": "c"}, "field 'prompt' is empty"),
    ({"prompt": "p"}, "field 'completion' is missing"),
    ({"prompt": 3, "completion": "c"}, "field 'prompt' must be a string, got int"),
    ({"prompt": "p", "completion": "c", "system": ["s"]}, "field 'system' must be a string, got list"),
    ({"prompt": "p", "completion": "c", "idx": "7"}, "field 'idx' must be an integer, got '7'"),
    ({"prompt": "p", "completion": "c", "idx": 1.0}, "field 'idx' must be an integer, got 1.0"),
    ({"prompt": "p", "completion": "c", "idx": True}, "field 'idx' must be an integer, got True"),
    ({"messages": "hi"}, "field 'messages' must be a list"),
    ({"messages": []}, "field 'messages' is empty"),
    ({"messages": ["hi"]}, "field 'messages'[0] must be an object with 'role' and 'content'"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "field 'messages'[0] has role 'tool'"),
    (
        {"messages": [{"role": "user", "content": None}]},
        "field 'messages'[0] (user) 'content' must be a string",
    ),
    ({"messages": [{"role": "user", "content": "q"}]}, "field 'messages' must end with an assistant turn"),
    ({"messages": [{"role": "assistant", "content": "a"}]}, "field 'messages' has no user turn"),
    (
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "system", "content": "s"},
                {"role": "assistant", "content": "a"},
            ]
        },
        "field 'messages'[1] is a system message",
    ),
    ({"other": 1}, "has neither a 'messages' field nor 'prompt'/'completion' fields (keys: other)"),
]


@pytest.mark.parametrize(("bad", "problem"), BAD_LINES, ids=[p for _, p in BAD_LINES])
def test_bad_record_messages(tmp_path: Path, bad: Any, problem: str) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [chat("a", "b"), chat("c", "d"), bad, chat("e", "f")])
    with pytest.raises(DataError) as info:
        load_records(config(path))
    assert f"train.jsonl line 3: {problem}" in str(info.value)


def test_skip_bad_records(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows: list[Any] = [chat("a", "b")]
    for bad, _ in BAD_LINES:
        rows += [bad, chat("x", "y")]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="wmss.data"):
        records, stats = load_records(config(path, skip_bad_records=True))
    assert stats.n_bad == len(BAD_LINES)
    assert stats.n_read == len(rows)
    assert len(records) == len(BAD_LINES) + 1
    assert [r["idx"] for r in records] == [0, *range(2, len(rows), 2)]
    warning = caplog.records[-1].getMessage()
    assert f"skipped {len(BAD_LINES)} bad record(s)" in warning
    assert "train.jsonl line 2: invalid JSON" in warning and "line 4:" in warning


def test_invalid_utf8_and_no_usable_records(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(json.dumps(chat("a", "b")).encode() + b'\n{"prompt": "\xff"}\n')
    with pytest.raises(DataError, match=r"train\.jsonl line 2: not valid UTF-8"):
        load_records(config(path))
    path.write_text('{"prompt": "p"}\n\n')
    with pytest.raises(
        DataError, match=r"train\.jsonl: no usable records \(1 read, 1 bad\); first problems: .*line 1"
    ):
        load_records(config(path, skip_bad_records=True))
    path.write_text("")
    with pytest.raises(DataError, match=r"no usable records \(0 read, 0 bad\)"):
        load_records(config(path))


def test_limit(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [chat(str(i), "x") for i in range(10)])
    records, stats = load_records(config(path, limit=3))
    assert [r["idx"] for r in records] == [0, 1, 2] and stats.n_read == 3


def test_truncate_and_drop(tmp_path: Path) -> None:
    tokenizer = make_tiny_tokenizer(chat_template=False)
    # Plain prompt "User: p\nAssistant: " is 19 tokens; completions are "c" * k + eos.
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"prompt": "p", "completion": "c"},
            {"prompt": "p", "completion": "c" * 20},
            {"prompt": "p" * 30, "completion": "c"},
        ],
    )
    data = build_dataset(config(path, max_length=25), tokenizer)
    assert data.dataset["idx"] == [0, 1]
    assert [len(ids) for ids in data.dataset["input_ids"]] == [21, 25]
    assert completion_span(data.dataset[1]) == tokenizer.convert_tokens_to_ids(["c"] * 6)
    assert (data.stats.n_truncated, data.stats.n_dropped, data.stats.n_examples) == (1, 1, 2)
    assert data.stats.n_completion_tokens == 2 + 6
    dropped = build_dataset(config(path, max_length=25, overlong="drop"), tokenizer)
    assert dropped.dataset["idx"] == [0]
    assert (dropped.stats.n_truncated, dropped.stats.n_dropped) == (0, 2)
    with pytest.raises(DataError, match=r"no examples left \(3 dropped as longer than data.max_length=5"):
        build_dataset(config(path, max_length=5), tokenizer)


def test_plain_format_adds_bos(tmp_path: Path) -> None:
    tokenizer = make_tiny_tokenizer(chat_template=False, add_bos=True)
    data = build_dataset(config(write_jsonl(tmp_path / "t.jsonl", [chat("a", "b")])), tokenizer)
    row = data.dataset[0]
    assert row["input_ids"][0] == tokenizer.convert_tokens_to_ids(BOS)
    assert row["input_ids"].count(tokenizer.convert_tokens_to_ids(BOS)) == 1
    assert tokenizer.decode(completion_span(row)) == "b" + EOS


def test_template_error_names_record(tmp_path: Path) -> None:
    tokenizer = make_tiny_tokenizer()
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['content'] == 'c' %}{{ raise_exception('no c') }}{% endif %}{% endfor %}"
        + tokenizer.chat_template
    )
    path = write_jsonl(tmp_path / "t.jsonl", [chat("a", "b"), chat("c", "d")])
    with pytest.raises(DataError, match=r"t\.jsonl:2: the chat template rejected the record \(no c\)"):
        build_dataset(config(path), tokenizer)
    data = build_dataset(config(path, skip_bad_records=True), tokenizer)
    assert data.dataset["idx"] == [0] and data.stats.n_bad == 1


def test_fingerprint_tracks_content(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tokenizer = make_tiny_tokenizer()
    path = write_jsonl(tmp_path / "train.jsonl", [chat("a", "bcd"), chat("e", "f")])
    with caplog.at_level(logging.INFO, logger="wmss.data"):
        base = build_dataset(config(path), tokenizer)
    assert "2 examples (0 bad, 0 truncated, 0 dropped)" in caplog.text and base.fingerprint in caplog.text
    assert len(base.fingerprint) == 16
    assert build_dataset(config(path), make_tiny_tokenizer()).fingerprint == base.fingerprint
    others = {
        build_dataset(config(path, system_prompt="reasoning"), tokenizer).fingerprint,
        build_dataset(config(path, max_length=22), tokenizer).fingerprint,
        build_dataset(config(path), make_tiny_tokenizer(chat_template=False)).fingerprint,
        build_dataset(
            config(write_jsonl(tmp_path / "b.jsonl", [chat("a", "bcd"), chat("e", "g")])), tokenizer
        ).fingerprint,
        build_dataset(
            config(write_jsonl(tmp_path / "c.jsonl", [chat("a", "bcd", idx=1), chat("e", "f", idx=0)])),
            tokenizer,
        ).fingerprint,
    }
    assert len(others) == 5 and base.fingerprint not in others


def test_chunking_keeps_examples_aligned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = make_tiny_tokenizer()
    path = write_jsonl(tmp_path / "t.jsonl", [chat(f"q{i}", "a" * (i % 3 + 1) + str(i)) for i in range(7)])
    whole = build_dataset(config(path, max_length=24), tokenizer)
    monkeypatch.setattr(encode, "_BATCH", 2)
    chunked = build_dataset(config(path, max_length=24), tokenizer)
    assert chunked.dataset[:] == whole.dataset[:]
    assert chunked.stats == whole.stats and chunked.fingerprint == whole.fingerprint
    assert whole.stats.n_truncated > 0


def test_collator_pads_labels_with_ignore_index(tmp_path: Path) -> None:
    tokenizer = make_tiny_tokenizer()
    data = build_dataset(
        config(write_jsonl(tmp_path / "t.jsonl", [chat("a", "b"), chat("long prompt", "long answer")])),
        tokenizer,
    )
    batch = make_collator(tokenizer)([data.dataset[0], data.dataset[1]])
    short, long_ = (len(data.dataset[i]["input_ids"]) for i in range(2))
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (2, long_)
    assert batch["input_ids"][0, short:].tolist() == [tokenizer.convert_tokens_to_ids(PAD)] * (long_ - short)
    assert batch["labels"][0, short:].tolist() == [IGNORE_INDEX] * (long_ - short)
    assert batch["labels"][0, :short].tolist() == data.dataset[0]["labels"]
    assert batch["attention_mask"].sum(dim=1).tolist() == [short, long_]
    tokenizer.pad_token = None
    assert make_collator(tokenizer).pad_token_id == tokenizer.eos_token_id


text = st.text(alphabet=ALPHABET, min_size=1, max_size=40).filter(lambda s: s.strip() != "")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt=text, completion=text, system=st.one_of(st.none(), text), template=st.booleans())
def test_labels_mask_exactly_the_completion(
    prompt: str, completion: str, system: str | None, template: bool
) -> None:
    tokenizer = make_tiny_tokenizer(chat_template=template)
    record = {
        "idx": 0,
        "system": system,
        "prompt_messages": [{"role": "user", "content": prompt}],
        "completion": completion,
        "source": "t:1",
    }
    stats = DataStats()
    row = tokenize_records([record], tokenizer, DataConfig(), stats)[0]
    prompt_text, completion_text = render_example(record, tokenizer, None)
    n_prompt = len(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
    assert row["labels"] == [IGNORE_INDEX] * n_prompt + row["input_ids"][n_prompt:]
    assert tokenizer.decode(row["input_ids"][:n_prompt]) == prompt_text
    assert tokenizer.decode(completion_span(row)) == completion_text
    assert stats.n_completion_tokens == len(row["input_ids"]) - n_prompt > 0
