"""Settings declared together with their valid values, so that each is checked once, where it is loaded.

`setting(0.5, valid="(0, 1]")` (or `choices=(...)`) makes a dataclass field that carries what it accepts;
`check_settings` checks every such field of an object and names the first bad one the way its caller spells it
(`'wmss.lam'` in a YAML config, `'WMSSConfig.mix_lambda'` in the TRL-style trainer). Ranges read as they print:
`"> 0"`, `">= 1"`, `"(0, 1]"`, `"[0, 1)"`; a field typed `... | None` may also be null. `check_master_weights`
is the one guard against training bf16/fp16 weights in place, for a config's dtype and a trainer's weights.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from wmss.errors import ConfigError

# Weights in these dtypes lose most small updates to rounding when an optimizer writes them in place.
LOW_PRECISION_DTYPES = ("bfloat16", "float16")
_BOUND = re.compile(r"^(>=|>|<=|<) *(-?[\d.]+)$")
_INTERVAL = re.compile(r"^([\[(]) *(-?[\d.]+) *, *(-?[\d.]+) *([\])])$")


def setting(
    default: Any = None,
    *,
    valid: str | None = None,
    choices: Sequence[str] | None = None,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field with its valid range or choices, e.g. `lam: float = setting(0.5, valid="(0, 1]")`."""
    if valid is not None:
        _parse(valid)  # a malformed range fails when the class is defined, not when a value is checked
    metadata = {"valid": valid} if valid is not None else {"choices": tuple(choices or ())}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _parse(valid: str) -> tuple[float, float, bool, bool]:
    """(low, high, low included, high included) of a range."""
    if match := _BOUND.match(valid):
        op, bound = match.group(1), float(match.group(2))
        if op.startswith(">"):
            return bound, math.inf, op == ">=", False
        return -math.inf, bound, False, op == "<="
    if match := _INTERVAL.match(valid):
        return float(match.group(2)), float(match.group(3)), match.group(1) == "[", match.group(4) == "]"
    raise ValueError(f"malformed range {valid!r}: write '> 0', '>= 1', '(0, 1]' or '[0, 1)'")


def in_range(value: float, valid: str) -> bool:
    """True when a finite number lies in the range."""
    low, high, low_in, high_in = _parse(valid)
    if not math.isfinite(value):
        return False
    above = value > low or (low_in and value == low)
    below = value < high or (high_in and value == high)
    return above and below


def valid_range(cls: Any, name: str) -> str | None:
    """The range a dataclass declares for one of its fields (None when it declares none)."""
    return next(f.metadata.get("valid") for f in dataclasses.fields(cls) if f.name == name)


def check_value(key: str, value: Any, valid: str, nullable: bool = False) -> None:
    """Raise ConfigError naming `key` when `value` is not a number in the range (or null, when allowed)."""
    if value is None and nullable:
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool) and in_range(value, valid):
        return
    where = valid if valid[0] in "<>" else f"in {valid}"
    raise ConfigError(f"'{key}' must be {where}{' or null' if nullable else ''}, got {value}")


def check_choice(key: str, value: Any, choices: Sequence[str]) -> None:
    """Raise ConfigError naming `key` when `value` is not one of `choices`."""
    if value not in choices:
        raise ConfigError(f"'{key}' must be one of {', '.join(choices)}, got {value!r}")


def check_settings(obj: Any, name: Callable[[str], str] = str) -> None:
    """Check every field of a dataclass that declares its values; the error names the field as `name(field)`."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if "valid" in f.metadata:
            nullable = type(None) in typing.get_args(hints[f.name])  # `int | None`: null is a valid value
            check_value(name(f.name), value, f.metadata["valid"], nullable=nullable)
        elif "choices" in f.metadata:
            check_choice(name(f.name), value, f.metadata["choices"])


def settings_of(cls: type, values: Any) -> Any:
    """An instance of the settings dataclass `cls` holding the same-named fields of `values`, taken whole."""
    return cls(**{f.name: getattr(values, f.name) for f in dataclasses.fields(cls)})


def check_master_weights(
    dtypes: Iterable[Any], learning_rate: float, allowed: bool, where: str, fix: str
) -> None:
    """Refuse to let a plain optimizer update bf16/fp16 weights in place (the one guard), unless `allowed`."""
    low = sorted({str(d) for d in dtypes if str(d).removeprefix("torch.") in LOW_PRECISION_DTYPES})
    if not low or allowed:
        return
    raise ConfigError(
        f"{where} would update {', '.join(low)} weights in place: at lr {learning_rate:g} most updates round "
        f"away and training silently does little. {fix}"
    )
