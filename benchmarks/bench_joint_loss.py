"""Joint-loss memory and speed: the chunked path (`JointModel`) vs the reference form on full logits.

Each variant runs forward + backward of the mixed-logit loss of two output heads on the same hidden states,
in its own subprocess so that peak memory (max RSS on CPU, max allocated on CUDA) is measured cleanly. Prints
the measurements side by side and the ratios. Usage:

    python benchmarks/bench_joint_loss.py [--tokens 4096] [--vocab 151936] [--hidden 256] [--chunk 1024]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from torch import nn

from wmss.mixed_loss import chunked_mixed_cross_entropy, mixed_logit_cross_entropy


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def _measure(
    variant: str, tokens: int, vocab: int, hidden: int, chunk: int, device: str, repeats: int
) -> dict:
    torch.manual_seed(0)
    heads = [nn.Linear(hidden, vocab, bias=False).to(device) for _ in range(2)]
    h_s = torch.randn(tokens, hidden, device=device, requires_grad=True)
    h_w = torch.randn(tokens, hidden, device=device, requires_grad=True)
    targets = torch.randint(0, vocab, (tokens,), device=device)
    labels = torch.cat([torch.full((1,), -100, device=device), targets])[None]

    def step() -> float:
        if variant == "chunked":
            loss = (
                chunked_mixed_cross_entropy(h_s, h_w, heads[0], heads[1], targets, chunk_size=chunk) / tokens
            )
        else:
            # Reference: [T, V] logits of both models exist at once (what a naive implementation does).
            pad = torch.zeros(1, hidden, device=device)
            z_s, z_w = heads[0](torch.cat([h_s, pad]))[None], heads[1](torch.cat([h_w, pad]))[None]
            loss = mixed_logit_cross_entropy(z_s, z_w, labels)
        loss.backward()
        return float(loss)

    baseline = _rss_mib()
    step()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    for _ in range(repeats):
        value = step()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        # Growth of the process's peak RSS over its size before the first step: the loss's own memory.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline
    return {"loss": value, "seconds_per_step": (time.perf_counter() - began) / repeats, "peak_mib": peak}


def main() -> None:
    """Run both variants side by side and print the comparison."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=2048, help="trained positions in the batch")
    parser.add_argument("--vocab", type=int, default=151_936, help="vocabulary size (Qwen3: 151,936)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=512, help="positions per chunk of logits")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variant", choices=["chunked", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        result = _measure(
            args.variant, args.tokens, args.vocab, args.hidden, args.chunk, args.device, args.repeats
        )
        print(json.dumps(result))
        return
    results = {}
    for variant in ("reference", "chunked"):
        done = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--variant", variant],
            capture_output=True,
            text=True,
            check=True,
        )
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    ref, chk = results["reference"], results["chunked"]
    print(
        f"mixed-logit CE, forward+backward: {args.tokens} tokens, V={args.vocab}, H={args.hidden}, {args.device}"
    )
    print(f"{'':12}{'reference':>14}{'chunked':>14}{'ratio':>10}")
    print(f"{'loss':12}{ref['loss']:>14.6f}{chk['loss']:>14.6f}{'':>10}")
    print(
        f"{'s/step':12}{ref['seconds_per_step']:>14.3f}{chk['seconds_per_step']:>14.3f}"
        f"{chk['seconds_per_step'] / ref['seconds_per_step']:>9.2f}x"
    )
    print(
        f"{'peak MiB':12}{ref['peak_mib']:>14.0f}{chk['peak_mib']:>14.0f}{chk['peak_mib'] / ref['peak_mib']:>9.2f}x"
    )
    print(
        "(peak = growth of max RSS during the steps on CPU, max allocated on CUDA; ratio = chunked / reference)"
    )


if __name__ == "__main__":
    main()
