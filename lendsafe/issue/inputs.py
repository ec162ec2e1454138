"""The applications a batch reads: a CSV file, a Parquet file or a folder of Parquet parts, whole (one
process) or cut into partitions a worker reads on its own (a cluster).

Every source gives the rows ``lendsafe.notice.incomplete.read_csv`` gives for a CSV: ``CsvRow`` objects
numbered by ``data_row`` (1 = the first record after the header; in a CSV a blank line counts as a record),
each triaged or holding its field-named error. A Parquet value is read as the text a CSV would hold
(null and NaN blank, booleans ``true``/``false``, floats in their shortest form, dates ISO), so the same
applications give the same decisions whichever format carries them. Parquet parts are read in natural
order of their names (``part.2`` before ``part.10``) and numbered on from one part to the next.

A partition is a small description (file, where it starts, how many records, the header, the file's size
and modification time): the client scans the input once, a worker reads only its own partition from the
same path and refuses an input that changed since the scan.
"""
from __future__ import annotations

import csv
import datetime as dt
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator

from lendsafe.decide.specs import load_spec
from lendsafe.errors import ArtifactNotFoundError, ConfigurationError, InvalidApplicationError
from lendsafe.notice.incomplete import MAX_FIELD_CHARS, CsvRow, check_header, read_row, read_csv
from lendsafe.redaction import printable

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
CSV_SUFFIXES = (".csv", ".txt")


# ----------------------------------------------------------------------------- Parquet values as CSV text

def _float_text(value: float) -> str:
    return "" if math.isnan(value) else repr(value)


# The text a CSV cell would hold for each Python type pyarrow gives (checked in order: bool before int).
CELL_TEXT: tuple[tuple[type, Callable[[Any], str]], ...] = (
    (type(None), lambda _: ""),
    (str, str),
    (bool, lambda v: "true" if v else "false"),
    (int, str),
    (float, _float_text),
    (Decimal, str),
    (dt.datetime, lambda v: v.isoformat()),
    (dt.date, lambda v: v.isoformat()),
    (bytes, lambda v: v.decode("utf-8", "surrogateescape")),
)


def cell_text(value: Any) -> str:
    """A Parquet value as the text of a CSV cell."""
    for kind, text in CELL_TEXT:
        if isinstance(value, kind):
            return text(value)
    return str(value)


# ----------------------------------------------------------------------------- partitions

@dataclass(frozen=True)
class Partition:
    """One piece of the input a worker reads on its own: `records` records of `path` from `start` (a CSV
    position or a Parquet row), the first numbered `first_row`; `rows` of them are applications (a CSV's
    blank lines are records, not applications)."""

    kind: str                       # "csv" | "parquet"
    path: str
    start: int
    records: int
    first_row: int
    rows: int
    header: tuple[str, ...]
    fingerprint: tuple[int, int]    # the file's size and modification time (ns) when it was scanned

    @property
    def name(self) -> str:
        """``rows 1-250``: how the partition is named to an operator."""
        return f"rows {self.first_row}-{self.first_row + max(self.records, 1) - 1}"


def read_partition(partition: Partition, dataset: str) -> list[CsvRow]:
    """The rows of one partition (on a worker); ConfigurationError when the file changed since the scan."""
    path = Path(partition.path)
    if not path.is_file():
        raise ConfigurationError(f"input {printable(path)} cannot be read on this machine: INPUT must be on a "
                                 "filesystem every worker mounts at the same path")
    if _fingerprint(path) != partition.fingerprint:
        raise ConfigurationError(f"input {printable(path)} changed since the batch started; run the command again")
    return PARTITION_READERS[partition.kind](partition, dataset)


def _fingerprint(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _row_reader(header: tuple[str, ...], dataset: str) -> Callable[[int, list[str]], CsvRow]:
    """What ``read_csv`` does with one record: a triaged row or its field-named error."""
    spec = load_spec(dataset)
    strict = any(not f.optional and f.name not in header for f in spec.input_fields)
    return lambda number, cells: read_row(number, list(header), cells, spec, strict)


# ----------------------------------------------------------------------------- CSV

def _csv_handle(path: Path):
    csv.field_size_limit(MAX_FIELD_CHARS)
    return open(path, newline="", encoding="utf-8-sig", errors="surrogateescape")


def _lines(handle) -> Iterator[str]:
    """The handle's lines by readline (so that ``tell`` stays usable between records)."""
    return iter(handle.readline, "")


def _csv_file(path: Path) -> None:
    if not path.is_file():
        raise ArtifactNotFoundError(f"applications CSV not found: expected a file at {printable(path)}")


def scan_csv(path: Path, rows_per_partition: int) -> list[Partition]:
    """Partitions of `rows_per_partition` records of a CSV, found in one pass (the file refused as
    ``read_csv`` refuses it)."""
    _csv_file(path)
    fingerprint, shown = _fingerprint(path), printable(path)
    cuts: list[tuple[int, int, int, int]] = []           # (position, records, first record, applications)
    with _csv_handle(path) as handle:
        reader = csv.reader(_lines(handle))
        try:
            header = tuple(name.strip() for name in next(reader, []))
            check_header(list(header), shown)
            position, number, applications = handle.tell(), 0, 0
            for number, cells in enumerate(reader, start=1):
                applications += bool(cells)
                if number % rows_per_partition == 0:
                    cuts.append((position, rows_per_partition, number - rows_per_partition + 1, applications))
                    position, applications = handle.tell(), 0
        except csv.Error as exc:
            raise InvalidApplicationError([f"{shown} is not a readable CSV file: {printable(exc)} (line "
                                           f"{reader.line_num})"]) from None
    if number % rows_per_partition:
        cuts.append((position, number % rows_per_partition, number - number % rows_per_partition + 1, applications))
    return [Partition("csv", str(path), *cut, header, fingerprint) for cut in cuts]


def _read_csv_part(partition: Partition, dataset: str) -> list[CsvRow]:
    read_row = _row_reader(partition.header, dataset)
    with _csv_handle(Path(partition.path)) as handle:
        handle.seek(partition.start)
        reader = csv.reader(_lines(handle))
        records = [next(reader) for _ in range(partition.records)]
    return [read_row(partition.first_row + offset, cells) for offset, cells in enumerate(records) if cells]


# ----------------------------------------------------------------------------- Parquet

def _natural(path: Path) -> list[Any]:
    """Sort key: ``part.2`` before ``part.10``."""
    return [int(piece) if piece.isdigit() else piece for piece in re.split(r"(\d+)", str(path))]


def parquet_files(path: Path) -> list[Path]:
    """The Parquet file, or the Parquet parts of a folder (and its sub-folders) in natural order."""
    if path.is_file():
        return [path]
    found = sorted((p for p in path.rglob("*") if p.suffix.lower() in PARQUET_SUFFIXES and p.is_file()
                    and not p.name.startswith((".", "_"))), key=_natural)
    if not found:
        raise ArtifactNotFoundError(f"input folder {printable(path)} holds no Parquet parts; expected files named "
                                    f"*{', *'.join(PARQUET_SUFFIXES)}")
    return found


def _parquet_header(path: Path) -> tuple[str, ...]:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as exc:          # pyarrow raises ArrowInvalid, OSError and others for a file it cannot read
        raise InvalidApplicationError([f"{printable(path)} is not a readable Parquet file: "
                                       f"{printable(str(exc).splitlines()[0] if str(exc) else exc)[:200]}"]) from None
    header = tuple(name.strip() for name in names)
    check_header(list(header), printable(path))
    return header


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def scan_parquet(path: Path, rows_per_partition: int) -> list[Partition]:
    """Partitions of at most `rows_per_partition` rows of each Parquet part (a partition stays in one part);
    every part must have the first part's columns."""
    files = parquet_files(path)
    header, partitions, first_row = _parquet_header(files[0]), [], 1
    for part in files:
        if _parquet_header(part) != header:
            raise InvalidApplicationError([f"Parquet part {printable(part)} has columns {list(_parquet_header(part))}; "
                                           f"expected those of {printable(files[0])}: {list(header)}"])
        total, fingerprint = _parquet_rows(part), _fingerprint(part)
        for start in range(0, total, rows_per_partition):
            records = min(rows_per_partition, total - start)
            partitions.append(Partition("parquet", str(part), start, records, first_row, records, header, fingerprint))
            first_row += records
    return partitions


def _read_parquet_part(partition: Partition, dataset: str) -> list[CsvRow]:
    import pyarrow.parquet as pq

    read_row = _row_reader(partition.header, dataset)
    parquet = pq.ParquetFile(partition.path)
    groups, first, ends = [], None, 0
    for index in range(parquet.metadata.num_row_groups):
        begins, ends = ends, ends + parquet.metadata.row_group(index).num_rows
        if begins < partition.start + partition.records and ends > partition.start:
            groups.append(index)
            first = begins if first is None else first
    table = parquet.read_row_groups(groups).slice(partition.start - (first or 0), partition.records)
    columns = [[cell_text(value) for value in column.to_pylist()] for column in table.columns]
    return [read_row(partition.first_row + offset, list(cells)) for offset, cells in enumerate(zip(*columns))]


PARTITION_READERS = {"csv": _read_csv_part, "parquet": _read_parquet_part}


# ----------------------------------------------------------------------------- a whole input

def input_kind(path: Path | str) -> str:
    """"parquet" for a Parquet file or a folder of parts, "csv" for anything else (a CSV file)."""
    path = Path(path)
    return "parquet" if path.is_dir() or path.suffix.lower() in PARQUET_SUFFIXES else "csv"


SCANNERS = {"csv": scan_csv, "parquet": scan_parquet}


def check_input(path: Path | str) -> None:
    """Refuse at once (before a cluster is reached) an input that is not there: ArtifactNotFoundError."""
    path = Path(path)
    if not path.exists():
        raise ArtifactNotFoundError(f"applications input not found: expected a CSV file, a Parquet file or a folder "
                                    f"of Parquet parts at {printable(path)}")
    if input_kind(path) == "parquet":
        parquet_files(path)
    else:
        _csv_file(path)


def scan_input(path: Path | str, rows_per_partition: int) -> list[Partition]:
    """The partitions of an input (CSV, Parquet file or folder of Parquet parts)."""
    if rows_per_partition < 1:
        raise ConfigurationError(f"rows per partition must be at least 1; got {rows_per_partition}")
    check_input(path)
    return SCANNERS[input_kind(path)](Path(path), rows_per_partition)


def read_input(path: Path | str, dataset: str) -> list[CsvRow]:
    """Every row of an input in one process: a CSV exactly as ``read_csv`` reads it, Parquet part by part."""
    if input_kind(path) == "csv":
        return read_csv(Path(path), dataset)
    return [row for partition in scan_input(path, _WHOLE_PART) for row in read_partition(partition, dataset)]


_WHOLE_PART = 1 << 62


def rows_in(partitions: list[Partition]) -> int:
    return sum(p.rows for p in partitions)


def default_rows_per_partition(path: Path | str, workers: int, chunk_size: int) -> int:
    """About four partitions per worker (so a slow or lost worker holds back little), between one chunk
    and 1,000 rows; counted from a quick look at the input's size."""
    total = _count_records(Path(path))
    wanted = math.ceil(total / (4 * max(1, workers)))
    return max(chunk_size, min(1000, wanted))


def _count_records(path: Path) -> int:
    if not path.exists():
        return 0
    if input_kind(path) == "parquet":
        return sum(_parquet_rows(part) for part in parquet_files(path))
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))

