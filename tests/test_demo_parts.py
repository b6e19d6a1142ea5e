"""Building blocks of the offline demo: tokenizer, task, base model, presets and report."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from wmss.demo.presets import PRESETS, DemoPreset
from wmss.demo.recipe import read_recipe
from wmss.demo.setup import chat_prompt, chat_text
from wmss.demo.task import easier_problems, make_task, pretraining_corpus, validation_problems, write_jsonl
from wmss.demo.tokenizer import SPECIAL_TOKENS, build_demo_tokenizer

STEP = re.compile(r"(\d+)([+-])(\d+)=(\d+)\.")


@pytest.fixture(scope="module")
def tokenizer():
    return build_demo_tokenizer()


@pytest.fixture(scope="module")
def task():
    return make_task(seed=3, n_train=300, n_test=100)


def test_tokenizer_round_trips_task_text_and_keeps_tags_whole(tokenizer, task):
    for record in task.train[:20]:
        text = record["prompt"] + "\n" + record["completion"] + "<|im_end|>"
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
    for tag in SPECIAL_TOKENS:
        assert len(tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1, tag
    assert tokenizer.eos_token == tokenizer.pad_token == "<|endoftext|>"


def test_tokenizer_is_deterministic_and_saves(tmp_path, tokenizer):
    from transformers import AutoTokenizer

    assert build_demo_tokenizer().get_vocab() == tokenizer.get_vocab()
    build_demo_tokenizer(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.get_vocab() == tokenizer.get_vocab()
    assert loaded.chat_template == tokenizer.chat_template


def test_chat_template_renders_chatml(tokenizer):
    user = [{"role": "user", "content": "Tom has 2 pens."}]
    assert (
        tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        == "<|im_start|>user\nTom has 2 pens.<|im_end|>\n<|im_start|>assistant\n"
    )
    with_system = [{"role": "system", "content": "Think."}, *user]
    rendered = tokenizer.apply_chat_template(with_system, tokenize=False)
    assert rendered.startswith("<|im_start|>system\nThink.<|im_end|>\n<|im_start|>user\n")
    assert not rendered.endswith("assistant\n")


def test_task_is_deterministic_per_seed(task):
    again = make_task(seed=3, n_train=300, n_test=100)
    assert again == task
    assert make_task(seed=4, n_train=300, n_test=100).train != task.train


def test_task_splits_are_disjoint_and_shaped(task):
    assert len(task.train) == 300 and len(task.test) == 100
    assert all(set(r) == {"idx", "prompt", "completion", "steps"} for r in task.train)
    # The difficulty group is the number of arithmetic steps in the worked solution.
    assert all(r["steps"] == r["completion"].count("=") for r in task.train)
    assert all(set(r) == {"id", "question", "answer"} and isinstance(r["answer"], str) for r in task.test)
    assert not {r["question"] for r in task.test} & {r["prompt"] for r in task.train}
    # Stricter than the wording: no test problem is a renamed training problem.
    train_arithmetic = {_reference_think(r["prompt"]) for r in task.train}
    assert not {_reference_think(r["question"]) for r in task.test} & train_arithmetic


def test_solutions_are_correct(task):
    answers = {r["question"]: r["answer"] for r in task.test}
    solved = [(r["prompt"], r["completion"]) for r in task.train]
    solved += [(q, f"<think>{_reference_think(q)}</think><answer>{a}</answer>") for q, a in answers.items()]
    for question, completion in solved:
        match = re.fullmatch(r"<think>(.*)</think><answer>(\d+)</answer>", completion)
        assert match, completion
        value = int(re.findall(r"\d+", question)[0])
        for left, op, right, result in STEP.findall(match.group(1)):
            assert int(left) == value
            value = int(left) + int(right) if op == "+" else int(left) - int(right)
            assert value == int(result) >= 0
        assert value == int(match.group(2))
        assert match.group(1) == _reference_think(question)


def _reference_think(question: str) -> str:
    # Independent re-derivation from the wording: add for buy/find/get, subtract otherwise.
    start, *rest = question.split(". ")[:2]
    value = int(re.search(r"\d+", start).group())
    lines = []
    for verb, number in re.findall(r"(buys|finds|gets|gives away|loses|sells) (\d+)", rest[0]):
        result = value + int(number) if verb in ("buys", "finds", "gets") else value - int(number)
        lines.append(f"{value}{'+' if verb in ('buys', 'finds', 'gets') else '-'}{number}={result}.")
        value = result
    return " ".join(lines)


def test_records_load_as_prompt_completion(tmp_path, task):
    path = tmp_path / "train.jsonl"
    write_jsonl(task.train, path)
    assert not list(tmp_path.glob("*.tmp"))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == task.train
    assert all(isinstance(r["prompt"], str) and isinstance(r["completion"], str) for r in rows)


def test_pretraining_corpus_is_related_but_unformatted():
    corpus = pretraining_corpus(seed=0, n=50)
    assert corpus == pretraining_corpus(seed=0, n=50)
    text = " ".join(corpus)
    assert "<think>" not in text and "<answer>" not in text
    for left, op, right, result in STEP.findall(text):
        assert (int(left) + int(right) if op == "+" else int(left) - int(right)) == int(result)
    assert "has" in text


def test_presets_are_consistent():
    assert set(PRESETS) >= {"smoke", "default"}
    for preset in PRESETS.values():
        assert preset.num_attention_heads % preset.num_key_value_heads == 0
        assert preset.n_test > 0 and preset.n_train > 0
    # The paper's budget: Phase 1 and Phase 3 share one epoch count and one schedule (a single field each).
    assert PRESETS["default"].n_test >= 1000


def test_distractors_and_steps_make_difficulty_heterogeneous():
    task = make_task(seed=1, n_train=400, n_test=50, min_steps=1, max_steps=4, distractor_prob=0.3)
    steps = [record["completion"].count("=") for record in task.train]
    assert set(steps) == {1, 2, 3, 4}
    noisy = [r for r in task.train if any(word in r["prompt"] for word in ("dollars", "miles", "years old"))]
    assert 50 < len(noisy) < 300
    clean = make_task(seed=1, n_train=400, n_test=50, min_steps=1, max_steps=4)
    assert not any(word in r["prompt"] for r in clean.train for word in ("dollars", "miles", "years old"))
    # The think trace uses only the relevant quantities: solutions stay correct with distractors present.
    for record in task.train:
        answer = int(record["completion"].split("<answer>")[1].split("</answer>")[0])
        last = record["completion"].split("=")[-1].split(".")[0]
        assert int(last) == answer


def test_worked_examples_in_the_corpus_are_chats_of_easier_problems_never_held_out_ones():
    task = make_task(seed=2, n_train=50, n_test=200, min_steps=1, max_steps=4)
    render = lambda q, a: f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>\n"  # noqa: E731
    corpus = pretraining_corpus(
        seed=2, n=300, worked_fraction=0.5, worked_max_steps=2, render=render, exclude=task.test_keys
    )
    worked = [doc for doc in corpus if doc.startswith("<|im_start|>user")]
    assert 100 < len(worked) < 200
    assert all(doc.count("=") <= 2 and "<answer>" in doc for doc in worked)
    held_out = {record["question"] for record in task.test}
    assert not any(doc.split("\n")[1].split("<|im_end|>")[0] in held_out for doc in worked)


def test_easier_problems_are_short_clean_correct_and_never_held_out():
    task = make_task(seed=2, n_train=50, n_test=300, min_steps=1, max_steps=4, distractor_prob=0.3)
    problems = easier_problems(seed=2, n=400, max_steps=2, exclude=task.test_keys)
    assert problems == easier_problems(seed=2, n=400, max_steps=2, exclude=task.test_keys)
    assert {answer.count("=") for _, answer in problems} == {1, 2}
    assert not any(word in q for q, _ in problems for word in ("dollars", "miles", "years old"))
    for _, answer in problems:
        steps = STEP.findall(answer)
        for left, op, right, result in steps:
            assert (int(left) + int(right) if op == "+" else int(left) - int(right)) == int(result)
        assert answer.endswith(f"<answer>{steps[-1][3]}</answer>")
    held_out = {record["question"] for record in task.test}
    assert not any(question in held_out for question, _ in problems)


def test_mid_training_loss_covers_exactly_the_worked_solution(tokenizer):
    from wmss.demo.base_model import _completion_examples

    question, answer = easier_problems(seed=0, n=1)[0]
    (example,) = _completion_examples(
        tokenizer, [(chat_prompt(tokenizer, question), chat_text(tokenizer, question, answer))]
    )
    trained = [
        token for token, label in zip(example["input_ids"], example["labels"], strict=True) if label != -100
    ]
    assert tokenizer.decode(trained) == answer + "<|im_end|>\n"
    assert example["labels"][: -len(trained)] == [-100] * (len(example["labels"]) - len(trained))
    with pytest.raises(ValueError, match="does not start with its prompt"):
        _completion_examples(tokenizer, [("other prompt", chat_text(tokenizer, question, answer))])


# A base model small enough to pretrain in a second.
MICRO = dataclasses.replace(
    DemoPreset(n_train=4, n_test=2),
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=1,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=16,
    pretrain_block_size=32,
    pretrain_batch_size=4,
    pretrain_warmup_steps=1,
)


def test_pretrain_base_model_is_loadable_and_deterministic(tmp_path, tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from wmss.demo.base_model import pretrain_base_model

    micro = dataclasses.replace(MICRO, pretrain_steps=3)
    corpus = pretraining_corpus(seed=0, n=8)
    first = pretrain_base_model(tokenizer, corpus, tmp_path / "a", micro, seed=1, recipe={"r": 1})
    second = pretrain_base_model(tokenizer, corpus, tmp_path / "b", micro, seed=1, recipe={"r": 1})
    assert first == tmp_path / "a" and sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    assert read_recipe(first) == {"r": 1}
    model_a = AutoModelForCausalLM.from_pretrained(first)
    model_b = AutoModelForCausalLM.from_pretrained(second)
    assert model_a.config.tie_word_embeddings and model_a.config.vocab_size == len(tokenizer)
    assert AutoTokenizer.from_pretrained(first).get_vocab() == tokenizer.get_vocab()
    assert (first / "generation_config.json").is_file()
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items(), strict=True):
        assert a.equal(b), name


def test_reasoning_tags_survive_decoding_without_special_tokens():
    tokenizer = build_demo_tokenizer()
    text = "<think>1+2=3.</think><answer>3</answer>"
    ids = tokenizer(text + "<|im_end|>")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_validation_split_is_disjoint_from_train_and_test():
    task = make_task(0, 200, 100, min_steps=1, max_steps=4)
    records = validation_problems(0, 150, exclude=task.test_keys | task.train_keys)
    assert len(records) == 150 and len({r["id"] for r in records}) == 150
    # Same seed, same problems: its own RNG stream; the task itself is unchanged by drawing it.
    assert validation_problems(0, 150, exclude=task.test_keys | task.train_keys) == records
    assert make_task(0, 200, 100, min_steps=1, max_steps=4) == task
    texts = {r["question"] for r in records}
    assert not texts & {r["question"] for r in task.test} and not texts & {r["prompt"] for r in task.train}


def test_a_mid_training_snapshot_is_the_recipe_of_its_step_count(tmp_path, tokenizer):
    # The M0 search relies on it: at a constant rate, the k-step checkpoint of a longer run is the k-step run.
    from transformers import AutoModelForCausalLM

    from wmss.demo.base_model import pretrain_base_model

    micro = dataclasses.replace(MICRO, pretrain_steps=2, midtrain_steps=3)
    corpus = pretraining_corpus(seed=0, n=8)
    easier = [(chat_prompt(tokenizer, q), chat_text(tokenizer, q, a)) for q, a in easier_problems(0, 12)]
    snapshots = tmp_path / "snapshots"
    pretrain_base_model(
        tokenizer,
        corpus,
        tmp_path / "long",
        micro,
        1,
        {"r": 3},
        easier,
        snapshots=(snapshots, 2, lambda k: {"r": k}),
    )
    assert sorted(p.name for p in snapshots.iterdir()) == ["midtrain-0", "midtrain-2", "midtrain-3"]
    assert read_recipe(snapshots / "midtrain-2") == {"r": 2}
    short = pretrain_base_model(
        tokenizer,
        corpus,
        tmp_path / "short",
        dataclasses.replace(micro, midtrain_steps=2),
        1,
        {"r": 2},
        easier,
    )
    a = AutoModelForCausalLM.from_pretrained(snapshots / "midtrain-2").state_dict()
    b = AutoModelForCausalLM.from_pretrained(short).state_dict()
    assert all(a[name].equal(b[name]) for name in a)
    last = AutoModelForCausalLM.from_pretrained(snapshots / "midtrain-3").state_dict()
    assert not all(a[name].equal(last[name]) for name in a)
