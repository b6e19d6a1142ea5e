"""Counting what each filter did (per shard, then merged) and writing `prepare_report.json` / `.md`."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wmss.io import atomic_write_json, atomic_write_text
from wmss.prepare.filters import FILTERS

REPORT_NAME = "prepare_report"
_EDGES = (0, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
_EXCERPT = 240


@dataclass
class Tally:
    """Rows read, kept and dropped (per filter), overall and per (source, category); overlap per benchmark."""

    read: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    groups: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    overlap: dict[str, int] = field(default_factory=dict)

    def _group(self, source: str, category: str) -> dict[str, Any]:
        return self.groups.setdefault((source, category), {"read": 0, "kept": 0, "dropped": {}})

    def count_read(self, source: str, category: str) -> None:
        """One row of this source and category was read."""
        self.read += 1
        self._group(source, category)["read"] += 1

    def count_kept(self, source: str, category: str) -> None:
        """One sample was written to the output."""
        self.kept += 1
        self._group(source, category)["kept"] += 1

    def count_dropped(self, source: str, category: str, reason: str, benchmark: str | None = None) -> None:
        """One sample was dropped by filter `reason` (and, for benchmark overlap, which benchmark)."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        group = self._group(source, category)["dropped"]
        group[reason] = group.get(reason, 0) + 1
        if benchmark is not None:
            self.overlap[benchmark] = self.overlap.get(benchmark, 0) + 1

    def add(self, other: Tally) -> None:
        """Add another tally's counts to this one."""
        self.read += other.read
        self.kept += other.kept
        _add_counts(self.dropped, other.dropped)
        _add_counts(self.overlap, other.overlap)
        for key, group in other.groups.items():
            mine = self._group(*key)
            mine["read"] += group["read"]
            mine["kept"] += group["kept"]
            _add_counts(mine["dropped"], group["dropped"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (groups as a sorted list)."""
        return {
            "read": self.read,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "overlap": dict(self.overlap),
            "groups": [
                {"source": source, "category": category, **group}
                for (source, category), group in sorted(self.groups.items())
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        """Inverse of `to_dict`."""
        groups = {
            (group["source"], group["category"]): {
                "read": group["read"],
                "kept": group["kept"],
                "dropped": dict(group["dropped"]),
            }
            for group in data["groups"]
        }
        return cls(data["read"], data["kept"], dict(data["dropped"]), groups, dict(data["overlap"]))


def _add_counts(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        into[key] = into.get(key, 0) + value


def length_histogram(lengths: list[int], unit: str) -> dict[str, Any]:
    """Counts of kept samples per length range (powers of two), with min/median/max."""
    bins = []
    for low, high in zip(_EDGES, (*_EDGES[1:], None), strict=True):
        count = sum(1 for length in lengths if length >= low and (high is None or length < high))
        bins.append({"from": low, "to": high, "count": count})
    summary = (
        {"min": min(lengths), "median": statistics.median(lengths), "max": max(lengths)} if lengths else {}
    )
    return {"unit": unit, "bins": bins, **summary}


def excerpt(text: str, limit: int = _EXCERPT) -> str:
    """The text on one line, cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def build_report(
    tally: Tally,
    settings: dict[str, Any],
    active: dict[str, bool],
    benchmarks: list[str],
    shards: list[dict[str, Any]],
    lengths: dict[str, Any],
    examples: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """The report as a JSON-serialisable dict; `active` says which filters were switched on."""
    counts = tally.to_dict()
    return {
        "dataset": "a-m-team/AM-DeepSeek-R1-Distilled-1.4M",
        "settings": settings,
        "read": counts["read"],
        "kept": counts["kept"],
        "dropped": counts["read"] - counts["kept"],
        "filters": {
            name: {"active": active[name], "dropped": counts["dropped"].get(name, 0), "drops": description}
            for name, description in FILTERS.items()
        },
        "benchmark_overlap": {name: counts["overlap"].get(name, 0) for name in benchmarks},
        "by_category": _by_category(counts["groups"]),
        "by_source": counts["groups"],
        "shards": shards,
        "length": lengths,
        "examples": examples,
    }


def _by_category(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for group in groups:
        mine = merged.setdefault(group["category"], {"read": 0, "kept": 0, "dropped": {}})
        mine["read"] += group["read"]
        mine["kept"] += group["kept"]
        _add_counts(mine["dropped"], group["dropped"])
    return dict(sorted(merged.items()))


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _drops(dropped: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in dropped.items() if count) or "-"


def report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    settings = report["settings"]
    lines = [
        "# wmss prepare am-r1",
        "",
        f"Input `{settings['input']}` -> output `{settings['output']}`.",
        f"Read {report['read']} rows from {len(report['shards'])} shard(s): kept {report['kept']} "
        f"({_percent(report['kept'], report['read'])}), dropped {report['dropped']}.",
        "",
        "## Filters",
        "",
        "In order; a dropped sample counts under the first filter that drops it.",
        "",
        "| filter | active | dropped | drops |",
        "|---|---|---:|---|",
    ]
    for name, entry in report["filters"].items():
        active = "yes" if entry["active"] else "no"
        lines.append(f"| {name} | {active} | {entry['dropped']} | {entry['drops']} |")
    if report["benchmark_overlap"]:
        lines += [
            "",
            f"## Benchmark overlap ({settings['ngram']}-grams)",
            "",
            "| benchmark | prompts dropped |",
        ]
        lines.append("|---|---:|")
        lines += [f"| {name} | {count} |" for name, count in report["benchmark_overlap"].items()]
    lines += ["", "## By category", "", "| category | read | kept | dropped by |", "|---|---:|---:|---|"]
    for category, group in report["by_category"].items():
        lines.append(f"| {category} | {group['read']} | {group['kept']} | {_drops(group['dropped'])} |")
    lines += [
        "",
        "## By source",
        "",
        "| source | category | read | kept | dropped by |",
        "|---|---|---:|---:|---|",
    ]
    for group in report["by_source"]:
        lines.append(
            f"| {group['source']} | {group['category']} | {group['read']} | {group['kept']} "
            f"| {_drops(group['dropped'])} |"
        )
    length = report["length"]
    lines += ["", f"## Length of kept samples ({length['unit']})", "", "| from | to | samples |"]
    lines.append("|---:|---:|---:|")
    lines += [
        f"| {b['from']} | {b['to'] if b['to'] is not None else ''} | {b['count']} |" for b in length["bins"]
    ]
    lines += ["", "## Kept examples"]
    for category, examples in report["examples"].items():
        lines += ["", f"### {category}", ""]
        for example in examples:
            lines.append(f"- idx {example['idx']} ({example['source']}): {example['prompt']}")
            lines.append(f"  -> {example['answer']}")
    return "\n".join(lines) + "\n"


def write_report(directory: Path, report: dict[str, Any]) -> Path:
    """Write `prepare_report.json` and `prepare_report.md` atomically; returns the JSON path."""
    path = atomic_write_json(directory / f"{REPORT_NAME}.json", report)
    atomic_write_text(directory / f"{REPORT_NAME}.md", report_markdown(report))
    return path
