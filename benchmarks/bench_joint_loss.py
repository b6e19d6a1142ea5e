"""Mixed-logit loss, forward + backward of both heads and both hidden states: the naive form vs `JointModel`'s.

Variants, run in turn in one process on the same hidden states and heads (medians over repeats):
  naive      both models' full [T, V] logits, then z_mix and cross-entropy (what a plain implementation does)
  fused      `fused_mixed_cross_entropy` at JointModel's default chunk size: gradients computed in forward
  recompute  `chunked_mixed_cross_entropy` (the previous default): each chunk's logits recomputed in backward
  torch_lce  `torch.nn.functional.linear_cross_entropy` on [λ·h_s | (1-λ)·h_w] and [W_s | W_w], same chunk size
On CUDA the heads are float32 master weights, the hidden states bf16 and the step runs under bf16 autocast.

    python benchmarks/bench_joint_loss.py [--tokens 4096] [--vocab 151936] [--variants naive,fused] [--json -]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _measure import emit, interleaved
from torch import nn

from wmss import defaults
from wmss.method.mixed_loss import chunked_mixed_cross_entropy, fused_mixed_cross_entropy, mixed_logits

GOALS = {"fused": {"peak": 1 / 8, "time": 1.0}}
LAM = 0.5


def make_variants(
    tokens: int, vocab: int, hidden: int, chunk: int, device: str
) -> dict[str, Callable[[], None]]:
    """One closure per variant; each runs forward + backward and leaves fresh gradients behind."""
    torch.manual_seed(0)
    heads = [nn.Linear(hidden, vocab, bias=False, device=device) for _ in range(2)]
    low = torch.bfloat16 if device == "cuda" else torch.float32
    h_s, h_w = (torch.randn(tokens, hidden, device=device, dtype=low, requires_grad=True) for _ in range(2))
    targets = torch.randint(0, vocab, (tokens,), device=device)
    params = [h_s, h_w, *(head.weight for head in heads)]

    def naive() -> torch.Tensor:
        return F.cross_entropy(mixed_logits(heads[0](h_s), heads[1](h_w), LAM), targets, reduction="sum")

    def fused() -> torch.Tensor:
        return fused_mixed_cross_entropy(h_s, h_w, heads[0].weight, heads[1].weight, targets, LAM, chunk)

    def recompute() -> torch.Tensor:
        return chunked_mixed_cross_entropy(h_s, h_w, heads[0], heads[1], targets, LAM, chunk)

    options = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=chunk, chunking_method=None)

    def torch_lce() -> torch.Tensor:
        joint_h = torch.cat([LAM * h_s, (1 - LAM) * h_w], dim=1)
        joint_w = torch.cat([heads[0].weight, heads[1].weight], dim=1)
        return F.linear_cross_entropy(joint_h, joint_w, targets, reduction="sum", options=options)

    def step(loss_fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                loss = loss_fn()
            loss.backward()

        return run

    variants = {"naive": naive, "fused": fused, "recompute": recompute, "torch_lce": torch_lce}

    def reset() -> None:
        for p in params:
            p.grad = None

    return {name: step(fn) for name, fn in variants.items()}, reset


def main() -> None:
    """Measure the chosen variants side by side and print times, peaks and ratios to naive with the goals."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=4096, help="trained positions in the batch")
    parser.add_argument("--vocab", type=int, default=151_936, help="vocabulary size (Qwen3: 151,936)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument(
        "--chunk", type=int, default=defaults.CHUNK_SIZE, help="rows per chunk (JointModel's default)"
    )
    parser.add_argument("--variants", default="naive,fused,recompute,torch_lce")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="also write the results as JSON to this file ('-': stdout)")
    args = parser.parse_args()
    names = args.variants.split(",")
    if "naive" not in names:
        parser.error("--variants must include naive (ratios are taken to it)")
    every, reset = make_variants(args.tokens, args.vocab, args.hidden, args.chunk, args.device)
    # No warm-up round: at these sizes one call is seconds long, and a warm-up would double the run time.
    chosen = {name: every[name] for name in names}
    results = interleaved(chosen, args.repeats, args.device, warmup=False, reset=reset)
    base = results["naive"]
    print(
        f"mixed-logit CE, forward+backward: T={args.tokens}, V={args.vocab}, H={args.hidden}, "
        f"chunk={args.chunk}, {args.device}, median of {args.repeats}"
    )
    print(f"{'variant':12}{'s/step':>10}{'peak MiB':>10}{'time':>8}{'peak':>8}  goal")
    for name in names:
        r = results[name]
        r["time_ratio"] = r["seconds"] / base["seconds"]
        r["peak_ratio"] = r["peak_mib"] / base["peak_mib"]
        goal = GOALS.get(name)
        note = f"time <= {goal['time']:.2f}x, peak <= {goal['peak']:.3f}x" if goal else ""
        print(
            f"{name:12}{r['seconds']:>10.2f}{r['peak_mib']:>10.0f}{r['time_ratio']:>7.2f}x{r['peak_ratio']:>7.3f}x  {note}"
        )
    emit({"config": vars(args), "results": results, "goals": GOALS}, args.json)


if __name__ == "__main__":
    main()
