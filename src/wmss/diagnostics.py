"""The logit diagnostics as a library: Tables 2/6 statistics, the gradient probe and the token-level premises.

They are computed in `wmss.compare.diagnostics` (the comparison and `wmss regime` are their main users); this module
is their public address, so `from wmss.diagnostics import mixing_stats` works as the README documents.
"""

from __future__ import annotations

from wmss.compare.diagnostics import MIXING_STATS, STATS, gradient_probe, logit_stats, mixing_stats

__all__ = ["MIXING_STATS", "STATS", "gradient_probe", "logit_stats", "mixing_stats"]
