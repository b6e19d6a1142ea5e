"""WMSSTrainer/WMSSConfig: WMSS joint training (Eq. 11-12) shaped like TRL's GKDTrainer/GKDConfig.

The one joint-training code path: `wmss joint`, `wmss run` and `wmss compare` train through this trainer too.
In full mode the trained module is a `JointModel` (strong + weak as one `nn.Module`), because accelerate
prepares a single model under DDP, DeepSpeed ZeRO-3 and FSDP: that is what lets them shard, synchronise and
optimise a co-trained weak model. In LoRA mode it is one PEFT model with a `strong` and a `weak` adapter.
Saved layout (checkpoints and `save_model`): the strong model as a plain HF checkpoint at the folder's root,
the weak one in `weak/` (PEFT's own layout for a second adapter).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, PreTrainedModel, Trainer
from trl import SFTConfig, SFTTrainer

from wmss import defaults
from wmss.errors import ConfigError, ModelError
from wmss.io import atomic_write_json
from wmss.method.curriculum import build_curriculum, resolve_weighting
from wmss.method.entropy import dataset_entropies
from wmss.method.joint_model import JOINT_MARKER, JointModel
from wmss.method.lora import STRONG, WEAK, adapter_grad_norms, adapter_logits, add_wmss_adapters, use_adapter
from wmss.method.mixed_loss import mixed_logit_cross_entropy
from wmss.method.settings import CurriculumSettings, JointSettings
from wmss.validation import check_master_weights, check_settings, check_value

logger = logging.getLogger(__name__)

# WMSSConfig keeps TRL-style names; these are the settings' own names for them (the one place the two meet).
JOINT_FIELDS = {"lam": "mix_lambda", "weak_trainable": "train_weak_model", "weak_control": "weak_control"}
CURRICULUM_FIELDS = {
    "alpha": "curriculum_alpha",
    "beta": "curriculum_beta",
    "gamma": "curriculum_gamma",
    "sample_multiplier": "sample_multiplier",
    "weighting": "curriculum_weighting",
    "seed": "seed",
}


@dataclass
class WMSSConfig(SFTConfig):
    """SFTConfig plus the WMSS joint-training settings."""

    mix_lambda: float = field(
        default=defaults.LAMBDA,
        metadata={"help": "λ in z_mix = λ·z_strong + (1-λ)·z_weak (paper default 0.5); in (0, 1]."},
    )
    train_weak_model: bool = field(
        default=True,
        metadata={"help": "Co-train the weak model with the mixed loss (the paper); False keeps it frozen."},
    )
    weak_model_init_kwargs: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "Keyword arguments for AutoModelForCausalLM.from_pretrained when weak_model is a path."
        },
    )
    loss_chunk_size: int = field(
        default=defaults.CHUNK_SIZE,
        metadata={"help": "Trained positions per chunk of the mixed-logit loss."},
    )
    weak_control: str = field(
        default="none",
        metadata={
            "help": "Weak-logit control: 'none' (the weak model), 'uniform' (constant weak logits: no weak "
            "model, SFT at temperature 1/λ) or 'shuffled' (weak logits permuted over the vocabulary)."
        },
    )

    curriculum: bool = field(
        default=False,
        metadata={
            "help": "Phase 2 inside the trainer: score each sample's mean completion entropy under the weak and "
            "the strong model (or use the entropies given to the trainer), weight samples by Eq. 10 and train "
            "on a weighted draw with replacement. `wmss run` does this as separate, resumable stages."
        },
    )
    curriculum_alpha: float = field(default=defaults.ALPHA, metadata={"help": "Eq. 10 α (weak entropy)."})
    curriculum_beta: float = field(default=defaults.BETA, metadata={"help": "Eq. 10 β (entropy reduced)."})
    curriculum_gamma: float = field(default=defaults.GAMMA, metadata={"help": "Eq. 10 γ (entropy raised)."})
    sample_multiplier: float = field(
        default=1.0, metadata={"help": "Curriculum draws = round(sample_multiplier · dataset size)."}
    )
    curriculum_weighting: str = field(
        default="authors_code",
        metadata={
            "help": "Reading of Eq. 10: 'authors_code' (each term normalised by its own sum, as the authors' "
            "code), 'paper_eq10' (as printed: one normalisation) or 'brownboost'. 'paper' is the old name of "
            "authors_code."
        },
    )

    low_precision_training: bool = field(
        default=False,
        metadata={
            "help": "Allow bf16/fp16 trainable weights (only when the engine keeps float32 master weights itself, "
            "e.g. DeepSpeed); otherwise load float32 weights and train with bf16=True (autocast)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        # The settings' own declarations of what they accept, under this class's names.
        self.curriculum_weighting = resolve_weighting(
            self.curriculum_weighting, "WMSSConfig.curriculum_weighting"
        )
        check_settings(self.joint_settings, lambda name: f"WMSSConfig.{JOINT_FIELDS[name]}")
        check_settings(self.curriculum_settings, lambda name: f"WMSSConfig.{CURRICULUM_FIELDS[name]}")
        if self.curriculum_alpha == self.curriculum_beta == self.curriculum_gamma == 0:
            raise ConfigError("WMSSConfig.curriculum_alpha/beta/gamma are all 0: no sample could be drawn")
        check_value("WMSSConfig.loss_chunk_size", self.loss_chunk_size, ">= 1")

    @property
    def joint_settings(self) -> JointSettings:
        """The joint-training settings held here, under their own names."""
        return JointSettings(**{name: getattr(self, ours) for name, ours in JOINT_FIELDS.items()})

    @property
    def curriculum_settings(self) -> CurriculumSettings:
        """The curriculum settings held here, under their own names."""
        return CurriculumSettings(**{name: getattr(self, ours) for name, ours in CURRICULUM_FIELDS.items()})

    @staticmethod
    def arguments_for(joint: JointSettings) -> dict[str, Any]:
        """WMSSConfig keyword arguments that hold a joint stage's settings."""
        return {JOINT_FIELDS[name]: value for name, value in dataclasses.asdict(joint).items()}


def _branch_state(state_dict: dict[str, torch.Tensor], branch: str) -> dict[str, torch.Tensor]:
    prefix = f"{branch}."
    return {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}


def load_branch_weights(model: PreTrainedModel, folder: Path) -> None:
    """Load a `save_pretrained` folder into an existing model, strictly (tied weights included)."""
    # from_pretrained undoes the key conversions transformers applies on save (MoE, multimodal models).
    parameter = next(model.parameters())
    loaded = type(model).from_pretrained(str(folder), dtype=parameter.dtype)
    model.load_state_dict(loaded.state_dict())


class WMSSTrainer(SFTTrainer):
    """SFTTrainer whose loss is the mixed-logit CE of the strong model and a (co-trained) weak model."""

    def __init__(
        self,
        model: PreTrainedModel | str,
        weak_model: PreTrainedModel | str | None = None,
        args: WMSSConfig | None = None,
        peft_config: LoraConfig | None = None,
        entropies: tuple[Sequence[float], Sequence[float]] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(args, WMSSConfig):
            raise ConfigError("WMSSTrainer needs args=WMSSConfig(...)")
        self.lora_mode = peft_config is not None
        self._branch_norms: dict[str, float] = {}
        self.curriculum_stats: dict[str, Any] | None = None
        self.full_train_dataset: Dataset | None = None  # the training set before the curriculum's draw
        self._build(model, weak_model, args, peft_config, kwargs)
        check_master_weights(
            (p.dtype for p in self.model.parameters() if p.requires_grad),
            self.args.learning_rate,
            allowed=self.args.low_precision_training or self.is_deepspeed_enabled,
            where="WMSSTrainer",
            fix="Load the models in float32 (dtype=torch.float32) and set WMSSConfig(bf16=True) for autocast, or "
            "set low_precision_training=True if your engine keeps float32 master weights",
        )
        if args.curriculum:
            self._apply_curriculum(entropies)
        elif entropies is not None:
            raise ConfigError("entropies were given but WMSSConfig.curriculum is False")

    def _build(
        self,
        model: PreTrainedModel | str,
        weak_model: PreTrainedModel | str | None,
        args: WMSSConfig,
        peft_config: LoraConfig | None,
        kwargs: dict[str, Any],
    ) -> None:
        if self.lora_mode:
            # LoRA mode: the frozen base is M0 (the weak branch); `weak_model` must not be given.
            if weak_model is not None or args.weak_control != "none":
                raise ConfigError("with peft_config the weak branch is the base model: pass weak_model=None")
            if isinstance(model, str):
                model = AutoModelForCausalLM.from_pretrained(model, **(args.model_init_kwargs or {}))
            super().__init__(model=add_wmss_adapters(model, peft_config), args=args, **kwargs)
            return
        if weak_model is None and args.weak_control != "uniform":
            raise ConfigError("WMSSTrainer needs weak_model (a model or a path) unless peft_config is given")
        super().__init__(model=model, args=args, **kwargs)
        if isinstance(weak_model, str):
            weak_model = AutoModelForCausalLM.from_pretrained(
                weak_model, **(args.weak_model_init_kwargs or {})
            )
        if weak_model is not None and not self.is_deepspeed_enabled and not self.is_fsdp_enabled:
            weak_model = weak_model.to(self.args.device)
        # SFTTrainer set up data, collator and tags for the strong model; from here on the trained module is
        # the joint one, so the optimizer, accelerate's prepare() and checkpoints cover both branches.
        self.model = self.model_wrapped = JointModel(
            self.model,
            weak_model,
            **dataclasses.asdict(args.joint_settings),
            chunk_size=args.loss_chunk_size,
            control_seed=args.seed,
        )

    def _apply_curriculum(self, entropies: tuple[Sequence[float], Sequence[float]] | None) -> None:
        """Replace the training set by its Eq. 10-weighted draw (with replacement)."""
        dataset = self.full_train_dataset = self.train_dataset
        if entropies is None:
            if not self.lora_mode and self.joint.weak is None:
                raise ConfigError("the curriculum needs a weak model: weak_control='uniform' holds none")
            entropies = (self.sample_entropies(WEAK), self.sample_entropies(STRONG))
        h_weak, h_strong = entropies
        if not len(h_weak) == len(h_strong) == len(dataset):
            raise ConfigError(
                f"entropies must give one value per training sample: got {len(h_weak)} and {len(h_strong)} "
                f"for {len(dataset)} samples"
            )
        curriculum = build_curriculum(h_weak, h_strong, self.args.curriculum_settings)
        self.curriculum_stats = curriculum.stats
        self.train_dataset = dataset.select(curriculum.draws.tolist())
        logger.info(
            "curriculum: %d draws of %d samples, effective sample size %.1f",
            len(curriculum.draws),
            len(dataset),
            curriculum.stats["effective_sample_size"],
        )

    def sample_entropies(self, branch: str, dataset: Dataset | None = None) -> list[float]:
        """Mean completion entropy (Eq. 3/8) of each sample (default: the training set) under one branch."""
        dataset = self._remove_unused_columns(
            self.train_dataset if dataset is None else dataset, description="curriculum"
        )
        unwrapped = self.accelerator.unwrap_model(self.model)
        if self.lora_mode:
            use_adapter(unwrapped, branch)
        model = unwrapped if self.lora_mode else getattr(unwrapped, branch)
        scores = dataset_entropies(
            model,
            dataset,
            self._completion_batch,
            batch_size=self.args.per_device_eval_batch_size,
            chunk_size=self.args.loss_chunk_size,
            state=self.accelerator.state,
        )
        return [entropy for entropy, _ in scores]

    def _completion_batch(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """The collator's batch with labels -100 outside the completion (what the loss trains)."""
        batch = self.data_collator(rows)
        if "completion_mask" in batch:
            labels = batch["labels"].masked_fill(batch.pop("completion_mask") == 0, defaults.IGNORE_INDEX)
            batch["labels"] = labels
        return batch

    @property
    def joint(self) -> JointModel:
        """The joint module (full mode)."""
        return self.accelerator.unwrap_model(self.model, keep_torch_compile=False)

    @property
    def weak_model(self) -> PreTrainedModel | None:
        """The weak model (None in LoRA mode, where it is the base with the weak adapter, and under 'uniform')."""
        return None if self.lora_mode else self.joint.weak

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """Mixed-logit cross-entropy on completion tokens (labels -100 elsewhere)."""
        if "completion_mask" in inputs:
            labels = inputs["labels"].masked_fill(inputs["completion_mask"] == 0, defaults.IGNORE_INDEX)
            inputs = {key: value for key, value in inputs.items() if key != "completion_mask"} | {
                "labels": labels
            }
        if not self.lora_mode:
            # The joint module returns the loss itself; Trainer's compute_loss adds the cross-device token
            # scaling. SFTTrainer's own metrics read full logits, which the joint module never materialises.
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
        loss = self._lora_loss(model, inputs, inputs["labels"], num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # num_items_in_batch counts every process's tokens
        return (loss, {"loss": loss}) if return_outputs else loss

    def _lora_loss(
        self, model: torch.nn.Module, inputs: dict[str, Any], labels: torch.Tensor, num_items_in_batch: Any
    ) -> torch.Tensor:
        unwrapped = self.accelerator.unwrap_model(model)
        ids, mask = inputs["input_ids"], inputs.get("attention_mask")
        strong_logits = adapter_logits(unwrapped, STRONG, ids, mask)
        weak_logits = adapter_logits(unwrapped, WEAK, ids, mask)
        n_trained = max(int(labels[:, 1:].ne(defaults.IGNORE_INDEX).sum()), 1)
        denominator = num_items_in_batch if num_items_in_batch is not None else n_trained
        loss = mixed_logit_cross_entropy(strong_logits, weak_logits, labels, lam=self.args.joint_settings.lam)
        return loss * n_trained / denominator

    def _clip_grad_norm(self, model: torch.nn.Module) -> Any:
        # Per-branch norms are measured before clipping, on the steps that will be logged.
        step = self.state.global_step + 1
        sharded = self.is_deepspeed_enabled or self.is_fsdp_enabled  # gradients are not whole tensors there
        if not sharded and (step == 1 or step % max(int(self.args.logging_steps), 1) == 0):
            unwrapped = self.accelerator.unwrap_model(model, keep_torch_compile=False)
            norms = adapter_grad_norms(unwrapped) if self.lora_mode else unwrapped.branch_grad_norms()
            self._branch_norms.update({f"grad_norm_{k}": v for k, v in norms.items()})
        return super()._clip_grad_norm(model)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the latest per-branch gradient norms to training logs."""
        if "loss" in logs and self._branch_norms:
            logs = {**logs, **self._branch_norms}
            self._branch_norms.clear()
        super().log(logs, start_time)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if self.lora_mode:
            super()._save(output_dir, state_dict)
            return
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        if state_dict is not None and not state_dict:
            # ZeRO-3 hands over an empty dict when it cannot gather the weights.
            raise ConfigError(
                "DeepSpeed ZeRO-3 did not gather the weights for saving: set `zero3_save_16bit_model: true` "
                "(stage3_gather_16bit_weights_on_model_save) in the DeepSpeed/accelerate config"
            )
        joint = self.joint
        # Strong first: save_pretrained clears stale weight files of its own folder, never of `weak/`.
        for name, branch, folder in (("strong", joint.strong, ""), ("weak", joint.weak, WEAK)):
            if branch is None:
                continue
            folder = os.path.join(output_dir, folder)
            sub_state = _branch_state(state_dict, name) if state_dict is not None else None
            branch.save_pretrained(folder, state_dict=sub_state, safe_serialization=True)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(folder)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))
        branches = {"strong": ".", **({"weak": WEAK} if joint.weak is not None else {})}
        atomic_write_json(
            Path(output_dir) / JOINT_MARKER, {"branches": branches, "mix_lambda": self.args.mix_lambda}
        )

    def _load_from_checkpoint(
        self, resume_from_checkpoint: str, model: torch.nn.Module | None = None
    ) -> None:
        if self.lora_mode or self.is_fsdp_enabled:
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            return
        joint = self.accelerator.unwrap_model(model if model is not None else self.model)
        folder = Path(resume_from_checkpoint)
        logger.info("loading joint checkpoint from %s", folder)
        try:
            load_branch_weights(joint.strong, folder)
            if joint.weak is not None:
                load_branch_weights(joint.weak, folder / WEAK)
        except (OSError, RuntimeError, ValueError) as exc:
            raise ModelError(
                f"cannot resume from {folder}: {exc}. Delete that checkpoint directory to resume from the one "
                "before it (or the whole checkpoints/ directory to start the stage over)"
            ) from None

    def save_weak_model(self, output_dir: str) -> None:
        """Save the (co-trained) weak model; the strong one is the trained model saved by save_model."""
        if self.lora_mode:
            self.accelerator.unwrap_model(self.model).save_pretrained(output_dir, selected_adapters=[WEAK])
            return
        if self.weak_model is None:
            raise ConfigError("this trainer holds no weak model (weak_control='uniform')")
        self.weak_model.save_pretrained(output_dir)
