"""Peak memory of WMSS LoRA mode vs full co-training on the same model (each mode in a fresh process)."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, Qwen3Config

from wmss.demo.tokenizer import build_demo_tokenizer
from wmss.method.trainer import WMSSConfig, WMSSTrainer


def build_model(vocab_size: int, hidden: int, layers: int, seed: int) -> AutoModelForCausalLM:
    """A Qwen3 of the given width and depth with random weights."""
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=hidden // 64,
        head_dim=64,
    )
    return AutoModelForCausalLM.from_config(config)


def run_mode(mode: str, hidden: int, layers: int, steps: int) -> dict[str, float]:
    """Train a few steps in `mode` (full or lora) and return its peak memory in MiB."""
    tokenizer = build_demo_tokenizer()
    data = Dataset.from_list(
        [{"prompt": f"{a}+{b}=", "completion": f"{a + b}" * 8} for a in range(30) for b in range(30)]
    )
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as out:
        args = WMSSConfig(
            output_dir=out,
            max_steps=steps,
            per_device_train_batch_size=8,
            report_to=[],
            save_strategy="no",
            use_cpu=not cuda,
            bf16=False,
            gradient_checkpointing=False,
        )
        strong = build_model(len(tokenizer), hidden, layers, 1)
        if mode == "full":
            trainer = WMSSTrainer(
                model=strong,
                weak_model=build_model(len(tokenizer), hidden, layers, 0),
                args=args,
                train_dataset=data,
                processing_class=tokenizer,
            )
        else:
            lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
            trainer = WMSSTrainer(
                model=strong, args=args, peft_config=lora, train_dataset=data, processing_class=tokenizer
            )
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
    if cuda:
        return {"peak_mib": torch.cuda.max_memory_allocated() / 2**20, "device": "cuda"}
    return {"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "device": "cpu (peak RSS)"}


def main() -> None:
    """Run both modes in fresh processes and print their peaks and ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--mode", choices=["full", "lora"])
    cli = parser.parse_args()
    if cli.mode:
        print(json.dumps(run_mode(cli.mode, cli.hidden, cli.layers, cli.steps)))
        return
    results = {}
    for mode in ("full", "lora"):
        cmd = [
            sys.executable,
            __file__,
            "--mode",
            mode,
            "--hidden",
            str(cli.hidden),
            "--layers",
            str(cli.layers),
            "--steps",
            str(cli.steps),
        ]
        results[mode] = json.loads(
            subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
        )
    ratio = results["lora"]["peak_mib"] / results["full"]["peak_mib"]
    print(f"hidden={cli.hidden} layers={cli.layers} device={results['full']['device']}")
    print(
        f"full co-training peak {results['full']['peak_mib']:.0f} MiB, LoRA mode peak {results['lora']['peak_mib']:.0f} MiB, "
        f"ratio {ratio:.2f}"
    )


if __name__ == "__main__":
    main()
