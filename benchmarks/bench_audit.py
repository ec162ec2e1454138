"""Audit store throughput: records/s with 1 and 4 writer processes beside a bare SQLite insert, with the
benchmark method (``benchmarks/method.py``).

Each configuration is a SQLite durability setting and a group size: group 1 is one ``record`` call
(one transaction, one fsync) per record; group 8 is ``record_many`` of 8 records per transaction,
the batch runner's default chunk (group commit). The baseline inserts the same canonical JSON payload
with the plain ``sqlite3`` module, the same number of rows per transaction, WAL and the same
``synchronous``, but no hashing, no chain-head read and no SQLAlchemy. All are bound by fsync on a shared
disk whose speed drifts, so the three contenders take turns, a chunk of records each per call: the bare
baseline, the store from 1 process, and the store from 4 forked writer processes (forked per call, as a
batch of workers would start). After the rounds every record is counted and the chain is verified.

Target (issue 18): >= 500 records/s on SQLite with 4 processes; none lost; chain verifies.
Run: ``python benchmarks/bench_audit.py [--quick] [--chunk 1000] [--processes 4]
[--configs FULL:1 FULL:8 NORMAL:1] [--force]``.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import method  # noqa: E402
from lendsafe.audit.database import SQLITE_SYNCHRONOUS  # noqa: E402
from lendsafe.audit.records import AuditEntry, canonical_json  # noqa: E402
from lendsafe.audit.store import AuditStore  # noqa: E402
from lendsafe.decide.decision import Citation, Decision, Reason  # noqa: E402

FORK = multiprocessing.get_context("fork")
STAND_IN_PDF = b"%PDF-1.4 stand-in"
TARGET_RECORDS_PER_S = 500
BATCH_CHUNK = 8                  # lendsafe.issue.batch.run_batch's default chunk_size: one record_many per chunk
DEFAULT_CONFIGS = (("FULL", 1), ("FULL", BATCH_CHUNK), ("NORMAL", 1))
ROUNDS = {"default": {"chunk": 1000, "min_rounds": 3, "max_rounds": 8},
          "quick": {"chunk": 100, "min_rounds": 2, "max_rounds": 2}}


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


class Contenders:
    """The three contenders of one configuration; each call writes ``chunk`` records, and they are counted."""

    def __init__(self, tmp: Path, synchronous: str, group: int, chunk: int, processes: int):
        self.synchronous, self.group, self.chunk, self.processes = synchronous, group, chunk, processes
        self.bare = BareSqlite(tmp / "bare.db", synchronous)
        self.one_url, self.many_url = _url(tmp, "one", synchronous), _url(tmp, "many", synchronous)
        self.store = AuditStore(self.one_url)
        self.written = {"store_1_process": 0, "store_processes": 0}

    def bare_sqlite(self) -> None:
        self.bare.write(self.chunk, self.group)

    def store_1_process(self) -> None:
        start = self.written["store_1_process"]
        write_records(self.store, start, self.chunk, "writer-0", self.group)
        self.written["store_1_process"] += self.chunk

    def store_processes(self) -> None:
        run_writers(self.many_url, self.chunk, self.processes, self.group)
        self.written["store_processes"] += self.chunk // self.processes * self.processes

    def table(self) -> dict:
        return {"bare_sqlite": self.bare_sqlite, "store_1_process": self.store_1_process,
                f"store_{self.processes}_processes": self.store_processes}

    def checks(self) -> dict:
        """Every record counted and the chain verified, for both stores."""
        self.store.close()
        return {"store_1_process": check_store(self.one_url, self.written["store_1_process"]),
                f"store_{self.processes}_processes": check_store(self.many_url, self.written["store_processes"])}


def check_store(url: str, expected: int) -> dict:
    """Count the records and verify the chain (timed)."""
    with AuditStore(url) as store:
        start = time.perf_counter()
        report = store.verify()
        verify_s = time.perf_counter() - start
        stored = store.count()
    return {"records": expected, "stored": stored, "lost": expected - stored, "chain_verifies": bool(report.ok),
            "verify_records_per_s": round(stored / verify_s, 1)}


def measure(tmp: Path, synchronous: str, group: int, processes: int, rounds: dict) -> tuple[dict, dict]:
    """Records/s of the three contenders, taking turns, and the stores' checks, for one configuration."""
    contenders = Contenders(tmp, synchronous, group, rounds["chunk"], processes)
    timings = method.interleave(contenders.table(), calls=1, min_rounds=rounds["min_rounds"],
                                max_rounds=rounds["max_rounds"])
    figures = method.summaries(timings, baseline="bare_sqlite")
    for name, figure in figures.items():
        written = rounds["chunk"] // processes * processes if name.endswith("processes") else rounds["chunk"]
        figure["records_per_call"] = written
        figure["records_per_s"] = round(written / figure["p50_ms"] * 1000, 1)
    for name, check in contenders.checks().items():
        figures[name].update(check)
    figures["settings"] = {"synchronous": synchronous, "records_per_transaction": group, "processes": processes}
    return figures, {k: t.spread() for k, t in timings.items()}


def _url(tmp: Path, name: str, synchronous: str) -> str:
    return f"sqlite:///{tmp}/{name}.db?synchronous={synchronous}"


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
    """>= 500 records/s with ``processes`` writers, none lost, the chain verifies."""
    run = figures[f"store_{processes}_processes"]
    check = method.target(run["records_per_s"], TARGET_RECORDS_PER_S, at_most=False, lost=run["lost"],
                          chain_verifies=run["chain_verifies"])
    return {**check, "met": check["met"] and run["lost"] == 0 and run["chain_verifies"]}


def readme_row(figures: dict, processes: int) -> dict[str, str]:
    settings, bare, one = figures["settings"], figures["bare_sqlite"], figures["store_1_process"]
    many = figures[f"store_{processes}_processes"]
    group = settings["records_per_transaction"]
    return {"what": f"audit store, {processes} writer processes, SQLite synchronous={settings['synchronous']}, "
                    f"{group} record{'s' if group > 1 else ''} per transaction (records/s, p50 call)",
            "measured": f"{many['records_per_s']:,.0f} records/s (target >= {TARGET_RECORDS_PER_S}: "
                        f"{'met' if target_check(figures, processes)['met'] else 'NOT met'}), {many['lost']} lost, chain verifies: "
                        f"{'yes' if many['chain_verifies'] else 'NO'}; 1 process {one['records_per_s']:,.0f}/s",
            "baseline": f"bare `sqlite3` insert, same payload and transaction size: {bare['records_per_s']:,.0f}/s"}


def main(argv: list[str] | None = None) -> int:
    parser = method.parser(__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 records per call, 2 rounds (a check that it runs)")
    parser.add_argument("--chunk", type=int, help="records per call of each contender (default 1000)")
    parser.add_argument("--processes", type=int, default=4, help="writers in the concurrent contender (default 4)")
    parser.add_argument("--configs", nargs="+", type=parse_config, default=list(DEFAULT_CONFIGS),
                        metavar="SYNCHRONOUS[:GROUP]",
                        help="SQLite durability and records per transaction to measure (default FULL:1 FULL:8 "
                             "NORMAL:1: the store's durable default per record, in groups of 8 as batches "
                             "write, and per record with NORMAL)")
    args = parser.parse_args(argv)
    rounds = dict(ROUNDS["quick" if args.quick else "default"])
    rounds["chunk"] = args.chunk or rounds["chunk"]
    run = method.Run("audit", "sqlalchemy")
    figures, spreads, rows, goals = {}, {}, [], {}
    for synchronous, group in args.configs:
        name = config_name(synchronous, group)
        with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
            figures[name], spread = measure(Path(tmp), synchronous, group, args.processes, rounds)
        spreads.update({f"{name} {k}": v for k, v in spread.items()})
        rows.append(readme_row(figures[name], args.processes))
        goals[name] = target_check(figures[name], args.processes)
        print(name, {k: v["records_per_s"] for k, v in figures[name].items() if "records_per_s" in v})
    method.print_targets(goals)
    run.finish(figures, rows, spreads, force=args.force, targets=goals, sqlite=sqlite3.sqlite_version,
               backend="sqlite, WAL; group 1 = one transaction per record (record), group N = N records per "
                       "transaction (record_many)", rounds=rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
