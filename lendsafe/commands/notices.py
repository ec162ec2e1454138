"""`lendsafe notice`, `lendsafe notices` and `lendsafe check-notice`."""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    one = subparsers.add_parser("notice", help="decide one application (JSON) and write its adverse-action notice PDF")
    one.add_argument("file", help="application JSON file, or - for standard input")
    one.add_argument("--out", type=Path, default=Path("notice.pdf"), help="PDF to write (default notice.pdf)")
    one.add_argument("--decision-out", type=Path, help="also write the decision JSON (input of check-notice)")
    one.add_argument("--counteroffer", help="terms offered instead (makes it a counteroffer notice)")
    _add_common(one)
    one.set_defaults(func=run_notice)

    many = subparsers.add_parser("notices", help="decide every row of a CSV; one notice PDF per denial + manifest")
    many.add_argument("csv", type=Path, help="applications CSV (one application per row)")
    many.add_argument("--out", type=Path, required=True, help="output folder for the PDFs and manifest.csv")
    _add_common(many)
    many.set_defaults(func=run_notices)

    check = subparsers.add_parser("check-notice", help="check a notice PDF's text against its decision (JSON)")
    check.add_argument("pdf", type=Path, help="notice PDF")
    check.add_argument("--decision", type=Path, required=True, help="decision JSON (Decision.to_dict())")
    check.add_argument("--notice-settings", type=Path, help="notice settings TOML/JSON used for the notice")
    check.set_defaults(func=run_check)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--notice-settings", type=Path, help="notice settings TOML/JSON (creditor, agency, ...)")
    parser.add_argument("--notice-date", type=dt.date.fromisoformat, help="date printed on the notice (default today)")
    parser.add_argument("--no-llm", action="store_true", help="write explanations with the deterministic composer")
    parser.add_argument("--actor", help="who issues the notices, kept in the audit store (default cli:<user>)")


def _notice_settings(path: Path | None):
    from lendsafe.notice import NoticeSettings

    return NoticeSettings.from_file(path) if path else NoticeSettings()


def _pipeline(args: argparse.Namespace):
    from lendsafe.config import Settings
    from lendsafe.pipeline import Pipeline

    return Pipeline(Settings(**({"use_llm": False} if args.no_llm else {})))


def _read_json(path: str) -> dict:
    from lendsafe.errors import InvalidApplicationError

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        return json.loads(text)
    except FileNotFoundError:
        raise InvalidApplicationError([f"application file not found: {path}"]) from None
    except json.JSONDecodeError as exc:
        raise InvalidApplicationError([f"application is not valid JSON: {exc.msg} at line {exc.lineno}"]) from None


def _issuer(args: argparse.Namespace):
    from lendsafe.issuance import Issuer, default_actor, open_audit_store

    pipeline = _pipeline(args)
    return Issuer(pipeline, notice_settings=_notice_settings(args.notice_settings),
                  audit=open_audit_store(getattr(pipeline, "settings", None)), actor=args.actor or default_actor("cli"))


def run_notice(args: argparse.Namespace) -> int:
    issuer = _issuer(args)
    issued = issuer.issue(_read_json(args.file), notice_date=args.notice_date, counteroffer=args.counteroffer)
    decision = issued.decision
    if args.decision_out:
        args.decision_out.write_text(json.dumps(decision.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    if issued.notice is None:
        print(json.dumps({"decision": decision.decision, "notice": None, "audit_id": issued.record_id}, indent=2))
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(issued.pdf)
    print(json.dumps({"decision": decision.decision, "document_id": issued.notice.document_id, "path": str(args.out),
                      "sha256": hashlib.sha256(issued.pdf).hexdigest(), "audit_id": issued.record_id,
                      "check": issued.check.to_dict()}, indent=2))
    return 0 if issued.passed else 1


def run_notices(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lendsafe.batch import run_batch
    from lendsafe.issuance import default_actor, open_audit_store

    settings = _notice_settings(args.notice_settings)
    pipeline = _pipeline(args)
    audit = open_audit_store(getattr(pipeline, "settings", None))
    with tqdm(total=0, unit="application", file=sys.stderr, disable=None) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = run_batch(args.csv, args.out, pipeline, settings, progress, notice_date=args.notice_date,
                           audit=audit, actor=args.actor or default_actor("cli"))
    for error in result.errors:
        print(f"row {error.row}: {'; '.join(error.problems)}", file=sys.stderr)
    print(json.dumps({"processed": result.processed, "notices": len(result.notices),
                      "failed_checks": len(result.failed_checks), "errors": len(result.errors),
                      "manifest": str(result.manifest_path)}, indent=2))
    return 0 if result.processed else 1


def run_check(args: argparse.Namespace) -> int:
    from lendsafe.decision import Decision
    from lendsafe.errors import ArtifactNotFoundError
    from lendsafe.notice import check_pdf

    for path in (args.pdf, args.decision):
        if not path.is_file():
            raise ArtifactNotFoundError(f"file not found: {path}")
    decision = Decision.from_dict(json.loads(args.decision.read_text(encoding="utf-8")))
    check = check_pdf(args.pdf.read_bytes(), decision, _notice_settings(args.notice_settings))
    print(json.dumps(check.to_dict(), indent=2))
    return 0 if check.passed else 1
