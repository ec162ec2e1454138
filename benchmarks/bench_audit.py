"""Audit store throughput: records/s with 1 and 4 writer processes beside a bare SQLite insert.

Each configuration is a SQLite durability setting and a group size: group 1 is one ``record`` call
(one transaction, one fsync) per record; group 8 is ``record_many`` of 8 records per transaction,
the batch runner's default chunk (group commit). The baseline inserts the same canonical JSON payload
with the plain ``sqlite3`` module, the same number of rows per transaction, WAL and the same
``synchronous``, but no hashing, no chain-head read and no SQLAlchemy. Both are bound by fsync on a
shared disk whose speed drifts, so the 1-process store and the baseline write in alternating rounds,
and the 4-process run sits between two baseline runs. After each run the chain is verified and the
records are counted.

    python benchmarks/bench_audit.py [--records 10000] [--processes 4] [--configs FULL:1 FULL:8 NORMAL:1]

Writes benchmarks/results/audit.json.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lendsafe.audit.database import SQLITE_SYNCHRONOUS  # noqa: E402
from lendsafe.audit.records import AuditEntry, canonical_json  # noqa: E402
from lendsafe.audit.store import AuditStore  # noqa: E402
from lendsafe.decide.decision import Citation, Decision, Reason  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "audit.json"
FORK = multiprocessing.get_context("fork")
STAND_IN_PDF = b"%PDF-1.4 stand-in"
TARGET_RECORDS_PER_S = 500
BATCH_CHUNK = 8                  # lendsafe.issue.batch.run_batch's default chunk_size: one record_many per chunk
DEFAULT_CONFIGS = (("FULL", 1), ("FULL", BATCH_CHUNK), ("NORMAL", 1))


def sample_decision(n: int) -> Decision:
    """A denial with two reasons, one citation and an explanation: the size of a real record."""
    reasons = (
        Reason("DEBT_TO_INCOME", "Excessive obligations in relation to income", "dir", 0.52, "52%", 0.91,
               "12 CFR 1002, App. C, Form C-1"),
        Reason("CONSUMER_CREDIT_HISTORY", "Delinquent past or present credit obligations with others", "ccs", 5,
               "5", 0.44, "12 CFR 1002, App. C, Form C-1"),
    )
    return Decision(
        application={"dir": 0.52, "hir": 0.31, "lvr": 0.97, "ccs": 5, "mcs": 2, "pbcr": False, "dmi": False,
                     "self": False, "single": True, "uria": 3.1, "applicant_name": f"Applicant {n}"},
        dataset="hmda", decision="deny", risk=0.61, threshold=0.35, reference="population", reasons=reasons,
        contributions={"dir": 0.91, "ccs": 0.44, "lvr": 0.21, "hir": 0.05, "mcs": -0.05, "uria": 0.01},
        model={"dataset": "hmda", "sha256": "a" * 64, "threshold_version": "1"},
        citations=(Citation("12 CFR 1002.9(b)(2)", "Statement of specific reasons", "A creditor must ... " * 20),),
        explanation="Your application was denied mainly because your monthly debts are high compared with "
                    "your income, and because of delinquent credit obligations with other lenders.",
        writer="template", writer_reason="verified", verification={"passed": True, "checks": []},
        prompt_sha256="b" * 64, latency_ms=12.5,
        artifacts={"adapter": "c" * 64, "corpus": "d" * 64, "reasons_catalog": "e" * 64},
    )


def write_records(store: AuditStore, start: int, count: int, actor: str, group: int) -> None:
    """``count`` records: one ``record`` call each when ``group`` is 1, else ``record_many`` of ``group``."""
    for first in range(start, start + count, group):
        numbers = range(first, min(first + group, start + count))
        if group == 1:
            store.record(sample_decision(first), notice=None, notice_pdf=STAND_IN_PDF, actor=actor)
        else:
            store.record_many([AuditEntry(sample_decision(n), None, STAND_IN_PDF) for n in numbers], actor=actor)


def writer_process(url: str, count: int, actor: str, group: int) -> None:
    with AuditStore(url) as store:
        write_records(store, 0, count, actor, group)


class BareSqlite:
    """Plain sqlite3 inserts of the same payload, one transaction each (the baseline)."""

    def __init__(self, path: Path, synchronous: str):
        self.payload = canonical_json(sample_decision(0).to_dict())
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", f"synchronous={synchronous}"):
            self.conn.execute(f"PRAGMA {pragma}")
        self.conn.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, content TEXT NOT NULL)")

    def write(self, count: int, group: int) -> float:
        """Seconds taken to insert ``count`` rows, ``group`` rows per transaction."""
        start = time.perf_counter()
        for first in range(0, count, group):
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("INSERT INTO records (content) VALUES (?)",
                                  [(self.payload,)] * min(group, count - first))
            self.conn.execute("COMMIT")
        return time.perf_counter() - start


def interleaved_single(tmp: Path, count: int, rounds: int, synchronous: str, group: int) -> tuple[float, float]:
    """records/s of the bare baseline and of a 1-process store, written in alternating rounds so
    that a shared disk's changing fsync speed hits both alike."""
    bare, chunk = BareSqlite(tmp / "bare.db", synchronous), count // rounds
    bare_s = store_s = 0.0
    with AuditStore(_url(tmp, "one", synchronous)) as store:
        for round_index in range(rounds):
            bare_s += bare.write(chunk, group)
            start = time.perf_counter()
            write_records(store, round_index * chunk, chunk, "writer-0", group)
            store_s += time.perf_counter() - start
    return chunk * rounds / bare_s, chunk * rounds / store_s


def run_writers(url: str, count: int, processes: int, group: int) -> float:
    """Seconds for ``processes`` forked writers to record ``count`` records between them."""
    start = time.perf_counter()
    workers = [FORK.Process(target=writer_process, args=(url, count // processes, f"writer-{i}", group))
               for i in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if any(worker.exitcode != 0 for worker in workers):
        raise RuntimeError(f"a writer failed: exit codes {[w.exitcode for w in workers]}")
    return time.perf_counter() - start


def check_store(url: str, expected: int, processes: int, records_per_s: float) -> dict:
    """Count the records, verify the chain (timed) and put the run's figures together."""
    with AuditStore(url) as store:
        start = time.perf_counter()
        report = store.verify()
        verify_s = time.perf_counter() - start
        stored = store.count()
    return {"processes": processes, "records": expected, "stored": stored, "lost": expected - stored,
            "chain_verifies": report.ok, "records_per_s": round(records_per_s, 1),
            "verify_records_per_s": round(stored / verify_s, 1)}


def _url(tmp: Path, name: str, synchronous: str) -> str:
    return f"sqlite:///{tmp}/{name}.db?synchronous={synchronous}"


def measure(tmp: Path, records: int, processes: int, synchronous: str, group: int) -> dict:
    """Bare baseline and store figures for one durability setting and group size."""
    baseline, single_rate = interleaved_single(tmp, records, 10, synchronous, group)
    single = check_store(_url(tmp, "one", synchronous), records // 10 * 10, 1, single_rate)
    around = BareSqlite(tmp / "bare-around.db", synchronous)
    before = around.write(records // 10, group)
    concurrent_s = run_writers(_url(tmp, "many", synchronous), records, processes, group)
    after = around.write(records // 10, group)
    baseline_around = 2 * (records // 10) / (before + after)
    written = records // processes * processes
    concurrent = check_store(_url(tmp, "many", synchronous), written, processes, written / concurrent_s)
    return {"synchronous": synchronous, "records_per_transaction": group,
            "bare_sqlite_records_per_s": round(baseline, 1),
            "bare_sqlite_around_concurrent_run_records_per_s": round(baseline_around, 1),
            "store_1_process": single, f"store_{processes}_processes": concurrent,
            "ratio_1_process_vs_bare": round(single["records_per_s"] / baseline, 3),
            f"ratio_{processes}_processes_vs_bare": round(concurrent["records_per_s"] / baseline_around, 3)}


def config_name(synchronous: str, group: int) -> str:
    """Result key: ``synchronous_FULL`` (one record per transaction) or ``synchronous_FULL_group_8``."""
    return f"synchronous_{synchronous}" + (f"_group_{group}" if group > 1 else "")


def parse_config(text: str) -> tuple[str, int]:
    """``FULL:8`` -> ("FULL", 8); ``NORMAL`` -> ("NORMAL", 1)."""
    synchronous, _, group = text.upper().partition(":")
    if synchronous not in SQLITE_SYNCHRONOUS or not (group or "1").isdigit() or int(group or 1) < 1:
        raise argparse.ArgumentTypeError(f"expected SYNCHRONOUS[:GROUP] with SYNCHRONOUS in {SQLITE_SYNCHRONOUS} "
                                         f"and GROUP a positive integer; got {text!r}")
    return synchronous, int(group or 1)


def target_check(figures: dict, processes: int) -> dict:
    """Whether the concurrent run meets the issue's target: >= 500 records/s, none lost, chain verifies."""
    run = figures[f"store_{processes}_processes"]
    return {"records_per_s": run["records_per_s"], "lost": run["lost"], "chain_verifies": run["chain_verifies"],
            "met": run["records_per_s"] >= TARGET_RECORDS_PER_S and run["lost"] == 0 and run["chain_verifies"]}


def report(name: str, figures: dict, processes: int) -> None:
    group = figures["records_per_transaction"]
    print(f"-- synchronous={figures['synchronous']}, {group} record(s) per transaction")
    print(f"bare sqlite3 insert         {figures['bare_sqlite_records_per_s']:9.1f} records/s "
          "(baseline, interleaved with the 1-process run)")
    print(f"bare sqlite3 insert         {figures['bare_sqlite_around_concurrent_run_records_per_s']:9.1f} "
          f"records/s (baseline, before and after the {processes}-process run)")
    for key, ratio in (("store_1_process", "ratio_1_process_vs_bare"),
                       (f"store_{processes}_processes", f"ratio_{processes}_processes_vs_bare")):
        run = figures[key]
        print(f"audit store, {run['processes']} process(es)   {run['records_per_s']:9.1f} records/s "
              f"({figures[ratio]:.2f}x bare); stored {run['stored']}, lost {run['lost']}, "
              f"chain verifies: {run['chain_verifies']}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000, help="records per run (default 10000)")
    parser.add_argument("--processes", type=int, default=4, help="writers in the concurrent run (default 4)")
    parser.add_argument("--configs", nargs="+", type=parse_config, default=list(DEFAULT_CONFIGS),
                        metavar="SYNCHRONOUS[:GROUP]",
                        help="SQLite durability and records per transaction to measure (default FULL:1 FULL:8 "
                             "NORMAL:1: the store's durable default per record, in groups of 8 as batches "
                             "write, and per record with NORMAL)")
    args = parser.parse_args(argv)
    result = {"backend": "sqlite, WAL; group 1 = one transaction per record (record), "
                         "group N = N records per transaction (record_many)",
              "records": args.records, "processes": args.processes,
              "target": f">= {TARGET_RECORDS_PER_S} records/s on SQLite with {args.processes} processes; "
                        "none lost; chain verifies",
              "machine": {"python": platform.python_version(), "cpus": multiprocessing.cpu_count(),
                          "sqlite": sqlite3.sqlite_version}}
    for synchronous, group in args.configs:
        name = config_name(synchronous, group)
        with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
            result[name] = measure(Path(tmp), args.records, args.processes, synchronous, group)
        report(name, result[name], args.processes)
    result["target_met"] = {config_name(*config): target_check(result[config_name(*config)], args.processes)
                            for config in args.configs}
    for name, check in result["target_met"].items():
        print(f"target {TARGET_RECORDS_PER_S}/s with {args.processes} processes, {name}: "
              f"{'met' if check['met'] else 'NOT met'} ({check['records_per_s']} records/s)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return result


if __name__ == "__main__":
    main()
