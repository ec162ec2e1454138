"""Notices on a Dask cluster: the input cut into partitions, each issued on a worker, the partitions'
manifests merged into the batch folder's.

``run_on_cluster(source, out_dir, job, cluster)`` is the batch of ``lendsafe.issue.batch.run_batch``
spread over the workers of a ``distributed`` cluster: ``local`` / ``local:N`` (a ``LocalCluster`` of N
single-threaded worker processes on this machine) or the address of a scheduler started with
``dask scheduler`` (workers: ``dask worker ADDRESS``). The client scans the input (``inputs.scan_input``),
takes the folder's lock and batch id, and submits one task per partition. Every worker loads the models
once (``IssuerPlugin``, registered before the first task) and issues its partitions with
``batch.issue_rows``: the same keys, document ids and chain rules as one process, so the same input and
``notice_date`` give byte-identical notices. Each partition lists its rows in its own manifest; the client
merges them into manifest.csv, errors.csv and manifest.parquet.

Nothing is lost, nothing issued twice: a partition whose worker dies is run again by Dask on another
worker and resumes from its manifest and the audit store's issue keys; a rerun of the same command does
the same for the whole batch. Workers write to the audit store their own environment names
(``LENDSAFE_DATABASE_URL``, ``LENDSAFE_AUDIT_KEY``, ``LENDSAFE_AUDIT_CHECKPOINT_DIR``; no secret crosses the
network): a worker whose store, audit key or checkpoint differs from the client's refuses to issue.
The input and the output folder must be at the same path on every worker (a shared filesystem).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lendsafe.audit.store import AuditStore
from lendsafe.canonical import canonical_json
from lendsafe.config import Settings
from lendsafe.errors import ConfigurationError, LendSafeError
from lendsafe.explain.pipeline import Pipeline
from lendsafe.issue.batch import Progress, ProgressMeter, issue_key, issue_rows
from lendsafe.issue.batchfolder import BatchError, BatchFolder, BatchResult, PartFolder, RowId
from lendsafe.issue.inputs import (Partition, check_input, default_rows_per_partition, read_partition, rows_in,
                                   scan_input)
from lendsafe.issue.issuer import Issuer, default_actor, open_audit_store
from lendsafe.notice.settings import NoticeSettings
from lendsafe.redaction import printable, redact_url

from distributed import WorkerPlugin      # the cluster's own module: imported only by a cluster run

CLUSTER_ENV = "LENDSAFE_CLUSTER"          # the cluster the dashboard's batch page submits to
CONNECT_TIMEOUT_S = 10                    # to reach a scheduler
WORKERS_TIMEOUT_S = 120                   # for a scheduler's first worker to join
LOCAL_PREFIX = "local"
SCHEDULER_SCHEMES = ("tcp://", "tls://", "ws://", "wss://", "inproc://", "ucx://")
CLUSTER_FORMS = "local, local:N (N worker processes) or a scheduler address such as tcp://HOST:8786"


# ----------------------------------------------------------------------------- what to run, where

@dataclass(frozen=True)
class ClusterSpec:
    """A ``--cluster`` value: local workers (how many) or a scheduler's address."""

    address: str = ""         # "" for a local cluster
    workers: int = 0          # local workers (0: one per core)

    @property
    def local(self) -> bool:
        return not self.address

    def describe(self) -> str:
        return f"local cluster of {self.workers} workers" if self.local else f"scheduler {self.address}"


def parse_cluster(text: str) -> ClusterSpec:
    """``local`` (one worker per core), ``local:N`` or a scheduler address; ConfigurationError otherwise."""
    text = (text or "").strip()
    if text == LOCAL_PREFIX or text.startswith(LOCAL_PREFIX + ":"):
        count = text.partition(":")[2] or str(os.cpu_count() or 1)
        if not count.isdigit() or int(count) < 1:
            raise ConfigurationError(f"--cluster must be {CLUSTER_FORMS}, N a whole number from 1; "
                                     f"got {printable(text)[:80]!r}")
        return ClusterSpec(workers=int(count))
    if text.startswith(SCHEDULER_SCHEMES) and len(text.split("://", 1)[1]) > 0:
        return ClusterSpec(address=text)
    raise ConfigurationError(f"--cluster must be {CLUSTER_FORMS}; got {printable(text)[:80]!r}")


def configured_cluster() -> str:
    """The cluster ``LENDSAFE_CLUSTER`` names (what the dashboard submits to); ConfigurationError when unset."""
    text = os.environ.get(CLUSTER_ENV, "").strip()
    if not text:
        raise ConfigurationError(f"no cluster configured: set {CLUSTER_ENV} to {CLUSTER_FORMS}")
    parse_cluster(text)
    return text


@dataclass(frozen=True)
class BatchJob:
    """How every worker issues: the pipeline's dataset, reason reference and writer, the lender's notice
    settings, the notice date (fixed once for the whole batch), who issues and how rows are grouped."""

    dataset: str = "hmda"
    reference: str = "population"
    writer: str = "auto"                          # auto | lora | template (see Pipeline)
    notice_settings: NoticeSettings = field(default_factory=NoticeSettings)
    notice_date: dt.date | None = None            # None: today, fixed when the batch starts
    actor: str | None = None                      # None: batch:<user>
    incomplete: bool = True                       # notices of incompleteness (else errors) for rows lacking fields
    chunk_size: int = 8                           # rows decided together (batched generation)
    hold: Any = None                              # holds denials for review (see batch.run_batch); plain data

    def fixed(self) -> "BatchJob":
        """The job with its date and actor fixed (every worker prints the same date)."""
        from dataclasses import replace

        return replace(self, notice_date=self.notice_date or dt.date.today(),
                       actor=self.actor or default_actor("batch"))

    def settings(self) -> Settings:
        return Settings(dataset=self.dataset, **({"use_llm": False} if self.writer == "template" else {}))

    def pipeline(self) -> Pipeline:
        return Pipeline(self.settings(), dataset=self.dataset, reference=self.reference, writer=self.writer)


@dataclass(frozen=True)
class StoreIdentity:
    """Which audit store a process writes to, said without secrets: the store (no password), the audit key's
    id and the checkpoint file."""

    store: str
    key_id: str
    checkpoint: str

    @classmethod
    def of(cls, store: AuditStore) -> "StoreIdentity":
        return cls(store.checkpoint.store, store.key.key_id, store.checkpoint.where)

    def differences(self, other: "StoreIdentity") -> list[str]:
        names = {"store": "audit store (LENDSAFE_DATABASE_URL)", "key_id": "audit key id (LENDSAFE_AUDIT_KEY)",
                 "checkpoint": "audit checkpoint (LENDSAFE_AUDIT_CHECKPOINT_DIR)"}
        return [f"{label} {getattr(other, name)!r}, the client's {getattr(self, name)!r}"
                for name, label in names.items() if getattr(self, name) != getattr(other, name)]


# ----------------------------------------------------------------------------- on a worker

class IssuerPlugin(WorkerPlugin):
    """Loads the pipeline and opens the audit store once per worker process (``setup``); the worker's
    partitions are issued one at a time with it. Registered with ``Client.register_plugin``; a worker that
    already loaded the same job for the same store keeps it (``idempotent``)."""

    idempotent = True

    def __init__(self, job: BatchJob, client_store: StoreIdentity):
        self.job, self.client_store = job, client_store
        digest = hashlib.sha256(canonical_json([repr(job), repr(client_store)]).encode("utf-8")).hexdigest()
        self.name = f"lendsafe-issuer-{digest[:12]}"
        self.issuer: Issuer | None = None
        self.load_seconds = 0.0
        self.lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"job": self.job, "client_store": self.client_store, "name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["job"], state["client_store"])

    def setup(self, worker: Any = None) -> None:
        """Open the audit store this worker's environment names (refused when it is not the client's), then
        load every model a decision needs."""
        started = time.perf_counter()
        pipeline = self.job.pipeline()
        audit = open_audit_store(pipeline.settings)
        differences = self.client_store.differences(StoreIdentity.of(audit))
        if differences:
            audit.close()
            where = getattr(worker, "address", "this worker")
            raise ConfigurationError(f"worker {where} writes to another audit store than the client: "
                                     + "; ".join(differences) + ". Give every worker the client's "
                                     "LENDSAFE_DATABASE_URL, LENDSAFE_AUDIT_KEY and LENDSAFE_AUDIT_CHECKPOINT_DIR")
        pipeline.load()
        self.issuer = Issuer(pipeline, notice_settings=self.job.notice_settings, audit=audit, actor=self.job.actor)
        self.load_seconds = time.perf_counter() - started

    def teardown(self, worker: Any = None) -> None:
        if self.issuer is not None and self.issuer.audit is not None:
            self.issuer.audit.close()


@dataclass(frozen=True)
class PartitionDone:
    """What a worker reports for one partition (its rows are in its own manifest and error list)."""

    name: str
    rows: int
    listed: int
    errors: int
    resumed: tuple[int, ...]      # data rows found done by an earlier run or batch
    seconds: float
    worker: str
    load_seconds: float


def part_name(partition: Partition) -> str:
    return f"part-{partition.first_row:012d}"


def issue_partition(partition: Partition, out_dir: str, plan: str, plugin_name: str) -> PartitionDone:
    """Issue one partition on this worker (a Dask task): its PDFs into `out_dir`, its rows into its own
    manifest and error list (errors are tried again on every attempt)."""
    from distributed import get_worker

    worker = get_worker()
    plugin = worker.plugins.get(plugin_name)
    if plugin is None or plugin.issuer is None:
        raise ConfigurationError(f"worker {worker.address} has not loaded the models (see its log)")
    started = time.perf_counter()
    with plugin.lock:
        folder = PartFolder(out_dir, plan, part_name(partition))
        folder.batch_id()                               # refuses a folder this worker does not see
        rows = read_partition(partition, plugin.job.dataset)
        folder.errors.reset()
        result = issue_rows(plugin.issuer, folder, rows, plugin.job.dataset, plugin.job.notice_date,
                            ProgressMeter(None, len(rows)), chunk_size=plugin.job.chunk_size,
                            incomplete=plugin.job.incomplete, hold=plugin.job.hold)
    return PartitionDone(partition.name, len(rows), len(result.rows), len(result.errors), tuple(result.resumed_rows),
                         time.perf_counter() - started, worker.address, plugin.load_seconds)


# ----------------------------------------------------------------------------- on the client

@contextmanager
def connect(cluster: str | Any) -> Iterator[Any]:
    """A ``distributed.Client`` of the cluster a ``--cluster`` value names, closed (a local cluster shut
    down) on leaving (a ``Client`` given is used as it is and left open); ConfigurationError naming the
    address when no scheduler answers there."""
    import logging

    from distributed import Client, LocalCluster

    if isinstance(cluster, Client):
        yield cluster
        return
    spec = parse_cluster(cluster)
    if spec.local:
        with LocalCluster(n_workers=spec.workers, threads_per_worker=1, processes=True, silence_logs=logging.ERROR,
                          dashboard_address=":0") as local, Client(local) as client:
            yield client
        return
    try:
        client = Client(spec.address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise ConfigurationError(f"cannot reach the Dask scheduler at {printable(redact_url(spec.address))} within "
                                 f"{CONNECT_TIMEOUT_S} s ({printable(str(exc).splitlines()[0] if str(exc) else exc)[:160]}); "
                                 "start one with `dask scheduler` and workers with `dask worker ADDRESS`, or check "
                                 "--cluster") from None
    with client:
        _wait_for_workers(client, spec.address)
        yield client


def _has_dashboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _wait_for_workers(client: Any, address: str) -> None:
    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
    except (TimeoutError, OSError):
        raise ConfigurationError(f"no worker joined the scheduler at {printable(address)} within {WORKERS_TIMEOUT_S} s; "
                                 f"start workers with `dask worker {printable(address)}`") from None


def dashboard_link(client: Any, local: bool = False) -> str | None:
    """The Dask dashboard's address, when the scheduler runs one (a local one shows pages only with bokeh)."""
    try:
        services = client.scheduler_info().get("services", {})
    except (OSError, TimeoutError, KeyError):
        return None
    return client.dashboard_link if "dashboard" in services and (not local or _has_dashboard()) else None


def _plan(partitions: list[Partition]) -> str:
    """Names one way of cutting the input (the partitions' files, places and sizes)."""
    text = canonical_json([[p.kind, p.path, p.start, p.records, p.first_row, list(p.fingerprint)]
                           for p in partitions])
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _workers(client: Any) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))


@dataclass
class ClusterRun:
    """What the client knows about a cluster run: partitions, the cluster, the outcome of every partition."""

    partitions: list[Partition]
    workers: int
    dashboard: str | None
    done: list[PartitionDone] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)        # partition name -> why
    seconds: float = 0.0
    plan: str = ""


def run_on_cluster(source: Path | str, out_dir: Path | str, job: BatchJob, cluster: str | Any = None,
                   progress: Progress | None = None, *, rows_per_partition: int | None = None,
                   on_start: Callable[[ClusterRun], None] | None = None) -> BatchResult:
    """Issue every row of `source` (CSV, Parquet file or folder of Parquet parts) on the Dask cluster
    `cluster` names (a ``--cluster`` value, default ``LENDSAFE_CLUSTER``; or an open ``distributed.Client``)
    into `out_dir`, a folder every worker sees.

    `progress(done, total, rows_per_s, eta_s)` is called at the start and as partitions finish;
    `on_start(run)` once the cluster is ready (workers, dashboard link, partitions). The result lists every
    row, as ``run_batch``'s does; ``result.failed`` names partitions no worker could finish (their rows are
    errors: run the same call again to resume them). ConfigurationError (before anything is issued) for an
    unreachable scheduler, a worker that writes to another audit store, or a folder or input a worker
    does not see."""
    check_input(source)
    job, cluster = job.fixed(), cluster or configured_cluster()
    spec = parse_cluster(cluster) if isinstance(cluster, str) else ClusterSpec(address="client")
    with open_audit_store(job.settings()) as audit:        # the schema exists before the workers start
        identity = StoreIdentity.of(audit)
    with connect(cluster) as client:
        size = rows_per_partition or default_rows_per_partition(source, spec.workers or _workers(client),
                                                                job.chunk_size)
        partitions = scan_input(source, size)              # a refused input writes nothing
        with BatchFolder(out_dir) as folder:
            folder.batch_id()
            run = ClusterRun(partitions, _workers(client), dashboard_link(client, spec.local))
            if on_start is not None:
                on_start(run)
            _issue(client, run, folder, job, identity, progress)
            return _merged(folder, run, job)


def _issue(client: Any, run: ClusterRun, folder: BatchFolder, job: BatchJob, identity: StoreIdentity,
           progress: Progress | None) -> None:
    """Load the models on every worker, submit a task per partition and follow them to the end."""
    from distributed import as_completed

    started = time.perf_counter()
    plugin = IssuerPlugin(job, identity)
    client.register_plugin(plugin, name=plugin.name)
    plan = _plan(run.partitions)
    meter = ProgressMeter(progress, rows_in(run.partitions))
    meter.start(0)
    futures = {client.submit(issue_partition, partition, str(folder.path.resolve()), plan, plugin.name,
                             key=f"lendsafe-{plan}-{part_name(partition)}", pure=False): partition
               for partition in run.partitions}
    for future in as_completed(futures):
        _finished(future, futures[future], run, meter)
    run.seconds = time.perf_counter() - started
    run.plan = plan


def _finished(future: Any, partition: Partition, run: ClusterRun, meter: ProgressMeter) -> None:
    """Note one finished task: its partition done, or failed (a LendSafeError, such as a worker that does not see
    the folder or writes to another store, stops the run: every partition would meet it)."""
    if future.status == "finished":
        run.done.append(future.result())
    elif future.status == "error":
        error = future.exception()
        if isinstance(error, LendSafeError):
            raise error
        run.failed[partition.name] = f"{type(error).__name__}: {printable(str(error))[:300]}"
    else:
        run.failed[partition.name] = f"task {future.status}"
    meter.advance(partition.rows)


def _merged(folder: BatchFolder, run: ClusterRun, job: BatchJob) -> BatchResult:
    """The partitions' manifests and error lists merged into the folder's; the rows of a failed partition
    that no manifest lists are errors saying so."""
    result = folder.merge_parts(run.plan)
    resumed = {row for done in run.done for row in done.resumed} & {r.data_row for r in result.rows}
    result.resumed, result.resumed_rows = len(resumed), sorted(resumed)
    listed = {r.data_row for r in result.rows} | {e.data_row for e in result.errors}
    for partition in run.partitions:
        why = run.failed.get(partition.name)
        if why is None:
            continue
        result.failed.append(f"{partition.name}: {why}")
        result.errors += [BatchError.of(RowId.of(row), (f"not issued: its partition ({partition.name}) failed on the "
                                                        f"cluster ({why}); run the same command again to resume",),
                                        issue_key(row, job.dataset))
                          for row in read_partition(partition, job.dataset) if row.data_row not in listed]
    folder.finish(result)
    if not run.failed:
        folder.drop_other_plans(run.plan)
    return result
