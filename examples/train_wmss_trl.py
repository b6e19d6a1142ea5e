"""TRL-style WMSS on tiny models built from a config (no download): full mode, then LoRA mode."""

from __future__ import annotations

import argparse
import tempfile

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, Qwen3Config

from wmss.demo.tokenizer import build_demo_tokenizer
from wmss.method.trainer import WMSSConfig, WMSSTrainer


def tiny_model(vocab_size: int, seed: int) -> AutoModelForCausalLM:
    """A 2-layer Qwen3 with random weights."""
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        tie_word_embeddings=True,
    )
    return AutoModelForCausalLM.from_config(config)


def main() -> None:
    """Train WMSS in full and LoRA mode for a few steps."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-steps", type=int, default=10)
    cli = parser.parse_args()
    tokenizer = build_demo_tokenizer()
    data = Dataset.from_list(
        [{"prompt": f"{a}+{b}=", "completion": f"{a + b}"} for a in range(10) for b in range(10)]
    )
    with tempfile.TemporaryDirectory() as out:
        args = WMSSConfig(
            output_dir=out,
            mix_lambda=0.5,
            max_steps=cli.max_steps,
            logging_steps=5,
            per_device_train_batch_size=8,
            learning_rate=1e-3,
            report_to=[],
            use_cpu=not torch.cuda.is_available(),
        )
        strong, weak = tiny_model(len(tokenizer), 1), tiny_model(len(tokenizer), 0)
        trainer = WMSSTrainer(
            model=strong, weak_model=weak, args=args, train_dataset=data, processing_class=tokenizer
        )
        trainer.train()
        trainer.save_model(f"{out}/full")
        lora = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
        trainer = WMSSTrainer(
            model=tiny_model(len(tokenizer), 0),
            args=args,
            peft_config=lora,
            train_dataset=data,
            processing_class=tokenizer,
        )
        trainer.train()
        trainer.save_model(f"{out}/lora")  # the PEFT model: both adapters; the strong one is the result
    print("full and LoRA WMSS training finished")


if __name__ == "__main__":
    main()
