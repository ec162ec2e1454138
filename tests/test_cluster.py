"""Notices on a Dask cluster (lendsafe/issue/cluster.py): the same bytes as one process, a rerun issues
nothing twice, one audit store for many writers (SQLite and PostgreSQL), and the errors an operator meets
(a --cluster value, an unreachable scheduler, a worker writing to another store) said plainly.

The runs use the deterministic writer on a local cluster of two worker processes and a small CSV."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from lendsafe.audit.store import AuditStore
from lendsafe.cli import main
from lendsafe.errors import ConfigurationError
from lendsafe.issue.cluster import (BatchJob, ClusterSpec, IssuerPlugin, StoreIdentity, configured_cluster,
                                    parse_cluster, run_on_cluster)

from batch_support import write_csv

pytestmark = pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs poppler-utils (make test installs it)")

FEATURES = ("debt_to_income", "housing_expense_to_income", "loan_to_value", "consumer_credit_history",
            "mortgage_credit_history", "public_bad_credit_record", "mortgage_insurance_denied", "self_employed",
            "condominium")
DENIED = dict(zip(FEATURES, ("1.2", "0.9", "1.3", "6", "4", "yes", "yes", "no", "no")))
APPROVED = dict(zip(FEATURES, ("0.2", "0.15", "0.5", "1", "1", "no", "no", "no", "no")))
NOTICE_DATE = "2026-03-02"
KEY = "cluster-test-audit-key-" + "y" * 24


def applications() -> list[dict]:
    """30 rows: denials, approvals, an invalid row, an incomplete row, and a row repeating row 2 (same
    application id and content) in another partition."""
    rows = []
    for i in range(30):
        row = dict(DENIED if i % 3 else APPROVED)
        row["debt_to_income"] = f"{(0.6 + i / 40) if i % 3 else 0.1 + i / 200:.3f}"
        row |= {"application_id": f"C-{i}", "applicant_name": f"Applicant {i}", "applicant_address": f"{i} Elm Road"}
        rows.append(row)
    rows[7]["debt_to_income"] = "-1"
    rows[11]["loan_to_value"] = ""
    rows[25] = dict(rows[1])
    return rows


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A SQLite audit store of the test's own, named by the environment (the workers inherit it)."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    for name, value in (("LENDSAFE_DATABASE_URL", url), ("LENDSAFE_AUDIT_KEY", KEY),
                        ("LENDSAFE_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))):
        monkeypatch.setenv(name, value)
    return url


def notices(*args: str) -> int:
    return main(["notices", *args, "--writer", "template", "--notice-date", NOTICE_DATE])


def pdfs(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.pdf")}


def without_audit_ids(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "audit_id"} for row in rows]


def check_complete(out: Path, url: str, rows: int) -> None:
    """Every application has exactly one manifest or error line, each record one line, the chain verifies."""
    manifest, errors = read_rows(out / "manifest.csv"), read_rows(out / "errors.csv")
    listed = sorted(int(r["data_row"]) for r in manifest + errors)
    assert listed == list(range(1, rows + 1))
    with AuditStore(url, key=KEY) as audit:
        records = audit.list(limit=None)
        assert audit.verify().ok
    keys = [r.content.get("issue_key") for r in records]
    assert len(keys) == len(set(keys)) == sum(1 for m in manifest if m["audit_id"]) + sum(1 for e in errors
                                                                                          if e["audit_id"])
    for row in manifest:
        if row["path"]:
            assert hashlib.sha256((out / row["path"]).read_bytes()).hexdigest() == row["sha256"]


# -------------------------------------------------------------- the --cluster value and the configured cluster

@pytest.mark.parametrize("text,spec", [("local:3", ClusterSpec(workers=3)), ("local", ClusterSpec(workers=os.cpu_count())),
                                       ("tcp://10.0.0.5:8786", ClusterSpec(address="tcp://10.0.0.5:8786")),
                                       ("tls://sched.example:8786", ClusterSpec(address="tls://sched.example:8786"))])
def test_cluster_values_name_local_workers_or_a_scheduler(text, spec):
    assert parse_cluster(text) == spec


@pytest.mark.parametrize("text", ["local:0", "local:two", "10.0.0.5:8786", "tcp://", "", "http://x:1"])
def test_other_cluster_values_are_refused_naming_the_forms(text, capsys):
    with pytest.raises(ConfigurationError, match="local, local:N"):
        parse_cluster(text)
    with pytest.raises(SystemExit) as exited:
        main(["notices", "x.csv", "--out", "o", "--cluster", text])
    assert exited.value.code == 2 and "argument --cluster: must be local, local:N" in capsys.readouterr().err


def test_partition_rows_without_a_cluster_is_refused(store, tmp_path, capsys):
    source = write_csv(tmp_path / "apps.csv", applications())
    assert notices(str(source), "--out", str(tmp_path / "out"), "--partition-rows", "5") == 2
    assert "--partition-rows applies to a cluster run" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_the_configured_cluster_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("LENDSAFE_CLUSTER", raising=False)
    with pytest.raises(ConfigurationError, match="set LENDSAFE_CLUSTER"):
        configured_cluster()
    monkeypatch.setenv("LENDSAFE_CLUSTER", "tcp://127.0.0.1:8786")
    assert configured_cluster() == "tcp://127.0.0.1:8786"


def test_a_worker_writing_to_another_audit_store_refuses_to_issue(store, tmp_path):
    client = StoreIdentity("sqlite:////elsewhere/audit.db", "0123456789abcdef", "/elsewhere/audit.db.checkpoint")
    plugin = IssuerPlugin(BatchJob(writer="template").fixed(), client)
    with pytest.raises(ConfigurationError, match="another audit store than the client: audit store") as refused:
        plugin.setup()
    assert "audit key id" in str(refused.value) and "LENDSAFE_DATABASE_URL" in str(refused.value)
    assert plugin.issuer is None


def test_an_unreachable_scheduler_is_an_error_naming_it_and_writes_nothing(store, tmp_path, capsys):
    from pg_server import free_port

    source = write_csv(tmp_path / "apps.csv", applications())
    address = f"tcp://127.0.0.1:{free_port()}"
    assert notices(str(source), "--out", str(tmp_path / "out"), "--cluster", address) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the Dask scheduler at {address}" in err and "dask scheduler" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    assert notices(str(tmp_path / "absent.csv"), "--out", str(tmp_path / "out"), "--cluster", address) == 2
    assert "applications input not found" in capsys.readouterr().err, "a missing input is named before the cluster"


# -------------------------------------------------------------- a local cluster: same bytes, nothing twice

def test_a_local_cluster_issues_the_same_bytes_as_one_process_and_a_rerun_issues_nothing(store, tmp_path, capsys,
                                                                                        monkeypatch):
    source = write_csv(tmp_path / "apps.csv", applications())
    monkeypatch.setenv("LENDSAFE_DATABASE_URL", f"sqlite:///{tmp_path / 'single.db'}")
    assert notices(str(source), "--out", str(tmp_path / "single")) == 0
    monkeypatch.setenv("LENDSAFE_DATABASE_URL", store)
    capsys.readouterr()
    assert notices(str(source), "--out", str(tmp_path / "cluster"), "--cluster", "local:2",
                   "--partition-rows", "4") == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    single, cluster = tmp_path / "single", tmp_path / "cluster"
    assert pdfs(cluster) == pdfs(single) and len(pdfs(cluster)) == summary["notices"] + summary["incomplete"] > 10
    assert without_audit_ids(read_rows(cluster / "manifest.csv")) == without_audit_ids(read_rows(single / "manifest.csv"))
    assert without_audit_ids(read_rows(cluster / "errors.csv")) == without_audit_ids(read_rows(single / "errors.csv"))
    errors = {e["data_row"]: e["problems"] for e in read_rows(cluster / "errors.csv")}
    assert sorted(errors) == ["26", "8"] and errors["8"].startswith("debt_to_income must be between 0 and 3")
    assert errors["26"].startswith("repeats data_row 2 (same application_id and content)")
    assert "cluster: 2 worker(s), 8 partition(s) of up to 4 rows" in captured.err and "Traceback" not in captured.err
    assert "done: 28 rows listed" in captured.err.splitlines()[-1]
    check_complete(cluster, store, 30)
    import pyarrow.parquet as pq

    table = pq.read_table(cluster / "manifest.parquet").to_pylist()
    assert [{k: str(v) for k, v in row.items()} for row in table] == read_rows(cluster / "manifest.csv")

    with AuditStore(store, key=KEY) as audit:
        before = audit.count()
    assert notices(str(source), "--out", str(cluster), "--cluster", "local:2", "--partition-rows", "4") == 0
    again = json.loads(capsys.readouterr().out)
    assert again["resumed"] == again["processed"] == 28 and again["errors"] == 2
    with AuditStore(store, key=KEY) as audit:
        assert audit.count() == before, "a rerun records nothing"
    assert pdfs(cluster) == pdfs(single)
    check_complete(cluster, store, 30)


def test_the_library_call_runs_a_parquet_folder_on_the_configured_cluster(store, tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = applications()[:12]
    parts = tmp_path / "parts"
    parts.mkdir()
    for n in range(0, 12, 5):
        pq.write_table(pa.Table.from_pylist(rows[n:n + 5]), parts / f"part.{n // 5}.parquet")
    monkeypatch.setenv("LENDSAFE_CLUSTER", "local:2")
    seen, started = [], []
    result = run_on_cluster(parts, tmp_path / "out", BatchJob(writer="template"), progress=lambda *a: seen.append(a),
                            rows_per_partition=3, on_start=started.append)
    assert result.processed + len(result.errors) == 12 and not result.failed
    assert [p.first_row for p in started[0].partitions] == [1, 4, 6, 9, 11]
    assert seen[0][:2] == (0, 12) and seen[-1][:2] == (12, 12)
    assert [done for done, *_ in seen] == sorted(done for done, *_ in seen)
    check_complete(tmp_path / "out", store, 12)


@pytest.mark.postgres
def test_a_local_cluster_writes_one_chain_to_postgresql(postgres, tmp_path, monkeypatch, capsys):
    url = postgres.new_database()
    for name, value in (("LENDSAFE_DATABASE_URL", url), ("LENDSAFE_AUDIT_KEY", KEY),
                        ("LENDSAFE_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))):
        monkeypatch.setenv(name, value)
    source = write_csv(tmp_path / "apps.csv", applications())
    started = []
    result = run_on_cluster(source, tmp_path / "out", BatchJob(writer="template"), "local:2", rows_per_partition=3,
                            on_start=started.append)
    assert result.processed == 28 and not result.failed
    assert len({done.worker for done in started[0].done}) == 2, "both workers wrote to the store"
    check_complete(tmp_path / "out", url, 30)
