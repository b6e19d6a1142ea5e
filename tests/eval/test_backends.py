"""Generation backends: batching order, stopping and `finished`, seeding, loading, vLLM opt-in, the fake."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.conftest import tiny_qwen3_config
from tests.fakes import FakeBackend
from tests.helpers import make_tiny_tokenizer
from wmss.errors import ConfigError, ModelError, WMSSError
from wmss.eval.backends import (
    STOP_STRINGS,
    Generation,
    GenerationBackend,
    HFBackend,
    VLLMBackend,
    encode_prompt,
    stop_token_ids,
)

PROMPTS = ["What is 2+3?", "a", "A much longer prompt than the others, to force left padding.", "xyz"]


def constant_model(tokenizer, token: str):
    """A tiny Qwen3 that always predicts `token`: constant embeddings, silent blocks, one-hot output head."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_qwen3_config(len(tokenizer), tie=False))
    with torch.no_grad():
        model.model.embed_tokens.weight.fill_(1.0)
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
        model.lm_head.weight[tokenizer.convert_tokens_to_ids(token)] = 1.0
    return model


@pytest.fixture(scope="module")
def random_model(tokenizer):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(tiny_qwen3_config(len(tokenizer)))


def test_batched_left_padded_generation_matches_one_by_one(random_model, tokenizer) -> None:
    backend = HFBackend(random_model, tokenizer, batch_size=3, max_new_tokens=6)
    batched = backend.generate(PROMPTS)
    assert batched == [backend.generate([prompt])[0] for prompt in PROMPTS]
    assert all(len(generations) == 1 for generations in batched)
    assert backend.generate(PROMPTS) == batched


def test_unfinished_generation_runs_to_max_new_tokens(tokenizer) -> None:
    backend = HFBackend(constant_model(tokenizer, "a"), tokenizer, max_new_tokens=5)
    assert backend.generate(["hi", "there"]) == [[Generation("aaaaa", finished=False, n_tokens=5)]] * 2


@pytest.mark.parametrize("stop", ["<|endoftext|>", "<|im_end|>"])
def test_eos_and_end_of_turn_tokens_stop_generation(tokenizer, stop: str) -> None:
    backend = HFBackend(constant_model(tokenizer, stop), tokenizer, max_new_tokens=5)
    assert backend.generate(["hi"]) == [[Generation("", finished=True, n_tokens=1)]]


@pytest.fixture(scope="module")
def chaotic_model(tokenizer):
    """A tiny Qwen3 with large random weights: varied text, tags included, rarely an end-of-turn token."""
    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_config(tiny_qwen3_config(len(tokenizer)))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(8)
    return model


def test_generation_stops_at_the_closing_answer_tag_and_keeps_it(tokenizer) -> None:
    assert "</answer>" in STOP_STRINGS
    backend = HFBackend(constant_model(tokenizer, "</answer>"), tokenizer, max_new_tokens=5)
    assert backend.generate(["hi"]) == [[Generation("</answer>", finished=True, n_tokens=1)]]
    without = HFBackend(constant_model(tokenizer, "</answer>"), tokenizer, max_new_tokens=3, stop_strings=())
    assert without.generate(["hi"]) == [[Generation("</answer>" * 3, finished=False, n_tokens=3)]]


@pytest.mark.parametrize("stop", ["<think>", "GK", "cx"])
def test_greedy_outputs_are_identical_up_to_the_stop_string(chaotic_model, tokenizer, stop: str) -> None:
    # A single token and strings spanning tokens; every prompt ends with "c" and some outputs start with "x", which
    # must not stop them: only generated text stops a generation.
    prompts = [f"{c * k}c" for c in "abcdefgh" for k in (1, 7)]
    plain = HFBackend(chaotic_model, tokenizer, batch_size=5, max_new_tokens=40, stop_strings=())
    stopped = HFBackend(chaotic_model, tokenizer, batch_size=5, max_new_tokens=40, stop_strings=(stop,))
    plain_out = plain.generate(prompts)
    stopped_out = stopped.generate(prompts)
    assert any(stop in g.text for (g,) in plain_out)
    for (before,), (after,) in zip(plain_out, stopped_out, strict=True):
        if stop not in before.text:
            assert after == before
            continue
        end = before.text.index(stop) + len(stop)
        assert after.text == before.text[:end] and after.finished
    # The length counts exactly the tokens up to the one that completed the string.
    for prompt, (after,) in zip(prompts, stopped_out, strict=True):
        if after.finished and after.text.endswith(stop):
            shorter, same = (
                HFBackend(chaotic_model, tokenizer, max_new_tokens=k, stop_strings=()).generate([prompt])[0][
                    0
                ]
                for k in (max(after.n_tokens - 1, 1), after.n_tokens)
            )
            assert same.text.endswith(stop) and (after.n_tokens == 1 or stop not in shorter.text)


def test_stop_tokens_are_eos_and_known_end_of_turn_specials(tokenizer) -> None:
    ids = stop_token_ids(tokenizer, extra=[7])
    assert ids[0] == tokenizer.eos_token_id
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in ids
    assert 7 in ids
    assert tokenizer.convert_tokens_to_ids("</answer>") not in ids


def test_bos_is_added_once(tmp_path: Path) -> None:
    tokenizer = make_tiny_tokenizer(add_bos=True)
    bos = tokenizer.bos_token_id
    assert encode_prompt(tokenizer, "hi")[:2] == [bos, tokenizer.convert_tokens_to_ids("h")]
    assert encode_prompt(tokenizer, "<|bos|>hi").count(bos) == 1


def test_greedy_ignores_checkpoint_sampling_defaults(random_model, tokenizer) -> None:
    reference = HFBackend(random_model, tokenizer, max_new_tokens=6).generate(PROMPTS[:2])
    random_model.generation_config.do_sample = True
    random_model.generation_config.temperature = 5.0
    try:
        for seed in (1, 2):
            assert (
                HFBackend(random_model, tokenizer, max_new_tokens=6, seed=seed).generate(PROMPTS[:2])
                == reference
            )
    finally:
        random_model.generation_config.do_sample = False
        random_model.generation_config.temperature = None


def test_sampling_is_seeded_and_returns_n_per_prompt(random_model, tokenizer) -> None:
    backend = HFBackend(random_model, tokenizer, batch_size=2, max_new_tokens=6, temperature=1.0, top_p=0.95)
    first = backend.generate(PROMPTS, n=3)
    assert [len(generations) for generations in first] == [3] * len(PROMPTS)
    assert backend.generate(PROMPTS, n=3) == first
    assert len({generation.text for generations in first for generation in generations}) > 1
    with pytest.raises(ConfigError, match="temperature > 0"):
        HFBackend(random_model, tokenizer).generate(PROMPTS, n=2)


def test_training_mode_is_restored(random_model, tokenizer) -> None:
    random_model.train()
    HFBackend(random_model, tokenizer, max_new_tokens=2).generate(["hi"])
    assert random_model.training
    random_model.eval()


def test_loads_model_and_tokenizer_from_a_path(tiny_model_dir: Path) -> None:
    backend = HFBackend(str(tiny_model_dir), max_new_tokens=3, device="cpu", dtype="float32")
    assert backend.model.device.type == "cpu"
    assert backend.tokenizer.eos_token == "<|endoftext|>"
    (generation,) = backend.generate(["hi"])[0]
    assert 1 <= generation.n_tokens <= 3


def test_construction_errors(random_model, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs the tokenizer"):
        HFBackend(random_model)
    with pytest.raises(ModelError, match=r"missing is neither a local directory nor a valid hub id"):
        HFBackend(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="dtype"):
        HFBackend(str(tmp_path), dtype="int3")
    with pytest.raises(ConfigError, match="top_p"):
        HFBackend(str(tmp_path), top_p=0.0)


def test_vllm_backend_explains_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(WMSSError, match="pip install vllm"):
        VLLMBackend("some/model")


def test_fake_backend_variants() -> None:
    by_function = FakeBackend(lambda prompt: prompt.upper())
    assert by_function.generate(["ab"], n=2) == [[Generation("AB", True, 1)] * 2]
    assert by_function.prompts == ["ab"]
    assert FakeBackend({"q": "the answer"}).generate(["q"]) == [[Generation("the answer", True, 2)]]
    in_order = FakeBackend(["one", "two", "three"])
    assert in_order.generate(["x", "y"]) == [[Generation("one", True, 1)], [Generation("two", True, 1)]]
    assert isinstance(in_order, GenerationBackend)
