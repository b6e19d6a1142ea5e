"""A whole joint training step vs a plain SFT step of the same model and batch; the entropy pass vs a forward.

Variants, run in turn in one process (medians over repeats), each a full step: forward, backward, AdamW step:
  sft       the strong model alone, `model(**batch).loss` (transformers' own causal-LM loss on all positions)
  joint     `JointModel(strong, weak)`, weak co-trained (same architecture: the limit is 2.0x)
  frozen    `JointModel(strong, weak, weak_trainable=False)` (weak forward only: the limit is ~1.33x)
and, without gradients: `forward` (the model's plain forward, logits of every position) vs `entropy` (the
Phase-2 pass: decoder, then `chunked_sample_entropy` on completion positions).

    python benchmarks/bench_joint_step.py [--vocab 151936] [--hidden 256] [--layers 8] [--json -]
"""

from __future__ import annotations

import argparse

import torch
from _measure import emit, interleaved
from transformers import AutoModelForCausalLM, Qwen3Config

from wmss import defaults
from wmss.method.entropy import chunked_sample_entropy
from wmss.method.joint_model import JointModel

GOALS = {"joint": 2.1, "frozen": 1.4, "entropy": 1.1}  # ratio to sft (training) or to forward (entropy)


def tiny_qwen3(vocab: int, hidden: int, layers: int, seed: int) -> torch.nn.Module:
    """A Qwen3-shaped causal LM (tied embeddings, GQA) of the given size, randomly initialised."""
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=max(hidden // 128, 1),
        head_dim=64,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    return AutoModelForCausalLM.from_config(config)


def main() -> None:
    """Measure the training steps and the entropy pass side by side; print ratios with the goals."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vocab", type=int, default=151_936)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument(
        "--prompt-fraction", type=float, default=0.25, help="untrained leading share of each row"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="also write the results as JSON to this file ('-': stdout)")
    args = parser.parse_args()
    device = args.device
    strong = tiny_qwen3(args.vocab, args.hidden, args.layers, 0).to(device).train()
    weak = tiny_qwen3(args.vocab, args.hidden, args.layers, 1).to(device).train()
    frozen_weak = tiny_qwen3(args.vocab, args.hidden, args.layers, 1).to(device)
    input_ids = torch.randint(0, args.vocab, (args.batch, args.seq), device=device)
    labels = input_ids.clone()
    labels[:, : int(args.prompt_fraction * args.seq)] = -100
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}
    joint = JointModel(strong, weak)
    frozen = JointModel(strong, frozen_weak, weak_trainable=False)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")

    def train_step(model: torch.nn.Module, loss_of) -> callable:
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=1e-5, foreach=True
        )

        def run() -> None:
            with autocast:
                loss = loss_of(model)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return run

    @torch.no_grad()
    def forward() -> None:
        strong.eval()
        with autocast:
            strong(input_ids=input_ids, attention_mask=batch["attention_mask"]).logits.float()
        strong.train()

    @torch.no_grad()
    def entropy() -> None:
        strong.eval()
        with autocast:
            hidden = strong.get_decoder()(input_ids=input_ids, attention_mask=batch["attention_mask"])[0]
            chunked_sample_entropy(
                hidden, strong.get_output_embeddings(), labels, chunk_size=defaults.CHUNK_SIZE
            )
        strong.train()

    variants = {
        "sft": train_step(strong, lambda m: m(**batch).loss),
        "joint": train_step(joint, lambda m: m(**batch)["loss"]),
        "frozen": train_step(frozen, lambda m: m(**batch)["loss"]),
        "forward": forward,
        "entropy": entropy,
    }
    results = interleaved(variants, args.repeats, device)
    trained = int(labels[:, 1:].ne(-100).sum())
    print(
        f"training step (fwd+bwd+AdamW): Qwen3-shaped H={args.hidden}, {args.layers} layers, V={args.vocab}, "
        f"batch {args.batch}x{args.seq} ({trained} trained tokens), {device}, median of {args.repeats}"
    )
    print(f"{'variant':10}{'s':>9}{'ratio':>9}  goal")
    for name, base in (
        ("sft", "sft"),
        ("joint", "sft"),
        ("frozen", "sft"),
        ("forward", "forward"),
        ("entropy", "forward"),
    ):
        r = results[name]
        r["ratio"] = r["seconds"] / results[base]["seconds"]
        goal = f"<= {GOALS[name]:.2f}x {base}" if name in GOALS else ""
        print(f"{name:10}{r['seconds']:>9.3f}{r['ratio']:>8.2f}x  {goal}")
    emit({"config": vars(args), "results": results, "goals": GOALS}, args.json)


if __name__ == "__main__":
    main()
