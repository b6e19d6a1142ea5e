"""Command-line options shared by the phase commands: `--config`, `--set` and flag shortcuts to config keys."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from wmss.config import RunConfig, load_config


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--config FILE` and repeatable `--set section.key=value` to a parser."""
    parser.add_argument(
        "--config", metavar="FILE", help="YAML config (sections: model, data, sft, joint, wmss, pipeline)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one config key, e.g. --set wmss.lam=0.3 (repeatable)",
    )


def config_from_args(args: argparse.Namespace, shortcuts: Mapping[str, str]) -> RunConfig:
    """Build the config from --config, --set and flags; `shortcuts` maps argparse dests to dotted keys."""
    values = {
        key: getattr(args, dest) for dest, key in shortcuts.items() if getattr(args, dest, None) is not None
    }
    return load_config(args.config, args.overrides, values)
