"""Mixed-branch generation: the KV-cached MixedLogitsProcessor against a naive loop that recomputes both models.

The naive twin feeds each prompt alone (no padding, default positions) and recomputes both full forwards every
step; the processor runs inside the strong model's `generate` on left-padded batches of prompts of different
lengths, so agreement checks its cache, attention mask and position ids as well as the mixing itself.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig, GPT2Config, LogitsProcessorList

from tests.conftest import tiny_llama_config, tiny_qwen3_config
from wmss.errors import ConfigError, ModelError
from wmss.eval.backends import Generation, HFBackend, encode_prompt, stop_token_ids
from wmss.eval.mixing import MixedLogitsProcessor

PROMPTS = ["What is 2+3?", "a", "A much longer prompt than the others, to force left padding.", "xyz"]
MAX_NEW = 10
LAM = 0.5


def build(config, seed: int):
    # A wider initialisation than the default 0.02 gives decisive logits: no near-ties for argmax to flip on.
    config.initializer_range = 0.3
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.generation_config.pad_token_id = 1
    # Both models stop on the tokenizer's EOS and end-of-turn only (Llama's config default would add id 2).
    model.generation_config.eos_token_id = None
    return model


@pytest.fixture(scope="module")
def strong(tokenizer):
    return build(tiny_qwen3_config(len(tokenizer)), seed=1)


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def weak(request, tokenizer):
    # Other architectures on the same vocabulary. GPT-2's learned absolute positions make its outputs depend on
    # the position ids under left padding, which rotary models (relative positions only) do not show.
    if request.param == "gpt2":
        return build(
            GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=512), 2
        )
    return build(tiny_llama_config(len(tokenizer)), seed=2)


@torch.no_grad()
def naive_mixed_greedy(
    strong, weak, lam: float, prompt: list[int], stops: list[int]
) -> tuple[list[int], list[float]]:
    """Greedy tokens of λ·z_strong + (1-λ)·z_weak, both forwards recomputed in full; and each step's entropy."""
    ids, new, entropies = list(prompt), [], []
    for _ in range(MAX_NEW):
        x = torch.tensor([ids])
        z = lam * strong(x).logits[0, -1] + (1 - lam) * weak(x).logits[0, -1]
        log_p = z.double().log_softmax(-1)
        entropies.append(-(log_p.exp() * log_p).sum().item())
        token = int(z.argmax())
        ids.append(token)
        new.append(token)
        if token in stops:
            break
    return new, entropies


def left_padded(tokenizer, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, int]:
    encoded = [encode_prompt(tokenizer, prompt) for prompt in prompts]
    width = max(len(ids) for ids in encoded)
    input_ids = torch.tensor([[1] * (width - len(ids)) + ids for ids in encoded])
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
    return input_ids, mask, width


def stops_for(strong, weak, tokenizer) -> list[int]:
    """EOS and end-of-turn, plus a token the mixed model emits early for one prompt, so rows stop at different steps."""
    prompt = encode_prompt(tokenizer, PROMPTS[0])
    early = naive_mixed_greedy(strong, weak, LAM, prompt, [])[0][2]
    return [*stop_token_ids(tokenizer), early]


def until_stop(tokens: list[int], stops: list[int]) -> list[int]:
    stop = next((i for i, token in enumerate(tokens) if token in stops), None)
    return tokens if stop is None else tokens[: stop + 1]


def test_greedy_follows_the_argmax_of_the_mixed_logits(strong, weak, tokenizer) -> None:
    stops = stops_for(strong, weak, tokenizer)
    input_ids, mask, width = left_padded(tokenizer, PROMPTS)
    config = GenerationConfig(max_new_tokens=MAX_NEW, do_sample=False, eos_token_id=stops, pad_token_id=1)
    with torch.inference_mode():
        output = strong.generate(
            input_ids=input_ids,
            attention_mask=mask,
            generation_config=config,
            logits_processor=LogitsProcessorList([MixedLogitsProcessor(weak, LAM, mask)]),
        )
        strong_only = strong.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)
    got = [until_stop(row, stops) for row in output[:, width:].tolist()]
    expected = [naive_mixed_greedy(strong, weak, LAM, encode_prompt(tokenizer, p), stops)[0] for p in PROMPTS]
    assert got == expected
    assert len({len(tokens) for tokens in got}) > 1  # rows stop at different steps, padding follows
    assert got != [until_stop(row, stops) for row in strong_only[:, width:].tolist()]  # the mix matters


def test_backend_mixes_with_left_padding_and_reports_mixed_entropies(strong, weak, tokenizer) -> None:
    stops = stops_for(strong, weak, tokenizer)
    strong.generation_config.eos_token_id = stops[-1]
    try:
        backend = HFBackend(
            strong,
            tokenizer,
            batch_size=3,
            max_new_tokens=MAX_NEW,
            token_entropy=True,
            mix_with=weak,
            mix_lambda=LAM,
        )
        generations = backend.generate(PROMPTS)
    finally:
        strong.generation_config.eos_token_id = None
    for prompt, (generation,) in zip(PROMPTS, generations, strict=True):
        tokens, entropies = naive_mixed_greedy(strong, weak, LAM, encode_prompt(tokenizer, prompt), stops)
        finished = tokens[-1] in stops
        text = tokenizer.decode(tokens[:-1] if finished else tokens, skip_special_tokens=True)
        assert (generation.text, generation.finished, generation.n_tokens) == (text, finished, len(tokens))
        assert generation.mean_entropy == pytest.approx(sum(entropies) / len(entropies), abs=1e-5)
    assert any(g.finished for (g,) in generations) and any(not g.finished for (g,) in generations)


def test_lambda_one_is_the_strong_model_and_zero_the_weak_one(strong, weak, tokenizer) -> None:
    def run(model, **mix) -> list[list[Generation]]:
        return HFBackend(model, tokenizer, batch_size=4, max_new_tokens=MAX_NEW, **mix).generate(PROMPTS)

    assert run(strong, mix_with=weak, mix_lambda=1.0) == run(strong)
    assert run(strong, mix_with=weak, mix_lambda=0.0) == run(weak)
    assert run(strong, mix_with=weak, mix_lambda=LAM) not in (run(strong), run(weak))


def test_sampling_draws_from_the_mixed_logits_before_temperature(strong, weak, tokenizer) -> None:
    temperature, n = 0.7, 2
    input_ids, mask, width = left_padded(tokenizer, PROMPTS[:3])
    config = GenerationConfig(
        max_new_tokens=6,
        do_sample=True,
        temperature=temperature,
        top_k=0,
        top_p=1.0,
        num_return_sequences=n,
        eos_token_id=stop_token_ids(tokenizer),
        pad_token_id=1,
        return_dict_in_generate=True,
        output_scores=True,
    )
    torch.manual_seed(0)
    with torch.inference_mode():
        output = strong.generate(
            input_ids=input_ids,
            attention_mask=mask,
            generation_config=config,
            logits_processor=LogitsProcessorList([MixedLogitsProcessor(weak, LAM, mask)]),
        )
        # generate puts the n samples of a prompt next to each other; the twin recomputes every step in full.
        rows_mask = mask.repeat_interleave(n, dim=0)
        for step, scores in enumerate(output.scores):
            x = output.sequences[:, : width + step]
            m = torch.cat([rows_mask, torch.ones(x.shape[0], step, dtype=mask.dtype)], dim=1)
            positions = (m.cumsum(-1) - 1).clamp(min=0)
            z = LAM * strong(x, attention_mask=m, position_ids=positions).logits[:, -1]
            z = z + (1 - LAM) * weak(x, attention_mask=m, position_ids=positions).logits[:, -1]
            # After the processor only the temperature warper ran: scores = z_mix / T, not λ·z_s / T + (1-λ)·z_w.
            torch.testing.assert_close(scores * temperature, z, atol=1e-4, rtol=1e-4)
    assert output.sequences.shape[0] == n * 3


def test_backend_sampling_with_mixing_is_seeded(strong, weak, tokenizer) -> None:
    backend = HFBackend(
        strong, tokenizer, batch_size=2, max_new_tokens=5, temperature=0.5, top_p=0.95, mix_with=weak
    )
    first = backend.generate(PROMPTS, n=3)
    assert [len(samples) for samples in first] == [3] * len(PROMPTS)
    assert backend.generate(PROMPTS, n=3) == first
    assert all(generation.mean_entropy is None for samples in first for generation in samples)


def test_mixing_is_refused_without_one_vocabulary_or_a_valid_lambda(strong, weak, tokenizer) -> None:
    other = build(tiny_qwen3_config(len(tokenizer) + 8), seed=3)
    with pytest.raises(ModelError, match="different vocabularies"):
        HFBackend(strong, tokenizer, mix_with=other)
    with pytest.raises(ConfigError, match="mix_lambda"):
        HFBackend(strong, tokenizer, mix_with=weak, mix_lambda=1.5)
    mask = torch.ones(1, 3, dtype=torch.long)
    with pytest.raises(ConfigError, match="lambda"):
        MixedLogitsProcessor(weak, -0.1, mask)
    processor = MixedLogitsProcessor(weak, LAM, mask)
    ids, scores = torch.tensor([[5, 6, 7]]), torch.zeros(1, len(tokenizer))
    with torch.inference_mode():
        processor(ids, scores)
        with pytest.raises(ValueError, match="twice"):
            processor(ids, scores)
        with pytest.raises(ValueError, match="does not match"):
            MixedLogitsProcessor(weak, LAM, mask)(torch.tensor([[5, 6]]), scores)
