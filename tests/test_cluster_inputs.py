"""The inputs a batch reads (lendsafe/issue/inputs.py): a CSV cut into partitions reads back exactly as
read_csv reads the whole file; Parquet files and folders of parts give the rows a CSV of the same text
gives, numbered on from part to part in natural order; a changed or unreadable input is refused."""
from __future__ import annotations

import datetime as dt
import math
import os

import pytest

from lendsafe.errors import ArtifactNotFoundError, ConfigurationError, InvalidApplicationError
from lendsafe.issue.inputs import (cell_text, default_rows_per_partition, read_input, read_partition, rows_in,
                                   scan_input)
from lendsafe.notice.incomplete import read_csv

FEATURES = ("debt_to_income", "housing_expense_to_income", "loan_to_value", "consumer_credit_history",
            "mortgage_credit_history", "public_bad_credit_record", "mortgage_insurance_denied", "self_employed",
            "condominium")
VALUES = ("1.2", "0.9", "1.3", "6", "4", "yes", "no", "no", "no")


def csv_text(rows: int, newline: str = "\n") -> str:
    lines = [",".join(("application_id", "applicant_name", "applicant_address") + FEATURES)]
    for n in range(rows):
        address = f'"{n} Main Street{newline}Springfield"' if n % 4 == 1 else f"{n} Main Street"
        values = list(VALUES)
        values[0] = "-1" if n % 7 == 3 else f"0.{n + 1:02d}"          # an invalid row now and then
        values[2] = "" if n % 9 == 5 else values[2]                     # an incomplete one
        lines.append(",".join((f"A-{n}", f"Applicant {n}", address, *values)))
        if n % 6 == 2:
            lines.append("")                                            # a blank line counts as a record
    return newline.join(lines) + newline


def described(rows) -> list[tuple]:
    return [(r.data_row, r.cells, repr(r.error), r.triage) for r in rows]


@pytest.mark.parametrize("newline,bom", [("\n", False), ("\r\n", True)])
@pytest.mark.parametrize("size", [1, 4, 7, 1000])
def test_csv_partitions_read_back_exactly_as_the_whole_file(newline, bom, size, tmp_path):
    path = tmp_path / "apps.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + csv_text(30, newline).encode("utf-8") + b"A-x,\xff\xfe,x\n")
    partitions = scan_input(path, size)
    rows = [row for partition in partitions for row in read_partition(partition, "hmda")]
    whole = read_csv(path, "hmda")
    assert described(rows) == described(whole)
    assert rows_in(partitions) == len(whole) and whole[-1].error is not None          # the bad bytes: its row only
    assert all(p.records <= size for p in partitions)
    assert [p.first_row for p in partitions] == [1 + size * i for i in range(len(partitions))]


def test_a_csv_that_is_not_one_is_refused_when_scanned(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,a\n1,2\n", encoding="utf-8")
    with pytest.raises(InvalidApplicationError, match="appears 2 times"):
        scan_input(path, 10)
    with pytest.raises(ArtifactNotFoundError, match="expected a CSV file, a Parquet file or a folder"):
        scan_input(tmp_path / "absent.csv", 10)
    with pytest.raises(ConfigurationError, match="at least 1"):
        scan_input(path, 0)


def write_parquet(path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=3)


def typed_row(n: int) -> dict:
    """A Parquet row with typed values (a float, an int, a bool, a date, a null)."""
    return {"application_id": f"P-{n}", "debt_to_income": 0.25 + n / 100, "housing_expense_to_income": 0.2,
            "loan_to_value": None if n == 4 else 0.8, "consumer_credit_history": 2, "mortgage_credit_history": 1,
            "public_bad_credit_record": n % 2 == 0, "mortgage_insurance_denied": False, "self_employed": False,
            "condominium": False, "application_date": dt.date(2026, 2, 1)}


def test_a_folder_of_parquet_parts_is_read_in_natural_order_and_numbered_on(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    for part, start in ((10, 8), (2, 0), (3, 4)):             # part.2 before part.3 before part.10
        write_parquet(folder / f"part.{part}.parquet", [typed_row(n) for n in range(start, start + 4)])
    (folder / "_metadata").write_bytes(b"not a part")
    rows = read_input(folder, "hmda")
    assert [r.data_row for r in rows] == list(range(1, 13))
    assert [r.application_id for r in rows] == [f"P-{n}" for n in range(12)]
    assert rows[4].triage.missing == ("loan_to_value",) and rows[0].triage.application["public_bad_credit_record"] is True
    partitions = scan_input(folder, 2)
    assert described([r for p in partitions for r in read_partition(p, "hmda")]) == described(rows)
    assert [p.path for p in partitions if p.first_row >= 9] == [str(folder / "part.10.parquet")] * 2


def test_parquet_values_read_as_the_text_a_csv_would_hold(tmp_path):
    table = [(None, ""), (float("nan"), ""), (True, "true"), (False, "false"), (0.1, "0.1"), (3, "3"),
             (dt.date(2026, 3, 2), "2026-03-02"), ("  text ", "  text "), (b"\xc3\xa9", "é")]
    assert [cell_text(value) for value, _ in table] == [text for _, text in table]
    csv_path, parquet_path = tmp_path / "a.csv", tmp_path / "a.parquet"
    csv_path.write_text(csv_text(12), encoding="utf-8")
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    options = pacsv.ConvertOptions(column_types={name: "string" for name in ("application_id", "applicant_name",
                                                                           "applicant_address") + FEATURES},
                                   strings_can_be_null=False)
    pq.write_table(pacsv.read_csv(csv_path, convert_options=options), parquet_path)
    by_id = {r.application_id: r for r in read_csv(csv_path, "hmda")}
    for row in read_input(parquet_path, "hmda"):
        assert (row.cells, repr(row.error), row.triage) == (by_id[row.application_id].cells,
                                                           repr(by_id[row.application_id].error),
                                                           by_id[row.application_id].triage)


def test_parts_with_other_columns_or_unreadable_parts_are_refused(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    write_parquet(folder / "part.0.parquet", [typed_row(0)])
    write_parquet(folder / "part.1.parquet", [{"application_id": "x"}])
    with pytest.raises(InvalidApplicationError, match="part.1.parquet has columns"):
        scan_input(folder, 10)
    (folder / "part.1.parquet").write_bytes(b"PAR1 but not really")
    with pytest.raises(InvalidApplicationError, match="not a readable Parquet file"):
        scan_input(folder, 10)
    with pytest.raises(ArtifactNotFoundError, match="holds no Parquet parts"):
        scan_input(tmp_path / "empty", 1) if (tmp_path / "empty").mkdir() is None else None


def test_an_input_changed_after_the_scan_is_refused_by_the_worker(tmp_path):
    path = tmp_path / "apps.csv"
    path.write_text(csv_text(6), encoding="utf-8")
    [partition] = scan_input(path, 100)
    path.write_text(csv_text(7), encoding="utf-8")
    with pytest.raises(ConfigurationError, match="changed since the batch started"):
        read_partition(partition, "hmda")
    os.remove(path)
    with pytest.raises(ConfigurationError, match="every worker mounts"):
        read_partition(partition, "hmda")


def test_default_partitions_are_about_four_per_worker_within_bounds(tmp_path):
    path = tmp_path / "apps.csv"
    path.write_text(csv_text(400), encoding="utf-8")
    records = len(path.read_text(encoding="utf-8").splitlines())
    assert default_rows_per_partition(path, 2, 8) == math.ceil(records / 8)
    assert default_rows_per_partition(path, 1000, 8) == 8
    assert default_rows_per_partition(path, 0, 8) == math.ceil(records / 4)
