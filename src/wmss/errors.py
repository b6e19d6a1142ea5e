"""User-facing errors: the CLI prints these as one clear message instead of a traceback."""

from __future__ import annotations


class WMSSError(Exception):
    """Base class for mistakes a user can fix (bad config, bad data, incompatible models)."""


class ConfigError(WMSSError):
    """A configuration key or value is invalid; the message names the key."""


class DataError(WMSSError):
    """A data record or file is invalid; the message names the file, line and field."""


class ModelError(WMSSError):
    """Models cannot be loaded or combined (e.g. vocabulary mismatch)."""
