"""Kill tests: `lendsafe notices` is SIGKILLed at random points and run again into the same folder. After
the last run nothing is lost, nothing is doubled, every manifest row has its PDF with the recorded hash,
the audit records and the manifest agree, and `lendsafe audit verify` passes."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from lendsafe.audit.store import AuditStore

from batch_support import write_csv

pytestmark = pytest.mark.slow

FEATURES = ("debt_to_income", "housing_expense_to_income", "loan_to_value", "consumer_credit_history",
            "mortgage_credit_history", "public_bad_credit_record", "mortgage_insurance_denied", "self_employed",
            "condominium")
DENIED = dict(zip(FEATURES, ("1.2", "0.9", "1.3", "6", "4", "yes", "yes", "no", "no")))
APPROVED = dict(zip(FEATURES, ("0.2", "0.15", "0.5", "1", "1", "no", "no", "no", "no")))
RUNS = 10
NOTICE_DATE = "2026-03-02"
REPORT = Counter()


def applications() -> list[dict]:
    """40 rows: denials, approvals, invalid and incomplete rows, and identical rows (distinct documents)."""
    rows = []
    for i in range(40):
        base = dict(DENIED if i % 3 else APPROVED)
        base["debt_to_income"] = f"{(0.6 + i / 40) if i % 3 else 0.1 + i / 200:.3f}"
        base |= {"applicant_name": f"Applicant {i % 30}", "applicant_address": f"{i} Main Street", "application_id": ""}
        if i % 13 == 5:
            base["debt_to_income"] = "-1"             # invalid: an errors.csv row
        if i % 17 == 7:
            base["loan_to_value"] = ""                # incomplete: a notice of incompleteness
        rows.append(base)
    rows[30] = dict(rows[1])                          # identical rows without an application id
    rows[31] = dict(rows[1])
    return rows


def environment(folder: Path) -> dict[str, str]:
    return {**os.environ, "LENDSAFE_DATABASE_URL": f"sqlite:///{folder / 'audit.db'}",
            "LENDSAFE_AUDIT_KEY": "kill-test-audit-key-" + "x" * 24,
            "LENDSAFE_AUDIT_CHECKPOINT_DIR": str(folder / "checkpoints"), "PYTHONUNBUFFERED": "1"}


def notices(csv_path: Path, out: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lendsafe.cli", "notices", str(csv_path), "--out", str(out),
                             "--writer", "template", "--notice-date", NOTICE_DATE], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def complete(csv_path: Path, out: Path, env: dict) -> dict:
    process = notices(csv_path, out, env)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0 and "Traceback" not in stderr, stderr
    return json.loads(stdout)


def read_csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def check_consistent(folder: Path, out: Path, expected: dict) -> dict:
    """Compare a finished folder with an uninterrupted run; return the counts of lost and doubled."""
    manifest, errors = read_csv_rows(out / "manifest.csv"), read_csv_rows(out / "errors.csv")
    with AuditStore(environment(folder)["LENDSAFE_DATABASE_URL"]) as store:
        records = [r for r in store.list(limit=None)]
        keys = Counter(r.content.get("issue_key") for r in records)
        by_id = {str(r.id): r for r in records}
    rows = Counter(m["data_row"] for m in manifest)
    lost = len(set(expected["rows"]) - set(rows)) + len(set(expected["errors"]) - {e["data_row"] for e in errors})
    doubled = sum(n - 1 for n in rows.values()) + sum(n - 1 for n in keys.values())
    doubled += len(records) - sum(1 for m in manifest if m["audit_id"])
    for row in manifest:
        if row["path"]:
            assert hashlib.sha256((out / row["path"]).read_bytes()).hexdigest() == row["sha256"], row
        if row["audit_id"]:
            record = by_id[row["audit_id"]]
            assert record.content["issue_key"] == row["key"] and (record.notice_sha256 or "") == row["sha256"]
    ids = [m["id"] for m in manifest if m["id"]]
    assert len(ids) == len(set(ids)), "document ids are unique per issue"
    assert sorted(rows) == sorted(expected["rows"]) and {e["data_row"] for e in errors} == set(expected["errors"])
    verify = subprocess.run([sys.executable, "-m", "lendsafe.cli", "audit", "verify"], env=environment(folder),
                            capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    return {"lost": lost, "doubled": doubled}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """The CSV and what an uninterrupted run gives (rows, errors, its wall time)."""
    folder = tmp_path_factory.mktemp("kill-reference")
    csv_path = folder / "applications.csv"
    write_csv(csv_path, applications())
    started = time.monotonic()
    summary = complete(csv_path, folder / "out", environment(folder))
    seconds = time.monotonic() - started
    manifest, errors = read_csv_rows(folder / "out" / "manifest.csv"), read_csv_rows(folder / "out" / "errors.csv")
    assert summary["processed"] == len(manifest) and summary["notices"] > 10 and summary["incomplete"] >= 2
    return {"csv": csv_path, "seconds": seconds, "rows": [m["data_row"] for m in manifest],
            "errors": [e["data_row"] for e in errors]}


def read_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()[1:] if path.is_file() else []


def wait_for_lines(path: Path, lines: int, process: subprocess.Popen) -> None:
    """Return once the manifest has `lines` data lines (a random point inside the run) or the run ended."""
    while process.poll() is None and len(read_lines(path)) < lines:
        time.sleep(0.02)


@pytest.mark.parametrize("run", range(RUNS))
def test_a_killed_batch_resumes_without_losing_or_doubling(run, batch, tmp_path):
    rng = random.Random(run)
    out = tmp_path / "out"
    kills = 1 + run % 3                               # one to three kills before the run that completes
    for _ in range(kills):
        process = notices(batch["csv"], out, environment(tmp_path))
        wait_for_lines(out / "manifest.csv", rng.randint(0, len(batch["rows"])), process)
        time.sleep(rng.uniform(0, 0.3))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            REPORT["kills"] += 1
            REPORT["manifest lines at kill"] += len(read_lines(out / "manifest.csv"))
        process.communicate(timeout=60)
    summary = complete(batch["csv"], out, environment(tmp_path))
    outcome = check_consistent(tmp_path, out, batch)
    REPORT.update(outcome)
    REPORT["runs"] += 1
    REPORT["resumed rows"] += summary["resumed"]
    print(f"run {run}: {kills} kill(s), resumed {summary['resumed']} rows, {outcome}; totals {dict(REPORT)}")
    assert outcome == {"lost": 0, "doubled": 0}
