"""The output folder of a batch and the files handed over: the manifest and the error list (CSV files
appended group by group, fsynced, readable again after a kill, cells a spreadsheet shows as text), PDFs
written atomically, the folder's lock and batch id, and the zip of it all. Running the batch is
``lendsafe.issue.batch``.

On a cluster every partition keeps its own manifest and error list (``PartFolder``, under
``.lendsafe-parts/<plan>/``) beside the PDFs it writes into the folder; the client merges them into the
folder's manifest.csv, errors.csv and manifest.parquet (``BatchFolder.merge_parts``).
"""
from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import os
import re
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lendsafe.errors import ConfigurationError
from lendsafe.redaction import printable

INCOMPLETE = "incomplete"          # the manifest's decision for a notice of incompleteness

ROW_COLUMNS = ("data_row", "application_id", "applicant_name")     # who a manifest or error line is about
MANIFEST_COLUMNS = (*ROW_COLUMNS, "key", "id", "decision", "reasons", "sha256", "path", "check", "audit_id",
                    "status")
ERROR_COLUMNS = (*ROW_COLUMNS, "key", "problems", "refused", "audit_id")
# A manifest row's status: issued by this batch, or found issued under its key by another batch (listed with
# its document id and audit record; no PDF in this folder).
ISSUED, ALREADY_ISSUED, HELD = "issued", "already issued", "held for review"
MANIFEST_NAME = "manifest.csv"
ERRORS_NAME = "errors.csv"
LOCK_NAME = ".lendsafe-batch.lock"
BATCH_ID_NAME = ".lendsafe-batch-id"
MANIFEST_PARQUET_NAME = "manifest.parquet"
PARTS_NAME = ".lendsafe-parts"      # the partitions' own manifests and error lists (a cluster run)
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
LISTED_CHARS = 200                 # application id and applicant name in the manifest: longer text is cut
KEY_PATTERN = re.compile(r"^[0-9a-f]{32}$")
# A CSV cell starting with one of these is a formula to a spreadsheet: it is written with a leading '.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")



@dataclass(frozen=True)
class RowId:
    """Which application a line is about: its data row (1 = first row after the header), application id and
    applicant name as the CSV gives them ("" when absent)."""

    data_row: int
    application_id: str = ""
    applicant_name: str = ""

    @classmethod
    def of(cls, row: Any) -> "RowId":
        """The id of a ``lendsafe.notice.incomplete.CsvRow`` (bytes that are not UTF-8 shown as U+FFFD, long text cut)."""
        return cls(row.data_row, _listed(row.application_id), _listed(row.applicant_name))


def _listed(text: str) -> str:
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text if len(text) <= LISTED_CHARS else text[:LISTED_CHARS - 1] + "…"


@dataclass(frozen=True)
class ManifestRow:
    """One processed application: its notice (denials only) and the notice's sha256."""

    data_row: int       # 1 = the first CSV row after the header
    application_id: str
    applicant_name: str
    key: str           # issue key: application id (or row) + content hash + dataset
    id: str            # notice document id ("" for approvals)
    decision: str      # "deny" | "approve" | "incomplete"
    reasons: str       # reason codes, most important first (missing fields for "incomplete"), ";"-separated
    sha256: str        # sha256 of the PDF bytes
    path: str          # PDF file name inside the output folder
    check: str         # "pass" (a notice that fails its check is not issued) | "" (no notice)
    audit_id: str = ""  # audit record id ("" when no audit store was given)
    status: str = ISSUED  # ISSUED | ALREADY_ISSUED (by another batch: no PDF here) | HELD (no notice yet)

    def as_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in MANIFEST_COLUMNS}

    @classmethod
    def from_row(cls, row: dict[str, str]) -> "ManifestRow":
        return cls(**{**{name: row.get(name) or "" for name in MANIFEST_COLUMNS}, "data_row": int(row["data_row"])})

    @classmethod
    def listing(cls, who: RowId, key: str, *values: Any) -> "ManifestRow":
        """The row of `who` under `key`, followed by id, decision, reasons, sha256, path, check, audit_id."""
        return cls(who.data_row, who.application_id, who.applicant_name, key, *values)


@dataclass(frozen=True)
class BatchError:
    """A row that was not issued: the problems, or the reason its notice was refused."""

    data_row: int       # 1 = the first CSV row after the header
    problems: tuple[str, ...]
    key: str = ""
    application_id: str = ""
    applicant_name: str = ""
    refused: str = ""   # a notice refused at issue: the check that refused it ("completeness check", ...)
    audit_id: str = ""  # the refusal's audit record ("" without an audit store, or for rows not decided)

    @classmethod
    def of(cls, who: RowId, problems: tuple[str, ...], key: str = "", refused: str = "",
           audit_id: str = "") -> "BatchError":
        return cls(who.data_row, problems, key, who.application_id, who.applicant_name, refused, audit_id)

    @classmethod
    def from_row(cls, row: dict[str, str]) -> "BatchError":
        """The error an errors.csv line lists (its problems as one text)."""
        return cls(int(row["data_row"]), (row.get("problems") or "",), row.get("key") or "",
                   row.get("application_id") or "", row.get("applicant_name") or "", row.get("refused") or "",
                   row.get("audit_id") or "")

    def as_row(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in ERROR_COLUMNS}, "problems": "; ".join(self.problems)}


@dataclass
class BatchResult:
    out_dir: Path
    rows: list[ManifestRow] = field(default_factory=list)
    errors: list[BatchError] = field(default_factory=list)
    resumed: int = 0               # rows found done by an earlier run into the same folder (or audit store)
    resumed_rows: list[int] = field(default_factory=list)   # their data rows
    failed: list[str] = field(default_factory=list)   # partitions a cluster could not finish (their rows are errors)

    def resume(self, data_row: int) -> None:
        """Count a row found done."""
        self.resumed += 1
        self.resumed_rows.append(data_row)

    @property
    def processed(self) -> int:
        return len(self.rows)

    @property
    def documents(self) -> list[ManifestRow]:
        """Rows with a PDF: adverse-action notices and notices of incompleteness."""
        return [r for r in self.rows if r.path]

    @property
    def notices(self) -> list[ManifestRow]:
        """Rows with an adverse-action notice."""
        return [r for r in self.documents if r.decision != INCOMPLETE]

    @property
    def incomplete(self) -> list[ManifestRow]:
        return [r for r in self.rows if r.decision == INCOMPLETE and r.status == ISSUED]

    @property
    def held(self) -> list[ManifestRow]:
        """Denials held for review: recorded, no notice issued until a reviewer approves."""
        return [r for r in self.rows if r.status == HELD]

    @property
    def already_issued(self) -> list[ManifestRow]:
        """Rows another batch issued first (found under their issue key in the audit store)."""
        return [r for r in self.rows if r.status == ALREADY_ISSUED]

    @property
    def refused(self) -> list[BatchError]:
        """Rows whose notice was refused at issue (recorded as refusals when there is an audit store)."""
        return [e for e in self.errors if e.refused]

    @property
    def failed_checks(self) -> list[ManifestRow]:
        return [r for r in self.rows if r.check.startswith("fail")]

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / MANIFEST_NAME

    @property
    def errors_path(self) -> Path:
        return self.out_dir / ERRORS_NAME

    @property
    def manifest_parquet_path(self) -> Path:
        return self.out_dir / MANIFEST_PARQUET_NAME


# ----------------------------------------------------------------------------- files that survive a kill

def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new one, never a part."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: control characters escaped, formulas (= + - @) quoted."""
    if not isinstance(value, str):
        return value
    text = printable(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_text(columns: tuple[str, ...], rows: list[dict[str, Any]], header: bool = True) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows([{name: safe_cell(row[name]) for name in columns} for row in rows])
    return buffer.getvalue()


class CsvLog:
    """A CSV file appended group by group (flushed and fsynced), readable again after a kill."""

    def __init__(self, path: Path, columns: tuple[str, ...]):
        self.path, self.columns = path, columns

    def load(self) -> list[dict[str, str]]:
        """The complete lines already written (a line torn by a kill is cut off); a new file gets its header."""
        data = self.path.read_bytes() if self.path.is_file() else b""
        complete = data[: data.rfind(b"\n") + 1]
        if not complete:
            write_atomic(self.path, _csv_text(self.columns, []).encode("utf-8"))
            return []
        if len(complete) != len(data):
            write_atomic(self.path, complete)
        reader = csv.DictReader(io.StringIO(complete.decode("utf-8", "replace")))
        if tuple(reader.fieldnames or ()) != self.columns:
            raise ConfigurationError(f"{printable(self.path)} has columns {reader.fieldnames}; expected "
                                     f"{list(self.columns)} (written by another version): choose an empty --out folder")
        return [row for row in reader
                if KEY_PATTERN.match(row.get("key") or "") and (row.get("data_row") or "").isdigit()]

    def reset(self) -> None:
        """Start the file again with its header only."""
        write_atomic(self.path, _csv_text(self.columns, []).encode("utf-8"))

    def append(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with open(self.path, "a", encoding="utf-8", newline="") as handle:
            handle.write(_csv_text(self.columns, rows, header=False))
            handle.flush()
            os.fsync(handle.fileno())


class BatchFolder:
    """The output folder of one batch: locked against a second run, its manifest and error list."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ConfigurationError(f"--out must be a folder; {printable(self.path)} is a file")
        self.path.mkdir(parents=True, exist_ok=True)
        self.manifest = CsvLog(self.path / MANIFEST_NAME, MANIFEST_COLUMNS)
        self.errors = CsvLog(self.path / ERRORS_NAME, ERROR_COLUMNS)
        self._lock = None

    def __enter__(self) -> "BatchFolder":
        self._lock = open(self.path / LOCK_NAME, "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ConfigurationError(f"output folder {printable(self.path)} is in use by another batch; "
                                     "wait for it or choose another --out folder") from None
        for leftover in self.path.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._lock.close()

    def batch_id(self) -> str:
        """The folder's batch id (made on its first run), kept in each record the batch makes: tells the
        folder's own records (a lost manifest line) from records another batch made under the same key."""
        path = self.path / BATCH_ID_NAME
        text = path.read_text(encoding="utf-8", errors="replace").strip() if path.is_file() else ""
        if not KEY_PATTERN.match(text):
            text = uuid.uuid4().hex
            write_atomic(path, text.encode("ascii"))
        return text

    def has_pdf(self, row: dict[str, str]) -> bool:
        return has_pdf(self.path, row)

    def finish(self, result: BatchResult) -> None:
        """Rewrite the manifest and error list in row order, one line per key (atomically), and the manifest
        as Parquet."""
        result.rows = sorted({r.key: r for r in result.rows}.values(), key=lambda r: r.data_row)
        result.errors = sorted({(e.key, e.data_row): e for e in result.errors}.values(), key=lambda e: e.data_row)
        write_atomic(result.manifest_path, manifest_csv(result).encode("utf-8"))
        write_atomic(result.errors_path, errors_csv(result).encode("utf-8"))
        write_atomic(result.manifest_parquet_path, manifest_parquet(result))

    # -- a cluster run
    def part(self, plan: str, name: str) -> "PartFolder":
        return PartFolder(self.path, plan, name)

    def merge_parts(self, plan: str) -> BatchResult:
        """The rows and errors the partitions of `plan` listed (rows whose PDF is in the folder), one issue per
        key: a row repeating an earlier row's key (same application id and content, in another partition)
        becomes an error naming that row, as in one process, and a PDF written only for it is removed."""
        result = BatchResult(self.path)
        for log in sorted((self.path / PARTS_NAME / plan).glob("*.manifest.csv")):
            result.rows += [ManifestRow.from_row(r) for r in CsvLog(log, MANIFEST_COLUMNS).load() if self.has_pdf(r)]
        for log in sorted((self.path / PARTS_NAME / plan).glob("*.errors.csv")):
            result.errors += [BatchError.from_row(r) for r in CsvLog(log, ERROR_COLUMNS).load()]
        result.rows, repeats = _first_per_key(result.rows)
        kept = {r.path for r in result.rows}
        for repeat, first in repeats:
            if repeat.path and repeat.path not in kept:
                (self.path / repeat.path).unlink(missing_ok=True)
            result.errors.append(BatchError.of(RowId(repeat.data_row, repeat.application_id, repeat.applicant_name),
                                               (f"repeats data_row {first.data_row} (same application_id and content); "
                                                f"issued once, for data_row {first.data_row}",), repeat.key))
        return result

    def drop_other_plans(self, plan: str) -> None:
        """Remove the partition files of earlier plans (a rerun cut into other partitions)."""
        import shutil

        for folder in (self.path / PARTS_NAME).glob("*"):
            if folder.name != plan and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)


def _first_per_key(rows: list[ManifestRow]) -> tuple[list[ManifestRow], list[tuple[ManifestRow, ManifestRow]]]:
    """The first row (lowest data_row) of each key, and (repeat, first) for every other row of a key whose
    data_row differs (the same row listed twice is one row)."""
    first: dict[str, ManifestRow] = {}
    for row in sorted(rows, key=lambda r: r.data_row):
        first.setdefault(row.key, row)
    repeats = [(row, first[row.key]) for row in rows if row.data_row != first[row.key].data_row]
    return list(first.values()), list({(r.data_row, r.key): (r, f) for r, f in repeats}.values())


def has_pdf(folder: Path, row: dict[str, str]) -> bool:
    """True when a manifest row names no PDF, or its PDF is in `folder` with the recorded sha256."""
    if not row.get("path"):
        return True
    path = folder / Path(row["path"]).name
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == row.get("sha256")


class PartFolder:
    """One partition's view of a batch folder (on a worker): its PDFs go into the folder, its manifest and
    error list are its own (``.lendsafe-parts/<plan>/<name>.*.csv``). No lock: the client that started the
    batch holds the folder's, and a partition runs on one worker at a time."""

    def __init__(self, path: Path | str, plan: str, name: str):
        self.path = Path(path)
        self.name = name
        self.batch = self.path / BATCH_ID_NAME
        parts = self.path / PARTS_NAME / plan
        if self.batch.is_file():
            parts.mkdir(parents=True, exist_ok=True)
        self.manifest = CsvLog(parts / f"{name}.manifest.csv", MANIFEST_COLUMNS)
        self.errors = CsvLog(parts / f"{name}.errors.csv", ERROR_COLUMNS)

    def batch_id(self) -> str:
        """The folder's batch id; ConfigurationError when this machine does not see the folder the client made."""
        text = self.batch.read_text(encoding="utf-8", errors="replace").strip() if self.batch.is_file() else ""
        if not KEY_PATTERN.match(text):
            raise ConfigurationError(f"output folder {printable(self.path)} is not visible on this worker: --out must "
                                     "be on a filesystem every worker mounts at the same path")
        return text

    def has_pdf(self, row: dict[str, str]) -> bool:
        return has_pdf(self.path, row)


# ----------------------------------------------------------------------------- what is handed over

def manifest_csv(result: BatchResult) -> str:
    return _csv_text(MANIFEST_COLUMNS, [r.as_row() for r in result.rows])


def errors_csv(result: BatchResult) -> str:
    return _csv_text(ERROR_COLUMNS, [e.as_row() for e in result.errors])


def manifest_parquet(result: BatchResult) -> bytes:
    """The manifest as Parquet (data_row a whole number, every other column text), in row order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [r.as_row() for r in result.rows]
    columns = {name: [row[name] for row in rows] for name in MANIFEST_COLUMNS}
    types = {name: pa.int64() if name == "data_row" else pa.string() for name in MANIFEST_COLUMNS}
    table = pa.table({name: pa.array(values, type=types[name]) for name, values in columns.items()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def zip_batch(result: BatchResult) -> bytes:
    """The manifest, the error list and every PDF as one zip (same bytes for the same batch)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = [(MANIFEST_NAME, manifest_csv(result).encode("utf-8")),
                   (ERRORS_NAME, errors_csv(result).encode("utf-8"))]
        entries += [(r.path, (result.out_dir / r.path).read_bytes()) for r in result.documents]
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()
