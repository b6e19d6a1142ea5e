"""Shared test helpers: a tiny offline char-level tokenizer with ChatML and reasoning special tokens."""

from __future__ import annotations

import string
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, processors
from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"
PAD = "<|pad|>"
UNK = "<|unk|>"
BOS = "<|bos|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (EOS, PAD, UNK, BOS, IM_START, IM_END)
# Ordinary added tokens: matched as one token in text, kept by decode(skip_special_tokens=True).
REASONING_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
# Sorted so that ids never depend on the order of `string.printable`.
ALPHABET = "".join(sorted(set(string.printable)))

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def make_tiny_tokenizer(
    path: Path | None = None, chat_template: bool = True, add_bos: bool = False
) -> PreTrainedTokenizerFast:
    """Char-level tokenizer over printable ASCII (same ids every call); ChatML template; saved when `path` given."""
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *REASONING_TOKENS, *ALPHABET))}
    # BPE without merges and without a pre-tokenizer splits text into single characters, whitespace
    # included, and Fuse decodes by plain concatenation, so decode(encode(text)) == text on the alphabet.
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    backend.add_tokens([AddedToken(t, normalized=False) for t in REASONING_TOKENS])
    backend.decoder = decoders.Fuse()
    if add_bos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, vocab[BOS])]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS if add_bos else None,
        clean_up_tokenization_spaces=False,
        model_max_length=1 << 20,
    )
    if chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    if path is not None:
        tokenizer.save_pretrained(str(path))
    return tokenizer


def tiny_training_overrides(max_steps: int, save_steps: int) -> list[str]:
    """`--set` overrides that make both training stages a few fast, constant-rate optimizer steps."""
    return [
        f"{stage}.{key}={value}"
        for stage in ("sft", "joint")
        for key, value in (
            ("max_steps", max_steps),
            ("per_device_train_batch_size", 4),
            ("save_steps", save_steps),
            ("logging_steps", 1),
            ("learning_rate", 1e-3),
            ("lr_scheduler_type", "constant"),
        )
    ]
