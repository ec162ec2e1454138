"""The batch folder: manifest and error lines that survive a kill, atomic writes, cells a spreadsheet shows as
text, one batch per folder at a time, a batch id kept across runs, and a reproducible zip."""
from __future__ import annotations

import io
import zipfile

import pytest

from lendsafe.errors import ConfigurationError
from lendsafe.issue.batchfolder import (ERROR_COLUMNS, MANIFEST_COLUMNS, BatchError, BatchFolder, BatchResult, CsvLog,
                                        ManifestRow, RowId, safe_cell, write_atomic, zip_batch)

KEY = "ab" * 16


def manifest_row(data_row: int, key: str = KEY) -> ManifestRow:
    return ManifestRow.listing(RowId(data_row, f"A-{data_row}", "Ann"), key, "", "approve", "", "", "", "", "7")


def test_a_new_log_gets_its_header_and_a_torn_last_line_is_cut_off(tmp_path):
    log = CsvLog(tmp_path / "manifest.csv", MANIFEST_COLUMNS)
    assert log.load() == [] and (tmp_path / "manifest.csv").read_text().startswith("data_row,")
    log.append([manifest_row(1).as_row()])
    with open(log.path, "a") as handle:
        handle.write("2,A-2,Bo")                       # a kill in the middle of a line
    assert [row["data_row"] for row in log.load()] == ["1"]
    assert log.path.read_text().endswith("\n")


def test_a_log_written_with_other_columns_is_refused(tmp_path):
    (tmp_path / "errors.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigurationError, match="choose an empty --out folder"):
        CsvLog(tmp_path / "errors.csv", ERROR_COLUMNS).load()


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "notice.pdf"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second" and [p.name for p in tmp_path.iterdir()] == ["notice.pdf"]


@pytest.mark.parametrize("value, shown", [("=SUM(A1)", "'=SUM(A1)"), ("-1", "'-1"), ("Ann", "Ann"), (3, 3)])
def test_safe_cell_quotes_formulas(value, shown):
    assert safe_cell(value) == shown


def test_one_batch_per_folder_and_its_id_is_kept(tmp_path):
    with BatchFolder(tmp_path / "out") as folder:
        first = folder.batch_id()
        with pytest.raises(ConfigurationError, match="in use by another batch"):
            BatchFolder(tmp_path / "out").__enter__()
    with BatchFolder(tmp_path / "out") as again:
        assert again.batch_id() == first and len(first) == 32
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigurationError, match="--out must be a folder"):
        BatchFolder(tmp_path / "file")


def test_finish_keeps_one_line_per_key_in_row_order_and_the_zip_is_reproducible(tmp_path):
    result = BatchResult(tmp_path, rows=[manifest_row(3, "cd" * 16), manifest_row(1), manifest_row(1)],
                         errors=[BatchError.of(RowId(2), ("debt_to_income is missing",), "ef" * 16)])
    BatchFolder(tmp_path).finish(result)
    assert [r.data_row for r in result.rows] == [1, 3] and result.processed == 2
    archive = zip_batch(result)
    assert archive == zip_batch(result)
    names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
    assert names == ["manifest.csv", "errors.csv"]
