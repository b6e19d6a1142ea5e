"""`wmss prepare am-r1` on the fixture: kept set, report counts, switches, resume, parallelism, errors."""

from __future__ import annotations

import copy
import gzip
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import make_tiny_tokenizer
from tests.prepare.fixture import ORIGINS, SHARDS, write_mini_benchmark, write_shards
from wmss.cli import main
from wmss.config import DataConfig
from wmss.data import build_dataset
from wmss.errors import ConfigError, DataError, WMSSError
from wmss.eval.sandbox import ENABLE_ENV
from wmss.io import JsonRow
from wmss.prepare import PrepareOptions, prepare_am_r1
from wmss.prepare.am_r1 import work_directory
from wmss.prepare.decontam import load_benchmark_index
from wmss.prepare.process import ShardProcessor, result_paths
from wmss.prepare.schema import read_sample
from wmss.prepare.shards import discover_shards

SHARED_BENCHMARKS = Path(__file__).resolve().parents[2] / ".." / "shared" / "benchmarks"
MAX_LENGTH = 1024

# Under FULL settings (code verified, lengths checked, decontaminated against the mini benchmark).
FULL_KEPT = [
    "add",
    "fraction",
    "code_add",
    "integral",
    "mult_retry",
    "code_stdin",
    "aime",
    "solve_x",
    "percent",
    "negative",
]
FULL_DROPPED = {
    "structure": 3,
    "category": 1,
    "format": 2,
    "benchmark_overlap": 1,
    "too_long": 1,
    "gold_unparseable": 2,
    "wrong_answer": 2,
    "code_tests_unusable": 2,
    "code_failed": 1,
    "duplicate_exact": 1,
    "duplicate_normalized": 1,
}
# The per-sample verdict of every row (duplicates pass it: they are caught when the shards are merged).
FULL_VERDICTS = {
    "wrong_mult": "wrong_answer",
    "gold_prose": "gold_unparseable",
    "no_think": "format",
    "no_box": "format",
    "empty_response": "structure",
    "code_wrong": "code_failed",
    "other_chat": "category",
    "benchmark_copy": "benchmark_overlap",
    "too_long": "too_long",
    "code_no_tests": "code_tests_unusable",
    "no_user": "structure",
    "wrong_fraction": "wrong_answer",
    "gold_chinese": "gold_unparseable",
    "blank_question": "structure",
    "code_odd_tests": "code_tests_unusable",
}
DEFAULT_KEPT = [
    "add",
    "fraction",
    "benchmark_copy",
    "integral",
    "mult_retry",
    "too_long",
    "aime",
    "solve_x",
    "percent",
    "negative",
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("prepare-inputs")
    make_tiny_tokenizer(root / "tokenizer")
    return {
        "shards": write_shards(root / "shards"),
        "benchmark": write_mini_benchmark(root / "benchmarks").parent.parent,
        "tokenizer": root / "tokenizer",
    }


def full_options(inputs: dict[str, Path], output: Path, **changes) -> PrepareOptions:
    settings = {
        "input": str(inputs["shards"]),
        "output": str(output),
        "code": "verify",
        "allow_code_execution": True,
        "tokenizer": str(inputs["tokenizer"]),
        "max_length": MAX_LENGTH,
        "benchmarks": (str(inputs["benchmark"]),),
        "workers": 1,
        **changes,
    }
    return PrepareOptions(**settings)


def default_options(inputs: dict[str, Path], output: Path, **changes) -> PrepareOptions:
    settings = {"input": str(inputs["shards"]), "output": str(output), "workers": 1, **changes}
    return PrepareOptions(**settings)


def read_output(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def kept_names(path: Path) -> list[str]:
    return [ORIGINS[Path(record["origin"]).name] for record in read_output(path)]


@pytest.fixture(scope="module")
def full_run(inputs, tmp_path_factory) -> tuple[Path, dict]:
    output = tmp_path_factory.mktemp("full") / "data.jsonl"
    argv = ["prepare", "am-r1", "--input", str(inputs["shards"]), "--output", str(output)]
    argv += ["--code", "verify", "--allow-code-execution", "--tokenizer", str(inputs["tokenizer"])]
    argv += ["--max-length", str(MAX_LENGTH), "--decontaminate", str(inputs["benchmark"]), "--workers", "1"]
    assert main(argv) == 0
    return output, json.loads((output.parent / "prepare_report.json").read_text())


def test_cli_writes_the_expected_kept_set_in_wmss_chat_format(full_run):
    output, _ = full_run
    records = read_output(output)
    assert kept_names(output) == FULL_KEPT
    assert [record["idx"] for record in records] == list(range(len(FULL_KEPT)))
    categories = [record["category"] for record in records]
    assert [name for name, category in zip(FULL_KEPT, categories, strict=True) if category == "code"] == [
        "code_add",
        "code_stdin",
    ]
    assert categories.count("math") == 8
    assert records[3]["source"] == "natural_reasoning" and records[5]["source"] == "codeio"
    first = records[0]
    assert set(first) == {"idx", "messages", "source", "category", "origin"}
    assert first["messages"] == [
        {"role": "user", "content": "What is 2 + 3?"},
        {
            "role": "assistant",
            "content": "<think>2 + 3 = 5.</think>\n<answer>The sum is \\boxed{5}.</answer>",
        },
    ]


def test_report_counts_each_filter_source_and_category(full_run):
    output, report = full_run
    assert (report["read"], report["kept"], report["dropped"]) == (27, 10, 17)
    assert {name: entry["dropped"] for name, entry in report["filters"].items()} == FULL_DROPPED
    assert all(entry["active"] for entry in report["filters"].values())
    assert report["benchmark_overlap"] == {"minibench": 1}
    assert report["by_category"] == {
        "code": {"read": 5, "kept": 2, "dropped": {"code_failed": 1, "code_tests_unusable": 2}},
        "math": {
            "read": 20,
            "kept": 8,
            "dropped": {
                "wrong_answer": 2,
                "gold_unparseable": 2,
                "format": 2,
                "structure": 2,
                "benchmark_overlap": 1,
                "too_long": 1,
                "duplicate_exact": 1,
                "duplicate_normalized": 1,
            },
        },
        "other": {"read": 2, "kept": 0, "dropped": {"category": 1, "structure": 1}},
    }
    kodcode = next(group for group in report["by_source"] if group["source"] == "KodCode")
    assert kodcode == {
        "source": "KodCode",
        "category": "code",
        "read": 3,
        "kept": 1,
        "dropped": {"code_failed": 1, "code_tests_unusable": 1},
    }
    assert [shard["read"] for shard in report["shards"]] == [12, 9, 6]
    assert report["length"]["unit"] == "tokens"
    assert sum(b["count"] for b in report["length"]["bins"]) == 10
    assert report["length"]["max"] <= MAX_LENGTH
    assert {category: [e["idx"] for e in examples] for category, examples in report["examples"].items()} == {
        "math": [0, 1],
        "code": [2, 5],
    }
    markdown = (output.parent / "prepare_report.md").read_text()
    assert "| wrong_answer | yes | 2 |" in markdown and "| minibench | 1 |" in markdown


def test_each_row_gets_the_verdict_it_was_written_for(inputs, tmp_path):
    processor = ShardProcessor(
        full_options(inputs, tmp_path / "unused.jsonl"), None, lambda kept, dropped: None
    )
    processor.index = load_benchmark_index([str(inputs["benchmark"])])
    verdicts = {}
    for rows in SHARDS.values():
        for position, (name, row) in enumerate(rows):
            sample = read_sample(JsonRow(position, name, name, row))
            verdicts[name] = processor.judge(sample)[0]
    assert {name: verdict for name, verdict in verdicts.items() if verdict} == FULL_VERDICTS


def test_a_sample_the_chat_template_rejects_is_a_structure_drop(inputs, tmp_path, tokenizer):
    processor = ShardProcessor(
        full_options(inputs, tmp_path / "unused.jsonl"), None, lambda kept, dropped: None
    )
    processor.tokenizer = copy.deepcopy(tokenizer)
    processor.tokenizer.chat_template = (
        "{% if messages[-1]['content'].startswith('<think>2 + 3') %}"
        "{{ raise_exception('rejected') }}{% endif %}" + tokenizer.chat_template
    )
    add, fraction = (
        read_sample(JsonRow(0, name, name, row)) for name, row in SHARDS["am_0.5M.jsonl.zst"][:2]
    )
    assert processor.judge(add)[0] == "structure"
    assert processor.judge(fraction)[0] is None


def test_defaults_drop_code_by_category_and_check_no_length(inputs, tmp_path):
    output = tmp_path / "data.jsonl"
    result = prepare_am_r1(default_options(inputs, output))
    report = json.loads(result.report.read_text())
    assert kept_names(output) == DEFAULT_KEPT
    assert {name: entry["dropped"] for name, entry in report["filters"].items() if entry["dropped"]} == {
        "structure": 3,
        "category": 6,
        "format": 2,
        "gold_unparseable": 2,
        "wrong_answer": 2,
        "duplicate_exact": 1,
        "duplicate_normalized": 1,
    }
    inactive = [name for name, entry in report["filters"].items() if not entry["active"]]
    assert inactive == ["benchmark_overlap", "too_long", "code_tests_unusable", "code_failed"]
    assert report["length"]["unit"] == "characters"


@pytest.mark.parametrize(
    ("changes", "added", "removed", "counts"),
    [
        ({"response_format": "loose"}, {"no_box"}, set(), {"format": 1}),
        ({"response_format": "off"}, {"no_box", "no_think"}, set(), {"format": 0}),
        ({"grader": "authors"}, set(), {"integral"}, {"wrong_answer": 3}),
        ({"dedup": "exact"}, {"fraction_respaced"}, set(), {"duplicate_normalized": 0}),
        ({"dedup": "off"}, {"fraction_respaced", "add_again"}, set(), {"duplicate_exact": 0}),
        # The wrong first response to "What is 7 times 8?" is kept now, so the right one is a duplicate.
        (
            {"math": "keep"},
            {"wrong_mult", "gold_prose", "wrong_fraction", "gold_chinese"},
            {"mult_retry"},
            {"wrong_answer": 0, "duplicate_exact": 2},
        ),
        ({"other": "keep"}, {"other_chat"}, set(), {"category": 5}),
    ],
)
def test_each_filter_switches(inputs, tmp_path, changes, added, removed, counts):
    output = tmp_path / "data.jsonl"
    result = prepare_am_r1(default_options(inputs, output, **changes))
    report = json.loads(result.report.read_text())
    kept = kept_names(output)
    assert set(kept) == (set(DEFAULT_KEPT) | added) - removed
    assert len(kept) == len(set(kept))
    for name, count in counts.items():
        assert report["filters"][name]["dropped"] == count


def test_interrupted_run_resumes_to_identical_output(inputs, tmp_path, monkeypatch):
    output = tmp_path / "data.jsonl"
    options = full_options(inputs, output)
    prepare_am_r1(options)
    expected = {
        name: (tmp_path / name).read_bytes()
        for name in ("data.jsonl", "prepare_report.json", "prepare_report.md")
    }
    for name in expected:
        (tmp_path / name).unlink()
    shutil.rmtree(work_directory(output))

    original = ShardProcessor.process
    second = discover_shards(str(inputs["shards"]))[1]

    def crash_on_second_shard(self, shard, work, settings):
        if shard == second:
            raise KeyboardInterrupt("simulated Ctrl-C")
        return original(self, shard, work, settings)

    monkeypatch.setattr(ShardProcessor, "process", crash_on_second_shard)
    with pytest.raises(KeyboardInterrupt):
        prepare_am_r1(options)
    assert not output.exists()
    assert sorted(path.name for path in work_directory(output).iterdir()) == [
        "am_0.5M.jsonl.zst.json",
        "am_0.5M.jsonl.zst.jsonl",
    ]

    monkeypatch.setattr(ShardProcessor, "process", original)
    result = prepare_am_r1(options)
    assert (result.shards_processed, result.shards_reused) == (2, 1)
    assert {name: (tmp_path / name).read_bytes() for name in expected} == expected


def test_rerun_reuses_finished_shards_until_input_or_settings_change(inputs, tmp_path, monkeypatch):
    shards = shutil.copytree(inputs["shards"], tmp_path / "shards")
    output = tmp_path / "out" / "data.jsonl"
    options = default_options(inputs, output, input=str(shards))
    first = prepare_am_r1(options)
    assert (first.shards_processed, first.shards_reused) == (3, 0)
    expected = output.read_bytes()

    again = prepare_am_r1(options)
    assert (again.shards_processed, again.shards_reused) == (0, 3)
    assert output.read_bytes() == expected

    plain = shards / "am_0.9M.jsonl"
    plain.write_text(plain.read_text().splitlines(keepends=True)[0])  # only "add_again" is left
    changed = prepare_am_r1(options)
    assert (changed.shards_processed, changed.shards_reused, changed.read) == (1, 2, 19)

    loose = prepare_am_r1(default_options(inputs, output, input=str(shards), response_format="loose"))
    assert (loose.shards_processed, loose.shards_reused) == (3, 0)


def test_output_inside_the_input_directory_is_not_read_back(inputs, tmp_path):
    shards = shutil.copytree(inputs["shards"], tmp_path / "shards")
    options = default_options(inputs, shards / "data.jsonl", input=str(shards))
    first, second = prepare_am_r1(options), prepare_am_r1(options)
    assert (first.read, second.read, second.shards_reused) == (27, 27, 3)


def test_two_workers_write_what_one_writes(inputs, tmp_path):
    one, two = tmp_path / "one" / "data.jsonl", tmp_path / "two" / "data.jsonl"
    prepare_am_r1(default_options(inputs, one))
    result = prepare_am_r1(default_options(inputs, two, workers=2))
    assert result.shards_processed == 3
    assert [(r["idx"], r["messages"]) for r in read_output(two)] == [
        (r["idx"], r["messages"]) for r in read_output(one)
    ]
    report_one, report_two = (json.loads((p.parent / "prepare_report.json").read_text()) for p in (one, two))
    for report in (report_one, report_two):
        del report["settings"], report["shards"], report["examples"]
    assert report_two == report_one


def test_output_loads_as_wmss_training_data_without_truncation(full_run, inputs, tmp_path, tokenizer):
    output, _ = full_run
    cfg = DataConfig(train=str(output), system_prompt="reasoning", max_length=MAX_LENGTH)
    data = build_dataset(cfg, tokenizer)
    assert data.dataset["idx"] == list(range(len(FULL_KEPT)))
    assert (data.stats.n_bad, data.stats.n_truncated, data.stats.n_dropped) == (0, 0, 0)
    # Without the length filter the over-long sample reaches training, which has to cut it.
    unchecked = tmp_path / "unchecked.jsonl"
    prepare_am_r1(default_options(inputs, unchecked))
    assert (
        build_dataset(
            DataConfig(train=str(unchecked), system_prompt="reasoning", max_length=MAX_LENGTH), tokenizer
        ).stats.n_truncated
        == 1
    )


def test_parquet_and_gzip_shards_read_like_jsonl(inputs, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    rows = {name: [row for _, row in named] for name, named in SHARDS.items()}
    pq.write_table(pa.Table.from_pylist(rows["am_0.5M.jsonl.zst"]), shards / "a.parquet")
    (shards / "b.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows["am_0.9M.jsonl"]))
    with gzip.open(shards / "c.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows["am_0.9M_sample_1k.jsonl.zst"])
    prepare_am_r1(default_options(inputs, tmp_path / "parquet.jsonl", input=str(shards)))
    prepare_am_r1(default_options(inputs, tmp_path / "jsonl.jsonl"))
    strip = [
        {key: value for key, value in record.items() if key != "origin"}
        for record in read_output(tmp_path / "jsonl.jsonl")
    ]
    assert [
        {key: value for key, value in record.items() if key != "origin"}
        for record in read_output(tmp_path / "parquet.jsonl")
    ] == strip
    assert read_output(tmp_path / "parquet.jsonl")[0]["origin"].endswith("a.parquet[0]")


@pytest.mark.skipif(not SHARED_BENCHMARKS.is_dir(), reason="no ../shared/benchmarks in this checkout")
def test_decontaminates_against_the_real_benchmark_files(inputs, tmp_path):
    output = tmp_path / "data.jsonl"
    result = prepare_am_r1(default_options(inputs, output, benchmarks=(str(SHARED_BENCHMARKS),)))
    report = json.loads(result.report.read_text())
    assert report["benchmark_overlap"] == {
        "aime2025": 1,
        "amc23": 0,
        "aqua": 0,
        "gsm8k": 0,
        "mawps": 0,
        "svamp": 0,
    }
    assert kept_names(output) == [name for name in DEFAULT_KEPT if name != "aime"]


def test_unknown_layout_names_file_line_and_fields(inputs, tmp_path):
    good = json.dumps(SHARDS["am_0.9M.jsonl"][0][1])
    cases = [
        (
            json.dumps({"conversations": [], "id": 3}),
            "unknown record layout: no 'messages' field (fields found: conversations, id)",
        ),
        ("{not json", "invalid JSON (Expecting property name enclosed in double quotes at column 2)"),
        (
            json.dumps({"messages": [{"from": "human", "value": "hi"}]}),
            "messages[0] has role None (fields found: from, value)",
        ),
        (
            json.dumps({"messages": [{"role": "user", "content": "q", "info": "x"}]}),
            "messages[0].info is a str, not an object",
        ),
    ]
    for number, (line, message) in enumerate(cases):
        shard = tmp_path / f"bad{number}.jsonl"
        shard.write_text(f"{good}\n{line}\n")
        with pytest.raises(DataError) as caught:
            prepare_am_r1(default_options(inputs, tmp_path / f"out{number}.jsonl", input=str(shard)))
        assert str(caught.value).startswith(f"{shard} line 2: ")
        assert message in str(caught.value)


def test_user_errors_are_one_line_messages(inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(ENABLE_ENV, raising=False)
    missing = tmp_path / "missing"
    assert main(["prepare", "am-r1", "--input", str(missing), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert capsys.readouterr().err == (
        f"wmss prepare: error: input not found: {missing} (give a shard file, a directory of shards, "
        "or hub:<dataset id> online)\n"
    )
    with pytest.raises(WMSSError, match="--allow-code-execution"):
        prepare_am_r1(default_options(inputs, tmp_path / "o.jsonl", code="verify"))
    with pytest.raises(ConfigError, match="max_length needs the target model's tokenizer"):
        prepare_am_r1(default_options(inputs, tmp_path / "o.jsonl", max_length=100))
    with pytest.raises(DataError, match="benchmark file not found"):
        prepare_am_r1(default_options(inputs, tmp_path / "o.jsonl", benchmarks=(str(missing),)))
    assert not (tmp_path / "o.jsonl").exists()
    assert (
        result_paths(tmp_path, discover_shards(str(inputs["shards"]))[0])[0].name == "am_0.5M.jsonl.zst.jsonl"
    )
