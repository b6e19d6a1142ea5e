"""Input shards: finding them (a file, a directory of shards, or a hub dataset) and streaming their rows.

The dataset ships as one JSON-lines file per response source, compressed with zstd (`am_0.5M.jsonl.zst`,
`am_0.9M.jsonl.zst`, per its card); the hub also offers them as configs of the same names. Each file (or hub
config) is one shard: the unit of parallel work and of resuming. Rows are streamed, never loaded whole.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from wmss.errors import DataError
from wmss.io import JsonRow, json_line_rows

SUFFIXES = (".jsonl", ".jsonl.zst", ".jsonl.gz", ".parquet")
HUB_PREFIX = "hub:"
HUB_CONFIGS = ("am_0.5M", "am_0.9M")
# The authors' reader allows a 2 GiB window, as frames written in zstd's long mode need; the decoder's
# default limit (128 MiB) would refuse them ("frame requires too much memory").
_ZSTD_MAX_WINDOW = 1 << 31
_PARQUET_BATCH = 256


@dataclass(frozen=True)
class Shard:
    """One unit of input: a local file or one config of a hub dataset."""

    name: str  # unique and file-name safe: names the shard's result in the work directory
    label: str  # how messages locate a row: "data/am_0.9M.jsonl.zst line 7"
    path: Path | None = None
    hub_id: str | None = None
    hub_config: str | None = None

    def identity(self) -> dict[str, Any]:
        """What must not change for a finished result of this shard to be reused."""
        if self.path is None:
            return {"hub_id": self.hub_id, "hub_config": self.hub_config}
        stat = self.path.stat()
        return {"path": str(self.path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((suffix for suffix in SUFFIXES if name.endswith(suffix)), None)


def _safe_name(relative: Path) -> str:
    return "__".join(relative.parts)


def discover_shards(source: str, hub_configs: tuple[str, ...] = HUB_CONFIGS) -> list[Shard]:
    """The shards of `source`: a shard file, a directory searched for shards, or `hub:<dataset id>`."""
    if source.startswith(HUB_PREFIX):
        hub_id = source[len(HUB_PREFIX) :]
        return [
            Shard(f"hub__{config}", f"{source}:{config}", hub_id=hub_id, hub_config=config)
            for config in hub_configs
        ]
    path = Path(source).expanduser()
    if path.is_file():
        if _suffix(path) is None:
            raise DataError(f"{source}: not a dataset shard; expected a file ending in {', '.join(SUFFIXES)}")
        return [Shard(path.name, source, path=path)]
    if path.is_dir():
        files = sorted(
            file
            for file in path.rglob("*")
            if file.is_file()
            and _suffix(file) is not None
            and not any(part.startswith(".") for part in file.relative_to(path).parts)
        )
        if not files:
            raise DataError(f"{source}: no shard files ({', '.join(SUFFIXES)}) in this directory")
        return [
            Shard(_safe_name(file.relative_to(path)), str(Path(source) / file.relative_to(path)), path=file)
            for file in files
        ]
    raise DataError(
        f"input not found: {source} (give a shard file, a directory of shards, or hub:<dataset id> online)"
    )


def _open_lines(path: Path) -> IO[bytes]:
    suffix = _suffix(path)
    if suffix == ".jsonl.zst":
        import zstandard

        handle = path.open("rb")
        reader = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW).stream_reader(
            handle, read_across_frames=True, closefd=True
        )
        return io.BufferedReader(reader)
    if suffix == ".jsonl.gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def _line_rows(path: Path, label: str) -> Iterator[JsonRow]:
    with _open_lines(path) as handle:
        yield from json_line_rows(handle, label)


def _parquet_rows(path: Path, label: str) -> Iterator[JsonRow]:
    import pyarrow.parquet as pq

    position = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=_PARQUET_BATCH):
        for value in batch.to_pylist():
            yield JsonRow(position, f"{label} row {position}", f"{label}[{position}]", value)
            position += 1


def _hub_rows(shard: Shard) -> Iterator[JsonRow]:
    import datasets

    # The nested `info` objects differ between user and assistant turns; without explicit features the JSON
    # builder cannot infer one schema for them. Field names as on the dataset card.
    info = {
        key: datasets.Value("string")
        for key in ("source", "reference_answer", "test_case", "think_content", "answer_content")
    }
    features = datasets.Features(
        {"messages": [{"role": datasets.Value("string"), "content": datasets.Value("string"), "info": info}]}
    )
    try:
        rows = datasets.load_dataset(
            shard.hub_id, shard.hub_config, split="train", streaming=True, features=features
        )
        for position, value in enumerate(rows):
            yield JsonRow(
                position, f"{shard.label} row {position}", f"{shard.label}[{position}]", dict(value)
            )
    except Exception as exc:  # the hub client raises many unrelated types when offline
        raise DataError(f"cannot stream {shard.label}: {type(exc).__name__}: {exc}") from None


def iter_rows(shard: Shard) -> Iterator[JsonRow]:
    """Yield the rows of a shard in order; a file that cannot be read or decompressed raises DataError."""
    if shard.path is None:
        yield from _hub_rows(shard)
        return
    read = _parquet_rows if _suffix(shard.path) == ".parquet" else _line_rows
    try:
        yield from read(shard.path, shard.label)
    except DataError:
        raise
    except Exception as exc:  # zstd, gzip and parquet readers each raise their own error types
        raise DataError(f"cannot read {shard.label}: {type(exc).__name__}: {exc}") from None
