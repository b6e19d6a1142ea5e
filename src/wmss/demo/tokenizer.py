"""A tiny deterministic char-level tokenizer with ChatML special tokens for the offline demo."""

from __future__ import annotations

from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (EOS_TOKEN, IM_START, IM_END)
# Single tokens but not special, as in Qwen3: decoding with skip_special_tokens keeps them, so the
# evaluation reads the <answer> tag out of generated text.
TAG_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
# Every printable ASCII character, so that any English system prompt also tokenizes without loss;
# characters outside it (no unknown token) are dropped, which the ASCII-only demo task never produces.
ALPHABET = "\n" + "".join(chr(code) for code in range(32, 127))

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def build_demo_tokenizer(output_dir: Path | None = None) -> PreTrainedTokenizerFast:
    """Build the demo tokenizer (same ids every call) and save it to `output_dir` when given."""
    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *TAG_TOKENS, *ALPHABET))}
    # BPE without merges splits every word into single characters; no pre-tokenizer, so spaces and
    # newlines are ordinary characters and decoding is plain concatenation.
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False))
    backend.decoder = decoders.Fuse()
    backend.add_tokens([AddedToken(token, normalized=False, special=False) for token in TAG_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    if output_dir is not None:
        tokenizer.save_pretrained(str(output_dir))
    return tokenizer
