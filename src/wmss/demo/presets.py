"""Size presets of the offline demo: every knob that trades run time against how much the demo shows.

The design follows the paper's regime, fixed before any arm was compared:
- M0 is a base model in the paper's sense: pretraining on arithmetic text plus worked solutions of EASIER problems
  (1-2 steps, no distractors) in the chat and <think>/<answer> format, so it knows the format, then mid-training
  on such worked solutions with a completion-only loss, so it has part of the skill. Like the paper's Qwen3-Base,
  it comes pretrained: the default's M0 ships with wmss (`make demo-m0` rebuilds it).
- How long M0 is mid-trained was fixed by a rule written down before the run that applied it: the first multiple
  of 250 steps at which M0 solves at least 20% (the middle of the 10-40% "clear minority" band) of the first 300
  held-out problems, else 3,000. A constant rate after warmup makes that checkpoint the recipe's own result.
- The task is heterogeneous (1-4 steps, up to two distractor sentences), so per-sample entropies differ and the
  curriculum (Eq. 10) has something to weigh.
- M1 is saturated, as the paper's argument assumes: Phase 1 runs for the first epoch count of a fixed grid at
  which one more epoch of plain SFT gains under 2 points, not significantly, on a validation split disjoint from
  the held-out test (wmss.demo.phase1). Phase 3 (joint training and every continued arm) gets the paper's one
  epoch at Phase 1's learning-rate schedule; `sft_total` gets Phase 1 + Phase 3 epochs from M0.
- The arms are Table 1's (`sft_total`, `sft_continued`, WMSS), Table 3's split of the curriculum from the joint
  loss (`sft_continued_plain`, `joint_plain`), and the cheapest reviewer control (`control_uniform`).
"""

from __future__ import annotations

from dataclasses import dataclass

# Table 1 (SFT for the total budget, continued SFT, WMSS), Table 3's ablation and the cheapest control.
DEMO_ARMS = ("sft_total", "sft_continued", "sft_continued_plain", "wmss", "joint_plain", "control_uniform")


@dataclass(frozen=True)
class DemoPreset:
    """All sizes of one demo run: task, base model, pretraining, training schedule and evaluation."""

    n_train: int
    n_test: int
    min_steps: int = 1
    max_steps: int = 4
    max_start: int = 60
    max_operand: int = 30
    distractor_prob: float = 0.3  # chance of each of two irrelevant sentences
    # Base model M0 (Qwen3 architecture, randomly initialised, char-level vocabulary).
    hidden_size: int = 128
    intermediate_size: int = 512
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    max_position_embeddings: int = 320
    # Pretraining M0 (plain causal LM on packed blocks): arithmetic text and worked easier problems. A constant
    # rate after a fixed warmup makes the first k steps of a longer run the k-step recipe, so the step count could
    # be read off one run's accuracy curve (see PRETRAIN_STEPS_RULE).
    corpus_size: int = 1500
    worked_fraction: float = 0.5  # share of corpus documents that are chat-formatted worked solutions
    worked_max_steps: int = 2
    pretrain_steps: int = 200
    pretrain_warmup_steps: int = 50
    pretrain_block_size: int = 128
    pretrain_batch_size: int = 16
    pretrain_learning_rate: float = 3e-3
    # Mid-training M0 (completion-only loss) on worked solutions of easier problems, as base models are mid-trained
    # on instruction data: pretraining alone taught the format but never to copy the question's numbers.
    midtrain_problems: int = 20000
    midtrain_steps: int = 0
    midtrain_learning_rate: float = 1e-3
    # Phase 1 (SFT M0 -> M1) runs to saturation: `phase1_epochs` is the first of `phase1_epoch_grid` at which the
    # saturation probe holds on the validation split (see wmss.demo.phase1). Phase 3 (joint training, and every
    # continued arm) gets the paper's one epoch; both use the same learning-rate schedule.
    phase1_epochs: float = 3.0
    phase1_epoch_grid: tuple[float, ...] = (4.0, 8.0, 16.0, 32.0)
    epochs: float = 1.0
    learning_rate: float = 1e-3
    batch_size: int = 16
    warmup_ratio: float = 0.05
    entropy_batch_size: int = 64
    n_validation: int = 500  # model selection only, disjoint from the training and held-out splits
    # Evaluation: greedy decoding of the held-out split; a 4-step solution is under 90 characters.
    eval_batch_size: int = 200
    max_new_tokens: int = 100
    diagnostics_samples: int = 200
    # What a gain is made of: n samples per problem at the paper's temperature / top-p on the first problems.
    sampling_problems: int = 200
    sampling_n: int = 8


PRESETS: dict[str, DemoPreset] = {
    # Plumbing check only: every stage runs, on sizes too small to learn the task.
    "smoke": DemoPreset(
        n_train=32,
        n_test=16,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        corpus_size=32,
        pretrain_steps=4,
        pretrain_warmup_steps=1,
        midtrain_problems=32,
        midtrain_steps=2,
        epochs=1.0,
        n_validation=16,
        sampling_problems=8,
        sampling_n=2,
        eval_batch_size=16,
        max_new_tokens=40,
        diagnostics_samples=8,
    ),
    # M0 and Phase 1 by the rules of wmss.demo.m0_search and wmss.demo.phase1 (`wmss demo --m0-search`,
    # 2026-12-05; validation split and training data only). Mid-training checkpoints from 1,750 steps down, each with
    # its own saturated M1 (Phase 1 epochs, M1's validation accuracy) and the weak-model gates (ΔH < 0 on samples,
    # P_mix(y) < P_s(y) on tokens, weak margin <= strong on tokens; thresholds 0.8 / 0.5 / 0.5):
    #   1,750 steps (M0 20.2%): 8 epochs, 61.0%; 0.938 / 0.413 / 0.640  fails
    #   1,500 steps (M0 20.8%): 8 epochs, 60.8%; 0.921 / 0.445 / 0.694  fails
    #   1,250 steps (M0 18.4%): 8 epochs, 62.4%; 0.985 / 0.481 / 0.620  fails
    #   1,000 steps (M0 12.8%): 4 epochs, 35.6%; 0.729 / 0.462 / 0.599  fails
    #     750 steps (M0  7.2%): 4 epochs, 17.4%; 0.728 / 0.411 / 0.529  fails
    #     500 steps (M0  3.4%): 4 epochs, 10.6%; 0.596 / 0.435 / 0.536  fails
    #     250 steps (M0  3.2%): 4 epochs,  7.8%; 0.826 / 0.635 / 0.676  holds: the pick
    # At 4 epochs, M1 (7.8%) and one more epoch of plain SFT (8.0%) differ by +0.2 points [-2.4, +3.0].
    "default": DemoPreset(n_train=800, n_test=1000, midtrain_steps=250, phase1_epochs=4.0),
}
