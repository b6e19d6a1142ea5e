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


def test_lora_curriculum_scores_each_adapter_with_the_shared_scorer(tmp_path, tiny_model_dir, tokenizer):
    # Both adapters start at the base model (lora_B = 0): each branch's entropies are the base model's.
    args = WMSSConfig(
        output_dir=str(tmp_path),
        per_device_eval_batch_size=5,
        max_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        curriculum=True,
    )
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = WMSSTrainer(
        model=str(tiny_model_dir),
        args=args,
        peft_config=peft_config,
        train_dataset=_dataset(),
        processing_class=tokenizer,
    )
    rows = trainer.full_train_dataset
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).double().eval()
    expected = []
    for ids, labels in zip(rows["input_ids"], rows["labels"], strict=True):
        with torch.no_grad():
            logp = torch.log_softmax(base(input_ids=torch.tensor([ids])).logits[0], -1)
        entropy = -(logp.exp() * logp).sum(-1)[:-1]  # position t predicts token t + 1
        expected.append(float(entropy[torch.tensor(labels[1:]) != -100].mean()))
    for branch in (STRONG, WEAK):
        torch.testing.assert_close(
            torch.tensor(trainer.sample_entropies(branch, rows)), torch.tensor(expected)
        )
    assert len(trainer.train_dataset) == len(rows) and trainer.curriculum_stats["n_draws"] == len(rows)
