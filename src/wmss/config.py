"""One typed configuration for every phase: YAML file + `--set key=value` overrides, validated at load time."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wmss import defaults
from wmss.errors import ConfigError
from wmss.method.curriculum import resolve_weighting
from wmss.method.settings import CurriculumSettings, JointSettings
from wmss.validation import check_settings, check_value, setting, settings_of, valid_range

DTYPES = ("auto", "float32", "bfloat16", "float16")
DATA_FORMATS = ("auto", "chat", "prompt_completion")
OVERLONG_POLICIES = ("truncate", "drop")
LOSS_TOKENS = ("completion", "all")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class ModelConfig:
    """Which checkpoints to start from and how to load them."""

    base: str | None = None  # M0: local directory or hub id
    sft: str | None = None  # M1: skip Phase 1 when given
    tokenizer: str | None = None  # defaults to the model's own directory
    dtype: str = setting("auto", choices=DTYPES)
    trust_remote_code: bool = False
    attn_implementation: str | None = None
    # Trained weights are float32 masters (bf16 only under autocast, `sft.bf16`/`joint.bf16`). true: train them in
    # `dtype` as loaded, only right when the engine keeps float32 master weights itself (DeepSpeed ZeRO with bf16).
    low_precision_training: bool = False


@dataclass
class DataConfig:
    """Training data: where it is, how records map to prompt/completion, how long they may be."""

    train: str | None = None  # JSONL/JSON file or HF dataset name
    split: str = "train"
    format: str = setting("auto", choices=DATA_FORMATS)
    field_map: dict[str, str] = field(default_factory=dict)  # e.g. {prompt: question, completion: solution}
    system_prompt: str | None = None  # "reasoning" (the paper's prompt), literal text, or null
    max_length: int = setting(8192, valid=">= 2")
    overlong: str = setting("truncate", choices=OVERLONG_POLICIES)  # truncate (cut the completion end) | drop
    skip_bad_records: bool = False
    limit: int | None = setting(None, valid=">= 1")


@dataclass
class TrainConfig:
    """Optimisation settings of one training stage, passed to `transformers.TrainingArguments`."""

    learning_rate: float = setting(1e-5, valid="> 0")
    num_train_epochs: float = setting(2.0, valid=">= 0")  # > 0 unless max_steps is set
    max_steps: int = setting(-1, valid=">= -1")  # > 0: steps instead of epochs
    per_device_train_batch_size: int = setting(1, valid=">= 1")
    gradient_accumulation_steps: int = setting(1, valid=">= 1")
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = setting(0.0, valid=">= 0")  # int = steps, float in [0, 1) = fraction of all steps
    weight_decay: float = setting(0.0, valid=">= 0")
    max_grad_norm: float = setting(1.0, valid=">= 0")  # 0: no clipping
    optim: str = "adamw_torch"
    bf16: bool = False
    gradient_checkpointing: bool = False
    neftune_noise_alpha: float | None = setting(None, valid=">= 0")
    logging_steps: int = setting(10, valid=">= 1")
    save_steps: int = setting(500, valid=">= 1")
    save_total_limit: int | None = setting(2, valid=">= 0")  # 0 or null: keep every checkpoint
    report_to: list[str] = field(default_factory=list)  # e.g. [tensorboard]; metrics.jsonl is always written
    seed: int = setting(42, valid=">= 0")
    # Trained tokens: completion (prompt labels -100) or all (the whole rendered conversation; the WMSS authors'
    # joint stage does this: TRL's default for `messages` data, while their SFT is completion-only).
    loss_tokens: str = setting("completion", choices=LOSS_TOKENS)
    # Optimizer steps with a NaN/inf gradient skipped before training stops.
    max_nonfinite_steps: int = setting(0, valid=">= 0")
    extra: dict[str, Any] = field(default_factory=dict)  # any other TrainingArguments field


@dataclass
class WMSSParams(CurriculumSettings, JointSettings):
    """The method's settings (paper defaults): the curriculum's and the joint stage's side by side, as flat keys."""

    rounds: int = setting(1, valid=">= 1")  # K in Algorithm 1
    # How the work is batched: memory and speed, not results (no stage fingerprint holds them).
    entropy_batch_size: int = setting(8, valid=">= 1")
    loss_chunk_size: int = setting(defaults.CHUNK_SIZE, valid=">= 1")

    @property
    def curriculum(self) -> CurriculumSettings:
        """The settings every curriculum stage computes with (Phase 2)."""
        return settings_of(CurriculumSettings, self)

    @property
    def joint(self) -> JointSettings:
        """The settings every joint stage trains with (Phase 3); `RunConfig.joint` holds its training settings."""
        return settings_of(JointSettings, self)


@dataclass
class PipelineConfig:
    """Where a run lives and which optional stages it includes."""

    output_dir: str = "runs/wmss"
    sft_baseline: bool = True  # continued SFT of M1 with the joint stage's exact budget
    extract_weak: bool = False


@dataclass
class CompareConfig:
    """`wmss compare`: which methods ("arms") to train from the same M1, over which seeds and sweeps, evaluated how."""

    arms: list[str] = field(
        default_factory=lambda: ["sft_total", "sft_continued", "neftune", "undial", "wmss"]
    )
    reference: str = "sft_continued"  # every arm is compared with this one (paired, per problem)
    seeds: list[int] = field(default_factory=lambda: [0])
    shared_phase1: bool = False  # True: one Phase 1 (M1) for every seed; False: Phase 1 re-run per seed
    sweeps: list[str] = field(
        default_factory=list
    )  # e.g. ["wmss.lam=0.3,0.5", "wmss.alpha:wmss.beta=0.1:0.8,0.2:0.6"]
    sweep_arms: list[str] = field(default_factory=lambda: ["wmss"])  # arms the sweeps apply to
    evaluate_base_models: bool = True  # also evaluate M0 and M1
    eval_file: str | None = None  # held-out JSONL ({"id", "question", "answer"} or a benchmark layout)
    eval_kind: str | None = None  # grading kind of eval_file (numeric, latex, choice); inferred when null
    benchmarks: list[str] = field(default_factory=list)  # names for wmss.eval (gsm8k, svamp, ...)
    data_dir: str | None = None  # local benchmark files
    eval_limit: int | None = setting(None, valid=">= 1")  # first N problems of each benchmark
    eval_batch_size: int = setting(16, valid=">= 1")
    max_new_tokens: int = setting(512, valid=">= 1")
    n_resamples: int = setting(10000, valid=">= 1")  # bootstrap resamples for the confidence intervals
    diagnostics_samples: int = setting(
        200, valid=">= 0"
    )  # training examples for the logit statistics (0: skip)
    neftune_alpha: float = setting(5.0, valid=">= 0")  # NEFTune noise (paper: alpha = 5)
    # UNDIAL: logit subtracted from the target (reference implementation: 10).
    undial_beta: float = setting(10.0, valid=">= 0")
    undial_noise: bool = False  # UNDIAL as the WMSS paper describes it: beta scaled by Gaussian noise
    label_smoothing: float = setting(0.1, valid="[0, 1)")
    high_lr_factor: float = setting(2.0, valid="> 0")  # sft_high_lr: this multiple of the joint learning rate
    # The first N evaluation problems are also sampled sampling_n times (0: skip).
    sampling_problems: int = setting(0, valid=">= 0")
    sampling_n: int = setting(8, valid=">= 1")
    branches: bool = True  # co-trained joint arms: also evaluate the weak branch alone and both mixed
    group_field: str | None = None  # training-record field the premises break the curriculum's mass down by


@dataclass
class RunConfig:
    """The full configuration of a WMSS run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sft: TrainConfig = field(default_factory=TrainConfig)
    joint: TrainConfig = field(default_factory=TrainConfig)
    wmss: WMSSParams = field(default_factory=WMSSParams)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON serialisable)."""
        return dataclasses.asdict(self)

    def fingerprint(self, *sections: str) -> str:
        """Short stable hash of the named sections (all when none), used to detect changed settings."""
        data = self.to_dict()
        chosen = {name: data[name] for name in (sections or data)}
        return hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        """Write the configuration as YAML."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if origin is list or annotation is list:
        return isinstance(value, list)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _coerce(value: Any, annotation: Any) -> Any:
    # YAML reads "1e-5" as a string; accept it for float fields.
    if isinstance(value, str) and _type_ok(1.0, annotation) and not _type_ok(value, annotation):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, int) and not isinstance(value, bool) and annotation is float:
        return float(value)
    return value


def _build(cls: type, data: Mapping[str, Any], prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown key '{dotted}' in {source}{hint}")
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            if not isinstance(value, Mapping):
                raise ConfigError(f"'{dotted}' in {source} must be a mapping of keys, got {value!r}")
            kwargs[key] = _build(annotation, value, f"{dotted}.", source)
            continue
        value = _coerce(value, annotation)
        if not _type_ok(value, annotation):
            expected = getattr(annotation, "__name__", str(annotation).replace("typing.", ""))
            raise ConfigError(f"'{dotted}' in {source} must be of type {expected}, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Turn ['wmss.lam=0.3', ...] into a nested dict; values are parsed as YAML scalars/lists."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{item}' must look like section.key=value (e.g. wmss.lam=0.3)")
        parts = key.strip().split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}' conflicts with another override of '{part}'")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return nested


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict with errors that name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (model, data, ...)")
    return data


def _nest(values: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in values.items():
        section, _, name = key.partition(".")
        nested.setdefault(section, {})[name] = value
    return nested


def load_config(
    path: str | Path | None = None, overrides: Sequence[str] = (), values: Mapping[str, Any] | None = None
) -> RunConfig:
    """Load a config from YAML (optional), `key=value` overrides and typed dotted-key values; validate it."""
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "the configuration"
    if overrides or values:
        data = _merge(data, parse_overrides(overrides))
        data = _merge(data, _nest(values or {}))
        source = f"{source} (with overrides)"
    config = _build(RunConfig, data, "", source)
    validate(config)
    return config


def with_values(config: RunConfig, values: Mapping[str, Any], source: str = "the configuration") -> RunConfig:
    """A copy of `config` with dotted keys replaced (e.g. {"wmss.lam": 0.3}), validated like a loaded config."""
    config = _build(RunConfig, _merge(config.to_dict(), _nest(values)), "", source)
    validate(config)
    return config


def is_hub_id(value: str) -> bool:
    """True when `value` has the form of a hub id ("org/name", legacy "gpt2"), not of a local path."""
    looks_local = value.startswith((".", "/", "~")) or value.endswith(
        (".json", ".jsonl", ".yaml", ".parquet")
    )
    return not looks_local and bool(_HUB_ID.match(value))


def _check_local_or_hub(key: str, value: str | None) -> None:
    # Hub ids cannot be checked here (models are probed when they load); anything path-like must exist.
    if value is None or Path(value).expanduser().exists():
        return
    if not is_hub_id(value):
        raise ConfigError(f"'{key}': path does not exist: {value}")


def validate(config: RunConfig) -> None:
    """Check every setting against the values it declares, then the paths; ConfigError names the first bad key."""
    for section in dataclasses.fields(config):
        check_settings(getattr(config, section.name), f"{section.name}.{{}}".format)
    w = config.wmss
    if w.alpha == w.beta == w.gamma == 0:
        raise ConfigError("'wmss.alpha', 'wmss.beta' and 'wmss.gamma' are all zero: no sample could be drawn")
    w.weighting = resolve_weighting(w.weighting, "wmss.weighting")
    for section in ("sft", "joint"):
        train: TrainConfig = getattr(config, section)
        if train.max_steps < 1 and train.num_train_epochs <= 0:
            raise ConfigError(f"'{section}.num_train_epochs' must be > 0 (or set '{section}.max_steps')")
    _validate_compare(config.compare)
    _check_local_or_hub("model.base", config.model.base)
    _check_local_or_hub("model.sft", config.model.sft)
    _check_local_or_hub("model.tokenizer", config.model.tokenizer)
    _check_local_or_hub("data.train", config.data.train)


def _validate_compare(c: CompareConfig) -> None:
    # Arm names and the reference are checked by `wmss compare` itself (wmss.compare.arms), before any work.
    if not c.arms:
        raise ConfigError("'compare.arms' is empty: name at least one method (e.g. [sft_continued, wmss])")
    if not c.seeds or len(set(c.seeds)) != len(c.seeds):
        raise ConfigError(f"'compare.seeds' must be a non-empty list of distinct integers, got {c.seeds}")
    for seed in c.seeds:  # each becomes the seed of a run's training stages
        check_value("compare.seeds", seed, valid_range(TrainConfig, "seed"))
    if c.eval_file is not None and not Path(c.eval_file).expanduser().is_file():
        raise ConfigError(f"'compare.eval_file': file does not exist: {c.eval_file}")


def require(config: RunConfig, *keys: str) -> None:
    """Raise ConfigError if any dotted key (e.g. 'model.base') is unset."""
    for key in keys:
        section, name = key.split(".")
        if getattr(getattr(config, section), name) in (None, ""):
            raise ConfigError(f"'{key}' is required: set it in the config file or with --set {key}=...")
