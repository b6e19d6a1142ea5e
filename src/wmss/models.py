"""Loading tokenizers and causal LMs from a directory or hub id, and checking that two models can be mixed."""

from __future__ import annotations

import logging

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from wmss.config import ModelConfig
from wmss.errors import ModelError

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str) -> torch.dtype | str:
    """Map a config dtype name to a torch dtype ("auto" is passed through to transformers)."""
    return _DTYPES.get(name, "auto")


def load_tokenizer(path: str, cfg: ModelConfig | None = None) -> PreTrainedTokenizerBase:
    """Load a tokenizer and make sure it has a pad token (falls back to EOS)."""
    cfg = cfg or ModelConfig()
    source = cfg.tokenizer or path
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a tokenizer from {source!r}: {exc}") from None
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise ModelError(f"tokenizer at {source!r} has neither a pad nor an EOS token; add one")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    path: str, cfg: ModelConfig | None = None, dtype: str | None = None, for_training: bool = False
) -> PreTrainedModel:
    """Load an `AutoModelForCausalLM` with the configured dtype and attention implementation."""
    cfg = cfg or ModelConfig()
    name = dtype or cfg.dtype
    if for_training and name == "auto":
        # Trained weights stay float32 (bf16 is autocast via the `bf16` training flag): plain optimizers
        # updating bf16 weights in place lose most updates at lr 1e-5 to rounding.
        name = "float32"
    kwargs: dict = {"dtype": resolve_dtype(name), "trust_remote_code": cfg.trust_remote_code}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    try:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a causal LM from {path!r}: {exc}") from None


def vocabulary_signature(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """Size and a content hash of a tokenizer's vocabulary, to compare two tokenizers cheaply."""
    vocab = tokenizer.get_vocab()
    return len(vocab), hash(tuple(sorted(vocab.items())))


def check_same_vocabulary(
    weak: PreTrainedModel,
    strong: PreTrainedModel,
    weak_tokenizer: PreTrainedTokenizerBase | None = None,
    strong_tokenizer: PreTrainedTokenizerBase | None = None,
    names: tuple[str, str] = ("weak", "strong"),
) -> None:
    """Refuse to mix logits of models whose vocabularies differ (config.vocab_size, embeddings, tokenizers)."""
    sizes = [m.get_output_embeddings().weight.shape[0] for m in (weak, strong)]
    configured = [m.config.get_text_config().vocab_size for m in (weak, strong)]
    if sizes[0] != sizes[1] or configured[0] != configured[1]:
        raise ModelError(
            f"the {names[0]} and {names[1]} models have different vocabularies "
            f"(config.vocab_size {configured[0]} vs {configured[1]}, output embeddings {sizes[0]} vs {sizes[1]}); "
            "WMSS mixes their logits token by token, so both must be checkpoints of the same model family "
            "with the same tokenizer"
        )
    if (
        weak_tokenizer is not None
        and strong_tokenizer is not None
        and vocabulary_signature(weak_tokenizer) != vocabulary_signature(strong_tokenizer)
    ):
        raise ModelError(
            f"the {names[0]} and {names[1]} tokenizers differ (vocabulary sizes "
            f"{len(weak_tokenizer)} vs {len(strong_tokenizer)} or different token ids); "
            "use checkpoints that share one tokenizer"
        )
