"""Text generation backends for evaluation: Hugging Face `generate` and vLLM.

Paper settings: greedy decoding (temperature 0, one sample) for accuracy, or temperature 0.5 / top-p 0.95
(`SAMPLING_TEMPERATURE`, `SAMPLING_TOP_P`) with n samples for mean@n / pass@n. Both real backends stop on EOS, on
the chat templates' end-of-turn special tokens and at the closing answer tag `</answer>` (`STOP_STRINGS`; kept in
the text, so graders still see it), and report `finished=False` when a generation hit max_new_tokens instead.
HFBackend can also report each generation's mean token entropy (`token_entropy=True`) and generate from WMSS's
two branches mixed, z_mix = λ·z_strong + (1-λ)·z_weak (`mix_with=weak model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from wmss import defaults
from wmss.errors import ConfigError, ModelError, WMSSError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# End-of-turn tokens of common chat templates; used as extra stop tokens only when the tokenizer has them as
# added tokens, so ordinary text can never stop a generation.
EOS_LIKE_TOKENS = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<end_of_turn>",
)
# The paper's answer format ends at this tag: whatever a model writes after it is never graded as its answer, and
# a batch of generations runs until its longest one stops, so stopping here saves the tokens after the tag.
ANSWER_CLOSE = "</answer>"
STOP_STRINGS = (ANSWER_CLOSE,)
DTYPES = ("auto", "float32", "bfloat16", "float16")
SAMPLING_TEMPERATURE = defaults.SAMPLING_TEMPERATURE
SAMPLING_TOP_P = defaults.SAMPLING_TOP_P


@dataclass
class Generation:
    """One generated continuation; finished is False when it was cut at max_new_tokens.

    mean_entropy: mean over the generated tokens (up to and including the stop token) of the entropy in nats of
    the distribution each was drawn from, before temperature and top-p; None when the backend does not report it.
    """

    text: str
    finished: bool
    n_tokens: int
    mean_entropy: float | None = None


@runtime_checkable
class GenerationBackend(Protocol):
    """Anything that turns prompts into n generations each, in prompt order."""

    def generate(self, prompts: list[str], n: int = 1) -> list[list[Generation]]:
        """Return n generations for every prompt, in the order of `prompts`."""
        ...


def stop_token_ids(tokenizer: Any, extra: int | list[int] | None = None) -> list[int]:
    """EOS plus the tokenizer's end-of-turn special tokens (and `extra`, e.g. the model's configured EOS ids)."""
    ids: list[int] = []
    candidates = [tokenizer.eos_token_id, *(extra if isinstance(extra, list) else [extra])]
    added = tokenizer.get_added_vocab()
    candidates += [added[token] for token in EOS_LIKE_TOKENS if token in added]
    for token_id in candidates:
        if token_id is not None and token_id not in ids:
            ids.append(token_id)
    if not ids:
        raise ModelError("the tokenizer has no EOS token, so generations could never stop; set eos_token")
    return ids


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of a prompt, adding BOS only when the (chat-template) text does not already start with it."""
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and prompt.startswith(bos))
    return tokenizer(prompt, add_special_tokens=add_special)["input_ids"]


def _check_sampling(temperature: float, top_p: float, max_new_tokens: int) -> None:
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")


def _check_n(n: int, temperature: float) -> None:
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    if n > 1 and temperature == 0:
        raise ConfigError("several samples per prompt need temperature > 0 (greedy decoding repeats itself)")


class HFBackend:
    """Batched `model.generate` on CPU or CUDA with left padding; accepts a path or an already-loaded model.

    token_entropy=True fills `Generation.mean_entropy` from the logits of every step (recorded by a logits
    processor, so memory stays one float per token instead of `output_logits`' full vocabulary per token).
    mix_with=weak model (path or loaded) generates from z_mix = mix_lambda·z_model + (1-mix_lambda)·z_weak,
    greedy or sampled (temperature and top-p act on the mixed logits); entropies are then those of softmax(z_mix).
    stop_strings: a generation also stops once its generated text holds one of them (matched on decoded text, so
    across token boundaries); its text ends with the string and n_tokens counts the token that completed it.
    Greedy outputs are identical to those without it up to the string. () stops on tokens only.
    """

    def __init__(
        self,
        model: str | PreTrainedModel,
        tokenizer: Any = None,
        batch_size: int = 8,
        max_new_tokens: int = 1024,
        temperature: float = 0.0,
        top_p: float = 1.0,
        device: str | None = None,
        dtype: str = "auto",
        seed: int = 0,
        token_entropy: bool = False,
        mix_with: str | PreTrainedModel | None = None,
        mix_lambda: float = defaults.LAMBDA,
        stop_strings: Sequence[str] = STOP_STRINGS,
    ) -> None:
        import torch

        from wmss.models import load_causal_lm, load_tokenizer

        _check_sampling(temperature, top_p, max_new_tokens)
        if mix_with is not None and not 0.0 <= mix_lambda <= 1.0:
            raise ConfigError(f"mix_lambda must be in [0, 1], got {mix_lambda}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if isinstance(model, str):
            tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model)
            model = load_causal_lm(model, dtype=dtype)
            device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        elif tokenizer is None:
            raise ConfigError("HFBackend needs the tokenizer when given an already-loaded model")
        if device is not None:
            model = model.to(device)
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.stop_ids = stop_token_ids(tokenizer, model.generation_config.eos_token_id)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.stop_ids[0]
        if any(not text for text in stop_strings):
            raise ConfigError(f"stop_strings must be non-empty strings, got {list(stop_strings)}")
        self.stop_strings = tuple(stop_strings)
        self.token_entropy = token_entropy
        self.mix_lambda = mix_lambda
        self.weak_model = None if mix_with is None else self._load_weak(mix_with, dtype)

    def _load_weak(self, weak: str | PreTrainedModel, dtype: str) -> PreTrainedModel:
        """The weak branch on the strong model's device, refused unless both share one vocabulary."""
        from wmss.models import check_same_vocabulary, load_causal_lm, load_tokenizer

        weak_tokenizer = None
        if isinstance(weak, str):
            weak_tokenizer = load_tokenizer(weak)
            weak = load_causal_lm(weak, dtype=dtype)
        check_same_vocabulary(weak, self.model, weak_tokenizer, self.tokenizer)
        return weak.to(self.model.device)

    def _generation_config(self, n: int) -> Any:
        from transformers import GenerationConfig

        sampling: dict[str, Any] = {"do_sample": False}
        if self.temperature > 0:
            # Explicit neutral values: unset fields would be filled from the checkpoint's generation_config
            # (e.g. Qwen's top_k=20, repetition_penalty=1.05), silently departing from the paper's settings.
            sampling = {
                "do_sample": True,
                "temperature": self.temperature,
                "top_p": self.top_p,
                "top_k": 0,
                "min_p": 0.0,
                "typical_p": 1.0,
            }
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            num_return_sequences=n,
            eos_token_id=self.stop_ids,
            pad_token_id=self.pad_id,
            repetition_penalty=1.0,
            **sampling,
        )

    def _generate_batch(self, batch: list[list[int]], n: int) -> list[list[Generation]]:
        import torch

        width = max(len(ids) for ids in batch)
        device = self.model.device
        input_ids = torch.tensor([[self.pad_id] * (width - len(ids)) + ids for ids in batch], device=device)
        attention_mask = torch.tensor(
            [[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device
        )
        from transformers import StoppingCriteriaList

        from wmss.eval.stopping import StopOnStrings

        processors, recorder = self._logits_processors(attention_mask)
        stopper = StopOnStrings(self.tokenizer, self.stop_strings, width) if self.stop_strings else None
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            generation_config=self._generation_config(n),
            # None on the default path: generate then runs exactly as without this feature.
            logits_processor=processors,
            stopping_criteria=None if stopper is None else StoppingCriteriaList([stopper]),
        )
        stopped_at = {} if stopper is None else stopper.stopped_at
        generations = [
            self._to_generation(tokens, stopped_at.get(row))
            for row, tokens in enumerate(output[:, width:].tolist())
        ]
        if recorder is not None:
            entropies = recorder.mean_entropies([generation.n_tokens for generation in generations])
            for generation, entropy in zip(generations, entropies, strict=True):
                generation.mean_entropy = entropy
        # generate returns the n samples of a prompt next to each other.
        return [generations[i * n : (i + 1) * n] for i in range(len(batch))]

    def _logits_processors(self, attention_mask: Any) -> tuple[Any, Any]:
        """(the mixing and entropy-recording processors for one generate call or None, the recorder or None)."""
        if self.weak_model is None and not self.token_entropy:
            return None, None
        from transformers import LogitsProcessorList

        from wmss.eval.mixing import EntropyRecorder, MixedLogitsProcessor

        processors = LogitsProcessorList()
        if self.weak_model is not None:
            processors.append(MixedLogitsProcessor(self.weak_model, self.mix_lambda, attention_mask))
        recorder = EntropyRecorder() if self.token_entropy else None
        if recorder is not None:
            # After the mixer, so that it measures the distribution the tokens are actually drawn from.
            processors.append(recorder)
        return processors, recorder

    def _to_generation(self, tokens: list[int], string_stop: int | None = None) -> Generation:
        stop = next((index for index, token in enumerate(tokens) if token in self.stop_ids), None)
        if string_stop is not None and (stop is None or string_stop <= stop):
            # Stopped at a stop string (what follows is padding): the text ends with the string.
            text = self.tokenizer.decode(tokens[:string_stop], skip_special_tokens=True)
            end = min(text.find(s) + len(s) for s in self.stop_strings if s in text)
            return Generation(text=text[:end], finished=True, n_tokens=string_stop)
        kept = tokens if stop is None else tokens[:stop]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Generation(
            text=text, finished=stop is not None, n_tokens=len(tokens) if stop is None else stop + 1
        )

    def generate(self, prompts: list[str], n: int = 1) -> list[list[Generation]]:
        """Generate n continuations per prompt, batching prompts of similar length together."""
        import torch
        from tqdm.auto import tqdm

        _check_n(n, self.temperature)
        encoded = [encode_prompt(self.tokenizer, prompt) for prompt in prompts]
        # Longest first: similar lengths waste less padding, and an out-of-memory error shows up at once.
        order = sorted(range(len(prompts)), key=lambda index: -len(encoded[index]))
        results: list[list[Generation]] = [[] for _ in prompts]
        models = [self.model] if self.weak_model is None else [self.model, self.weak_model]
        was_training = [model.training for model in models]
        for model in models:
            model.eval()
        torch.manual_seed(self.seed)
        try:
            with torch.inference_mode(), tqdm(total=len(prompts), desc="generate", unit="prompt") as progress:
                for start in range(0, len(order), self.batch_size):
                    indices = order[start : start + self.batch_size]
                    batch_results = self._generate_batch([encoded[index] for index in indices], n)
                    for index, generations in zip(indices, batch_results, strict=True):
                        results[index] = generations
                    progress.update(len(indices))
        finally:
            for model, training in zip(models, was_training, strict=True):
                model.train(training)
        return results


class VLLMBackend:
    """vLLM offline inference (imported only when constructed); same stopping rule as HFBackend."""

    def __init__(
        self,
        model: str,
        max_new_tokens: int = 1024,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        stop_strings: Sequence[str] = STOP_STRINGS,
    ) -> None:
        _check_sampling(temperature, top_p, max_new_tokens)
        try:
            import vllm
        except ImportError as exc:
            raise WMSSError(
                "the vllm backend needs vLLM: pip install vllm (or pip install 'wmss[vllm]')"
            ) from exc
        self._vllm = vllm
        self.llm = vllm.LLM(
            model=model,
            dtype=dtype,
            seed=seed,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.stop_ids = stop_token_ids(self.tokenizer)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.stop_strings = tuple(stop_strings)

    def generate(self, prompts: list[str], n: int = 1) -> list[list[Generation]]:
        """Generate n continuations per prompt with one vLLM call."""
        _check_n(n, self.temperature)
        params = self._vllm.SamplingParams(
            n=n,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=-1,
            repetition_penalty=1.0,
            max_tokens=self.max_new_tokens,
            stop_token_ids=self.stop_ids,
            stop=list(self.stop_strings),
            include_stop_str_in_output=True,
            skip_special_tokens=True,
        )
        # Pre-tokenised so BOS handling matches HFBackend exactly.
        requests = [{"prompt_token_ids": encode_prompt(self.tokenizer, prompt)} for prompt in prompts]
        outputs = self.llm.generate(requests, params)
        return [
            [
                Generation(c.text, finished=c.finish_reason == "stop", n_tokens=len(c.token_ids))
                for c in out.outputs
            ]
            for out in outputs
        ]
