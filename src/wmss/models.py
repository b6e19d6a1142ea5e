"""Loading tokenizers and causal LMs from a directory or hub id, and checking that two models can be mixed."""

from __future__ import annotations

import functools
import json
import logging
import os
import struct
from pathlib import Path

import torch
from huggingface_hub import HfApi, try_to_load_from_cache
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from wmss.config import ModelConfig, is_hub_id
from wmss.errors import ModelError

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
HUB_PROBE_TIMEOUT_S = 3.0
_TRUE = ("1", "ON", "YES", "TRUE")


def _offline() -> bool:
    # The environment is read now, not at import time, so a variable set after start-up still counts.
    env = (os.environ.get(name, "").upper() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(env) or hub_constants.HF_HUB_OFFLINE


@functools.cache
def _hub_problem(repo_id: str) -> str | None:
    """Why `repo_id` cannot be fetched from the hub (None when it can): one quick request, no retries."""
    try:
        HfApi().model_info(repo_id, timeout=HUB_PROBE_TIMEOUT_S)
    except GatedRepoError:
        return None  # it exists; transformers explains access itself
    except RepositoryNotFoundError:
        return "a model on the hub (it has none by that name; for a private one, log in with `hf auth login`)"
    except (
        Exception
    ) as exc:  # any transport failure (DNS, refused, timeout, proxy) means the same to the user
        return (
            f"reachable on the hub (no answer from {hub_constants.ENDPOINT} within "
            f"{HUB_PROBE_TIMEOUT_S:g} s: {type(exc).__name__}); check the path, or set HF_HUB_OFFLINE=1 "
            "to use cached models only"
        )
    return None


def _safetensors_problem(path: Path) -> str | None:
    """What is wrong with a safetensors file's header and length (None when they are sound)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return f"{size} bytes, shorter than a safetensors header"
        (length,) = struct.unpack("<Q", head)
        if 8 + length > size:
            return f"truncated: its header needs {8 + length} bytes, the file has {size}"
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "damaged header (not JSON)"
    offsets = [entry.get("data_offsets", [0, 0]) for key, entry in header.items() if key != "__metadata__"]
    end = 8 + length + max((int(stop) for _, stop in offsets), default=0)
    return f"truncated: its tensors need {end} bytes, the file has {size}" if end > size else None


def check_model_path(path: str, need_config: bool = True) -> None:
    """Refuse, in one line naming `path`, a model that cannot load: missing locally and not on the hub
    (offline mode honoured, one quick probe), a file, a directory without config.json, truncated weights."""
    local = Path(path).expanduser()
    if local.is_file():
        raise ModelError(
            f"{path} is a file, not a model directory: give the directory that holds config.json"
        )
    if local.is_dir():
        if need_config and not (local / "config.json").is_file():
            raise ModelError(f"{path} has no config.json: not a Hugging Face model directory")
        for weights in sorted(local.glob("*.safetensors")):
            problem = _safetensors_problem(weights)
            if problem:
                raise ModelError(f"{weights} is damaged ({problem}); re-download or re-save the model")
        return
    if not is_hub_id(path):
        raise ModelError(f"{path} is neither a local directory nor a valid hub id (org/name)")
    if isinstance(try_to_load_from_cache(path, "config.json"), str):
        return  # in the local hub cache: loads without the network
    if _offline():
        raise ModelError(
            f"{path} is neither a local directory nor a model in the local hub cache "
            "(offline mode: HF_HUB_OFFLINE)"
        )
    problem = _hub_problem(path)
    if problem:
        raise ModelError(f"{path} is neither a local directory nor {problem}")


def resolve_dtype(name: str) -> torch.dtype | str:
    """Map a config dtype name to a torch dtype ("auto" is passed through to transformers)."""
    return _DTYPES.get(name, "auto")


def load_tokenizer(path: str, cfg: ModelConfig | None = None) -> PreTrainedTokenizerBase:
    """Load a tokenizer and make sure it has a pad token (falls back to EOS)."""
    cfg = cfg or ModelConfig()
    source = cfg.tokenizer or path
    check_model_path(source, need_config=False)  # a tokenizer directory needs no model config
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
    check_model_path(path)
    try:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError, SafetensorError) as exc:
        raise ModelError(f"cannot load a causal LM from {path!r}: {' '.join(str(exc).split())}") from None


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
