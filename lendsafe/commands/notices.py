"""`lendsafe notice`, `lendsafe notices` and `lendsafe check-notice`.

The scoring flags (`--dataset`, `--reference`, `--writer`) have the names and choices of
`lendsafe explain`. Without `--notice-settings` every notice is stamped SPECIMEN.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from lendsafe.redaction import printable


def register(subparsers: argparse._SubParsersAction) -> None:
    one = subparsers.add_parser("notice", help="decide one application (JSON) and write its adverse-action notice PDF")
    one.add_argument("file", help="application JSON file, or - for standard input")
    one.add_argument("--out", type=Path, default=Path("notice.pdf"), help="PDF to write (default notice.pdf)")
    one.add_argument("--decision-out", type=Path, help="also write the decision JSON (input of check-notice)")
    one.add_argument("--counteroffer", help="terms offered instead (makes it a counteroffer notice)")
    one.add_argument("--incomplete", action="store_true",
                     help="when required fields are missing, write a notice of incompleteness (Reg B 1002.9(c)) "
                          "naming them instead of failing")
    _add_common(one)
    one.set_defaults(func=run_notice)

    many = subparsers.add_parser(
        "notices", help="decide every row of a CSV or Parquet input; one notice PDF per denial + manifest",
        description="Decides every application of INPUT and writes a notice PDF per denial, manifest.csv, "
                    "manifest.parquet and errors.csv into --out. Run again into the same folder to resume: rows "
                    "already issued are listed, never issued twice. With --cluster the rows are issued on a Dask "
                    "cluster (INPUT and --out on a filesystem every worker mounts; see README, Running on a cluster).")
    many.add_argument("csv", type=Path, metavar="INPUT",
                      help="applications: a CSV file, a Parquet file or a folder of Parquet parts (one application "
                           "per row)")
    many.add_argument("--out", type=Path, required=True, help="output folder for the PDFs and manifest.csv")
    many.add_argument("--no-incomplete", dest="incomplete", action="store_false",
                      help="report rows that lack required fields as errors instead of writing notices of "
                           "incompleteness for them")
    many.add_argument("--cluster", type=_cluster,
                      help="issue on a Dask cluster: local (a worker per core), local:N (N workers on this machine) "
                           "or a scheduler address tcp://HOST:PORT (started with `dask scheduler`); default: this "
                           "process")
    many.add_argument("--partition-rows", type=_positive, metavar="N",
                      help="rows per cluster partition (default: about four partitions per worker, at most 1,000)")
    _add_common(many)
    many.set_defaults(func=run_notices)

    check = subparsers.add_parser(
        "check-notice", help="check a notice PDF's text against the notice as issued (audit record or decision JSON)",
        description="Compares the PDF's own text with the notice as it was issued: its content, date and "
                    "document id as recorded in the audit store, for the decision it was issued for. "
                    "Give --record N (the audit_id `lendsafe notice` printed), or --decision FILE (what "
                    "`lendsafe notice --decision-out` wrote): a decision's issued notice is then found in the "
                    "audit store (the record of that decision with this PDF's bytes, or its only record); an "
                    "incompleteness record carries its own notice date and document id.")
    check.add_argument("pdf", type=Path, help="notice PDF")
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--record", type=_record_id, metavar="N",
                        help="audit record the notice was issued under (its decision, notice and settings)")
    source.add_argument("--decision", type=Path,
                        help="decision JSON (Decision.to_dict()) whose issued notice is in the audit store, or the "
                             "incompleteness record `notice --incomplete --decision-out` wrote")
    check.add_argument("--notice-settings", type=Path,
                       help="notice settings TOML/JSON the notice must have been made with (default: with --record "
                            "the settings recorded with it; with --decision the demonstration settings)")
    check.add_argument("--db", dest="database_url",
                       help="audit store URL (default: LENDSAFE_DATABASE_URL or SQLite under LENDSAFE_HOME)")
    check.set_defaults(func=run_check)


def _cluster(text: str) -> str:
    """A --cluster value, checked when the command line is read."""
    from lendsafe.errors import ConfigurationError
    from lendsafe.issue.cluster import parse_cluster

    try:
        parse_cluster(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--cluster ")) from None
    return text


def _positive(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1; got {printable(text)[:40]!r}")
    return int(text)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="hmda", help="dataset whose model scores it (default hmda)")
    parser.add_argument("--reference", default="population", choices=("population", "cutoff"),
                        help="reason reference (Reg B comment 9(b)(2)-5)")
    parser.add_argument("--writer", default="auto", choices=("auto", "lora", "template"),
                        help="auto: LoRA writer with verified fallback; template: deterministic composer only")
    parser.add_argument("--notice-settings", type=Path,
                        help="lender settings TOML/JSON (creditor, agency, ...; see data/examples/lender.toml); "
                             "without them every notice is stamped SPECIMEN")
    parser.add_argument("--notice-date", type=dt.date.fromisoformat, help="date printed on the notice (default today)")
    parser.add_argument("--no-llm", action="store_true", help="same as --writer template")
    parser.add_argument("--actor", help="who issues the notices, kept in the audit store (default cli:<user>)")
    review = parser.add_mutually_exclusive_group()
    review.add_argument("--hold-for-review", action="store_true",
                        help="hold every denial for review (`lendsafe review`) instead of issuing its notice")
    review.add_argument("--no-review", action="store_true",
                        help="issue at once, even denials the review policy would hold (LENDSAFE_REVIEW_*: texts "
                             "that needed the retry or the composer fallback, risk near the cutoff)")


def _notice_settings(path: Path | None):
    from lendsafe.notice.settings import NoticeSettings

    settings = NoticeSettings.from_file(path) if path else NoticeSettings()
    if settings.is_specimen:
        print("warning: notices are stamped SPECIMEN: the lender settings are not configured "
              f"({', '.join(settings.placeholders) or 'specimen = true'}); pass --notice-settings "
              "(example: data/examples/lender.toml)", file=sys.stderr)
    return settings


def _pipeline(args: argparse.Namespace):
    from lendsafe.config import Settings
    from lendsafe.explain.pipeline import Pipeline

    writer = "template" if args.no_llm else args.writer
    settings = Settings(dataset=args.dataset, **({"use_llm": False} if writer == "template" else {}))
    return Pipeline(settings, dataset=args.dataset, reference=args.reference, writer=writer)


def _issuer(args: argparse.Namespace):
    """Settings first (a bad file stops here, before anything is decided or written), then the rest."""
    from lendsafe.issue.issuer import Issuer, default_actor, open_audit_store

    settings = _notice_settings(args.notice_settings)
    pipeline = _pipeline(args)
    return Issuer(pipeline, notice_settings=settings, audit=open_audit_store(getattr(pipeline, "settings", None)),
                  actor=args.actor or default_actor("cli"))


def _write_pdf(path: Path, pdf: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pdf)


def _write_json(path: Path | None, data: dict) -> None:
    if path:
        path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def run_notice(args: argparse.Namespace) -> int:
    from lendsafe.decide.application import read_json_file
    from lendsafe.errors import InvalidApplicationError
    from lendsafe.issue.issuer import IssuedIncomplete
    from lendsafe.notice.incomplete import missing_fields

    application = read_json_file(args.file)
    issuer = _issuer(args)
    try:
        issued = _issue_or_hold(issuer, application, args)
    except InvalidApplicationError as exc:
        if isinstance(application, dict) and missing_fields(application, args.dataset):
            exc.problems.append("to send a notice of incompleteness naming the missing fields, add --incomplete")
        raise
    if isinstance(issued, IssuedIncomplete):
        return _incomplete_written(args, issued)
    if not hasattr(issued, "notice"):                 # held for review: nothing written until it is approved
        return _held_written(args, issued)
    decision = issued.decision
    _write_json(args.decision_out, decision.to_dict())
    if issued.notice is None:
        print(json.dumps({"decision": decision.decision, "notice": None, "audit_id": issued.record_id}, indent=2))
        return 0
    _write_pdf(args.out, issued.pdf)
    print(json.dumps({"decision": decision.decision, "document_id": issued.notice.document_id, "path": str(args.out),
                      "sha256": hashlib.sha256(issued.pdf).hexdigest(), "audit_id": issued.record_id,
                      "specimen": issued.notice.specimen, "check": issued.check.to_dict()}, indent=2))
    return 0 if issued.passed else 1


def _issue_or_hold(issuer, application: Any, args: argparse.Namespace):
    """The application issued, or (a denial the review policy selects; every denial with --hold-for-review)
    held for review. A counteroffer, a notice of incompleteness or --no-review issues at once."""
    from dataclasses import replace

    from lendsafe.notice.incomplete import missing_fields
    from lendsafe.review import ReviewPolicy, issue_or_hold

    lacking = args.incomplete and isinstance(application, dict) and missing_fields(application, args.dataset)
    if args.no_review or args.counteroffer or lacking:
        return issuer.issue(application, notice_date=args.notice_date, counteroffer=args.counteroffer,
                            incomplete=args.incomplete)
    policy = ReviewPolicy.from_env()
    policy = replace(policy, enabled=True, all_denials=True) if args.hold_for_review else policy
    return issue_or_hold(issuer, issuer.pipeline.run(application), policy, notice_date=args.notice_date)


def _held_written(args: argparse.Namespace, held) -> int:
    """A denial held for review: its item, why, and how to act on it (no PDF is written)."""
    _write_json(args.decision_out, held.decision.to_dict())
    print(json.dumps({"decision": held.decision.decision, "held_for_review": True, "review_item": held.item_id,
                      "why": held.why, "notice": None,
                      "next": f"lendsafe review show {held.item_id}; lendsafe review approve {held.item_id} --actor ..."},
                     indent=2))
    return 0


def _incomplete_written(args: argparse.Namespace, issued) -> int:
    """Write the notice of incompleteness issued for an application that lacks required fields (a notice
    that failed its check was recorded as a refusal and is not written)."""
    _write_json(args.decision_out, issued.record)
    _write_pdf(args.out, issued.pdf)
    print(json.dumps({"decision": "incomplete", "missing": list(issued.record["missing"]),
                      "document_id": issued.notice.document_id, "path": str(args.out),
                      "sha256": hashlib.sha256(issued.pdf).hexdigest(), "deadline": issued.notice.deadline,
                      "audit_id": issued.record_id,
                      "specimen": issued.notice.specimen, "check": issued.check.to_dict()}, indent=2))
    return 0 if issued.passed else 1


def run_notices(args: argparse.Namespace) -> int:
    """Issue every row of INPUT in this process, or on the cluster --cluster names."""
    import time

    from tqdm import tqdm

    from lendsafe.errors import ConfigurationError

    if args.partition_rows and not args.cluster:
        raise ConfigurationError("--partition-rows applies to a cluster run; add --cluster local[:N] or "
                                 "--cluster tcp://HOST:PORT, or leave it out")
    settings = _notice_settings(args.notice_settings)
    started = time.monotonic()
    with tqdm(total=0, unit="application", file=sys.stderr, disable=None) as bar:
        def progress(done: int, total: int, _rows_per_s: float, _eta_s: float) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = (_notices_on_cluster if args.cluster else _notices_here)(args, settings, progress)
    seconds = time.monotonic() - started
    for error in result.errors:
        print(f"data_row {error.data_row}: {printable('; '.join(error.problems))}", file=sys.stderr)
    for failed in result.failed:
        print(f"partition not finished: {printable(failed)}", file=sys.stderr)
    print(_summary_line(result, seconds), file=sys.stderr)
    print(json.dumps({"processed": result.processed, "notices": len(result.notices),
                      "incomplete": len(result.incomplete), "held_for_review": len(result.held),
                      "failed_checks": len(result.failed_checks),
                      "errors": len(result.errors), "refused": len(result.refused),
                      "already_issued": len(result.already_issued), "resumed": result.resumed,
                      "failed_partitions": len(result.failed),
                      "specimen": settings.is_specimen, "manifest": printable(result.manifest_path)}, indent=2))
    return 0 if result.processed and not result.failed else 1


def _notices_here(args: argparse.Namespace, settings, progress):
    from lendsafe.issue.batch import run_batch
    from lendsafe.issue.issuer import default_actor, open_audit_store

    pipeline = _pipeline(args)
    audit = open_audit_store(getattr(pipeline, "settings", None))
    return run_batch(args.csv, args.out, pipeline, settings, progress, dataset=args.dataset,
                     notice_date=args.notice_date, audit=audit, actor=args.actor or default_actor("cli"),
                     incomplete=args.incomplete, hold=_holder(args))


def _notices_on_cluster(args: argparse.Namespace, settings, progress):
    from lendsafe.issue.cluster import BatchJob, run_on_cluster
    from lendsafe.issue.issuer import default_actor

    job = BatchJob(dataset=args.dataset, reference=args.reference, writer="template" if args.no_llm else args.writer,
                   notice_settings=settings, notice_date=args.notice_date, actor=args.actor or default_actor("cli"),
                   incomplete=args.incomplete, hold=_holder(args))

    def started(run) -> None:
        print(f"cluster: {run.workers} worker(s), {len(run.partitions)} partition(s) of up to "
              f"{max(p.records for p in run.partitions) if run.partitions else 0} rows"
              + (f"; Dask dashboard: {run.dashboard}" if run.dashboard else ""), file=sys.stderr)

    return run_on_cluster(args.csv, args.out, job, args.cluster, progress, rows_per_partition=args.partition_rows,
                          on_start=started)


def _holder(args: argparse.Namespace):
    """Who is held for review: the review policy's selection (LENDSAFE_REVIEW_*), every denial with
    --hold-for-review, none with --no-review."""
    from lendsafe.review import ReviewPolicy, batch_holder

    if args.no_review:
        return None
    return batch_holder(ReviewPolicy.from_env(), hold_all=args.hold_for_review)


def _summary_line(result, seconds: float) -> str:
    """One line an operator reads last: what was issued, what was not, how fast."""
    handled = len(result.rows) + len(result.errors) - result.resumed
    rate = handled / seconds if seconds > 0 else 0.0
    return (f"done: {result.processed} rows listed ({len(result.notices)} notices, {len(result.incomplete)} notices "
            f"of incompleteness, {len(result.held)} held for review, {len(result.already_issued)} already issued, "
            f"{result.resumed} from an earlier run), "
            f"{len(result.errors)} errors in {printable(result.errors_path)}, {len(result.failed)} partitions not "
            f"finished; {seconds:.1f} s, {rate:.1f} rows/s")


def _record_id(text: str) -> int:
    """An audit record id: a whole number from 1."""
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an audit record id (a whole number); got {printable(text)[:80]!r}") \
            from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an audit record id from 1; got {value}")
    return value


def run_check(args: argparse.Namespace) -> int:
    """Check the PDF against the notice as issued: from --record N, or found for --decision FILE."""
    check = _check_record(args) if args.record is not None else _check_decision_file(args)
    print(json.dumps(check.to_dict(), indent=2))
    return 0 if check.passed else 1


def _read_pdf(path: Path) -> bytes:
    from lendsafe.errors import ArtifactNotFoundError, ConfigurationError

    if not path.is_file():
        raise ArtifactNotFoundError(f"file not found: {printable(path)}")
    pdf = path.read_bytes()
    if not pdf.startswith(b"%PDF-"):
        raise ConfigurationError(f"pdf: expected a PDF file (it starts with %PDF-); {printable(path)} is not one")
    return pdf


def _given_settings(args: argparse.Namespace, recorded: dict | None = None):
    """--notice-settings when given, else the recorded settings, else the demonstration settings."""
    from lendsafe.notice.settings import NoticeSettings

    if args.notice_settings:
        return NoticeSettings.from_file(args.notice_settings)
    return NoticeSettings.from_dict(recorded) if recorded else NoticeSettings()


def _check_record(args: argparse.Namespace):
    """The PDF against the notice audit record N holds (adverse action or incompleteness)."""
    from lendsafe.audit.store import AuditStore
    from lendsafe.errors import ConfigurationError
    from lendsafe.notice import Notice, check_pdf
    from lendsafe.notice.incomplete import KIND, check_incomplete_pdf

    with AuditStore(args.database_url) as store:
        record = store.get(args.record)
    pdf, content = _read_pdf(args.pdf), record.content
    if not content.get("notice") or record.kind not in ("decision", KIND):
        raise ConfigurationError(f"--record {record.id} is {record.kind!r} ({record.decision}): no notice was "
                                 "issued under it")
    settings = _given_settings(args, content.get("notice_settings"))
    if record.kind == KIND:
        return check_incomplete_pdf(pdf, content["record"], settings, notice_date=content["notice"]["notice_date"],
                                    document_id=content["notice"]["document_id"])
    return check_pdf(pdf, Notice.from_dict(content["notice"]), record.to_decision(), settings)


def _check_decision_file(args: argparse.Namespace):
    """The PDF against the notice issued for a decision JSON (found in the audit store), or against the
    notice of incompleteness an incompleteness record states."""
    from lendsafe.decide.decision import Decision
    from lendsafe.errors import ArtifactNotFoundError, ConfigurationError, LendSafeError
    from lendsafe.notice import check_pdf
    from lendsafe.notice.incomplete import KIND

    for path in (args.pdf, args.decision):
        if not path.is_file():
            raise ArtifactNotFoundError(f"file not found: {printable(path)}")
    try:
        data = json.loads(args.decision.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:          # JSONDecodeError and UnicodeDecodeError included
        raise ConfigurationError(f"--decision must be a JSON file; {printable(args.decision)} is not "
                                 f"({printable(exc)[:200]})") from None
    settings = _given_settings(args)
    if not isinstance(data, dict):
        raise ConfigurationError(f"--decision must hold a JSON object; got {type(data).__name__}")
    if data.get("kind") != KIND:
        _check_decision_fields(data, args.decision)
    pdf = _read_pdf(args.pdf)
    try:
        if data.get("kind") == KIND:
            return _check_incomplete(pdf, data, settings)
        decision = Decision.from_dict(data)
    except LendSafeError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigurationError(f"--decision {printable(args.decision)} is not the JSON `lendsafe notice "
                                 f"--decision-out` writes: {type(exc).__name__} {printable(exc)[:200]}") from None
    return check_pdf(pdf, _issued_notice(args, decision, pdf), decision, settings)


def _issued_notice(args: argparse.Namespace, decision, pdf: bytes):
    """The notice issued for `decision`, from the audit store: the record with this PDF's bytes (the latest
    when several), else the decision's only record; ArtifactNotFoundError naming --record otherwise."""
    from lendsafe.audit.store import AuditStore
    from lendsafe.errors import ArtifactNotFoundError
    from lendsafe.notice import Notice
    from lendsafe.notice.model import evidence_sha256

    sha, first = evidence_sha256(decision), decision.reasons[0].code if decision.reasons else None
    with AuditStore(args.database_url) as store:
        found = [r for r in store.list(dataset=decision.dataset, decision="deny", reason=first, limit=None)
                 if (r.content.get("notice") or {}).get("evidence_sha256") == sha]
        where = printable(store.safe_url)
    same_pdf = [r for r in found if r.notice_sha256 == hashlib.sha256(pdf).hexdigest()]
    if same_pdf or len(found) == 1:
        return Notice.from_dict((same_pdf or found)[-1].content["notice"])
    if not found:
        raise ArtifactNotFoundError(f"no notice issued for the decision in {printable(args.decision)} is recorded in "
                                    f"the audit store {where}; pass --db with the store it was issued in, or "
                                    "--record N")
    raise ArtifactNotFoundError(f"the decision in {printable(args.decision)} was issued {len(found)} times (audit "
                                f"records {[r.id for r in found]}) and none holds this PDF; pass --record N")


# Decision JSON field -> (check, what it must be): the fields check-notice compares the notice with.
DECISION_FIELDS = {
    "decision": (lambda v: v in ("approve", "deny"), '"approve" or "deny"'),
    "dataset": (lambda v: isinstance(v, str) and bool(v), "a dataset name"),
    "risk": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "threshold": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "application": (lambda v: isinstance(v, dict), "a JSON object"),
    "reasons": (lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v), "a list of reason objects"),
}


def _check_decision_fields(data: dict, path: Path) -> None:
    """ConfigurationError naming every decision field that is absent or of the wrong kind."""
    from lendsafe.errors import ConfigurationError

    wrong = [f"{name} must be {what}; got {printable(repr(data.get(name, '<absent>')))[:60]}"
             for name, (ok, what) in DECISION_FIELDS.items() if not ok(data.get(name))]
    if wrong:
        raise ConfigurationError(f"--decision {printable(path)} is not the JSON `lendsafe notice --decision-out` "
                                 "writes: " + "; ".join(wrong))


def _check_incomplete(pdf: bytes, record: dict, settings):
    from lendsafe.notice.incomplete import check_incomplete_pdf

    stated = {k: v for k, v in record.items() if k not in ("notice_date", "document_id")}
    return check_incomplete_pdf(pdf, stated, settings, notice_date=record.get("notice_date"),
                                document_id=record.get("document_id"))
