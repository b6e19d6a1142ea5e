"""`make bench`: every comparison of issues 10 and 20, each side by side in its own process, then one table.

    python benchmarks/run_all.py [--device cuda] [--repeats 3] [--quick]

`--quick` shrinks the sizes (T=1024 for the loss, 16 problems for greedy evaluation) for a smoke run; the goals
are stated for the defaults.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, args: list[str]) -> dict:
    """Run one benchmark script in a fresh process; its printed table passes through, its JSON comes back."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, str(HERE / script), *args, "--json", out.name], check=True)
        return json.loads(Path(out.name).read_text())


def main() -> None:
    """Run the loss, step and greedy-evaluation benchmarks and print the summary with the goals."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    common = ["--repeats", str(args.repeats)] + (["--device", args.device] if args.device else [])
    loss_size = ["--tokens", "1024"] if args.quick else []
    step_size = ["--seq", "128", "--layers", "2"] if args.quick else []
    rows = []
    loss = run("bench_joint_loss.py", common + loss_size)
    fused = loss["results"]["fused"]
    cfg = loss["config"]
    where = f"T={cfg['tokens']}, V={cfg['vocab']}"
    rows.append((f"fused loss / naive, peak memory ({where})", fused["peak_ratio"], "<= 0.125"))
    rows.append((f"fused loss / naive, time ({where})", fused["time_ratio"], "<= 1.00"))
    for name in ("recompute", "torch_lce"):
        r = loss["results"][name]
        rows.append(
            (f"{name} / naive, peak memory | time", f"{r['peak_ratio']:.3f} | {r['time_ratio']:.2f}", "")
        )
    for vocab in (32_000, 151_936):
        step = run("bench_joint_step.py", common + step_size + ["--vocab", str(vocab)])["results"]
        rows.append((f"joint step / SFT step, co-trained (V={vocab})", step["joint"]["ratio"], "<= 2.10"))
        rows.append((f"joint step / SFT step, frozen weak (V={vocab})", step["frozen"]["ratio"], "<= 1.40"))
        rows.append((f"entropy pass / plain forward (V={vocab})", step["entropy"]["ratio"], "<= 1.10"))
    # Greedy generations are deterministic: one timed pass per setting (each takes minutes on a real model).
    greedy = run(
        "bench_greedy_eval.py",
        ["--repeats", "1"]
        + (["--device", args.device] if args.device else [])
        + (["--problems", "16"] if args.quick else []),
    )
    study, before = greedy["results"]["study"], greedy["results"]["before"]
    rows.append(
        (
            f"greedy eval, study / before: problems/min ({greedy['problems']} problems)",
            study["problems_per_min"] / before["problems_per_min"],
            "no slower",
        )
    )
    rows.append(
        (
            "greedy eval, study: tokens/s | problems/min",
            f"{study['tokens_per_s']:.1f} | {study['problems_per_min']:.1f}",
            "",
        )
    )
    rows.append(
        (
            "greedy eval, identical outputs up to </answer>",
            f"{study['identical_outputs']} of {greedy['problems']}",
            "all",
        )
    )
    print("\nsummary (ratios measured side by side in one process per comparison; medians)")
    print(f"{'comparison':58}{'measured':>16}  goal")
    for name, value, goal in rows:
        shown = value if isinstance(value, str) else f"{value:.3f}x"
        print(f"{name:58}{shown:>16}  {goal}")


if __name__ == "__main__":
    main()
