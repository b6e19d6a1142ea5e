"""LoRA mode: both adapters learn through the mixed loss, the base (M0) is untouched, weak starts at M0."""

from __future__ import annotations

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM

from wmss.method.lora import STRONG, WEAK, adapter_logits
from wmss.method.trainer import WMSSConfig, WMSSTrainer


def _dataset() -> Dataset:
    return Dataset.from_list(
        [{"prompt": f"{a}+{b}=", "completion": f"{a + b}"} for a in range(4) for b in range(3)]
    )


def test_lora_mode_trains_both_adapters_and_keeps_base(tmp_path, tiny_model_dir, tokenizer):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    base_logits = base(input_ids=torch.tensor([[3, 4, 5, 6]])).logits.detach()
    args = WMSSConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=3,
        learning_rate=5e-2,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
    )
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = WMSSTrainer(
        model=base, args=args, peft_config=peft_config, train_dataset=_dataset(), processing_class=tokenizer
    )
    model = trainer.model
    weak_at_start = adapter_logits(model, WEAK, torch.tensor([[3, 4, 5, 6]]), None).detach()
    torch.testing.assert_close(weak_at_start, base_logits)
    named = dict(model.named_parameters())
    before = {n: p.detach().clone() for n, p in named.items()}
    trainer.train()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert any(f".{STRONG}." in n for n in changed)
    assert any(f".{WEAK}." in n for n in changed)
    assert all(f".{STRONG}." in n or f".{WEAK}." in n for n in changed)  # the base is untouched
    logged = [r for r in trainer.state.log_history if "loss" in r]
    assert logged[0]["grad_norm_strong"] > 0 and logged[0]["grad_norm_weak"] > 0
