"""LoRA mode: one frozen base (M0) with a `strong` and a zero-initialised `weak` adapter, both trained."""

from __future__ import annotations

import dataclasses

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel

from wmss.errors import ConfigError

STRONG = "strong"
WEAK = "weak"


def add_wmss_adapters(model: PreTrainedModel | PeftModel, peft_config: LoraConfig) -> PeftModel:
    """Wrap `model` with a fresh `strong` adapter (or keep its given one) and add a fresh `weak` adapter."""
    if isinstance(model, PeftModel):
        if STRONG not in model.peft_config:
            raise ConfigError(
                f"the given PEFT model has adapters {sorted(model.peft_config)}; load the strong adapter with "
                f"PeftModel.from_pretrained(base, path, adapter_name='{STRONG}', is_trainable=True)"
            )
    else:
        model = get_peft_model(model, peft_config, adapter_name=STRONG)
    # lora_B = 0 with the default init: the weak branch starts exactly at the base model M0.
    model.add_adapter(WEAK, dataclasses.replace(peft_config, init_lora_weights=True))
    enable_adapter_grads(model)
    return model


def enable_adapter_grads(model: PeftModel) -> None:
    """Make both adapters trainable again: PEFT's set_adapter turns off requires_grad of inactive ones."""
    for name, param in model.named_parameters():
        param.requires_grad = f".{STRONG}." in name or f".{WEAK}." in name


def use_adapter(model: PeftModel, adapter: str) -> None:
    """Make `adapter` the active one (the branch the model computes), keeping both adapters trainable."""
    model.base_model.set_adapter(adapter)
    enable_adapter_grads(model)


def adapter_logits(
    model: PeftModel, adapter: str, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
) -> torch.Tensor:
    """Logits of the base model with only `adapter` active, keeping both adapters trainable."""
    use_adapter(model, adapter)
    return model(input_ids=input_ids, attention_mask=attention_mask).logits


def adapter_grad_norms(model: PeftModel) -> dict[str, float]:
    """L2 norm of the current gradients of each adapter."""
    norms = {}
    for adapter in (STRONG, WEAK):
        grads = [
            p.grad.detach().float().norm()
            for n, p in model.named_parameters()
            if f".{adapter}." in n and p.grad is not None
        ]
        norms[adapter] = float(torch.stack(grads).norm()) if grads else 0.0
    return norms
