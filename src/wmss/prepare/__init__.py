"""`wmss prepare`: the paper's training data from AM-DeepSeek-R1-Distilled-1.4M, verified and resumable.

`shards` finds and streams the input, `schema` reads a row into a sample, `filters` / `verify` /
`code_tests` / `decontam` / `dedup` decide what is kept, `process` filters one shard, `am_r1` runs the
shards in parallel and merges them, `report` counts and writes `prepare_report.json` / `.md`.
"""

from __future__ import annotations

from wmss.prepare.am_r1 import PrepareResult, prepare_am_r1
from wmss.prepare.filters import FILTERS
from wmss.prepare.options import PrepareOptions

__all__ = ["FILTERS", "PrepareOptions", "PrepareResult", "prepare_am_r1"]
