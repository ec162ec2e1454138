"""`lendsafe audit list|show|verify|checkpoint|replay|export|retention|purge`: the audit store from the shell.

Option values are checked where they are parsed (argparse exits 2 naming the option); the retention
period is checked against 12 CFR 1002.12(b) for the kind of credit before the store is opened.
"""
from __future__ import annotations

import argparse
import getpass
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from lendsafe.audit.records import REVIEW_ACTIONS
from lendsafe.redaction import printable

LIST_FILTERS = ("dataset", "decision", "writer", "actor", "reason", "since", "until")
TIME_FILTERS = ("since", "until")
MAX_LIST_LIMIT = 1_000_000
CREDIT_KINDS = ("consumer", "business")
# The decision column of each record kind (lendsafe.audit.records.RECORD_KINDS).
DECISIONS = ("approve", "deny", "incomplete", "refusal", "purge", *REVIEW_ACTIONS.values())
# Filter option -> (pattern its value must match, what that is): values no record can hold are refused.
TEXT_FILTERS = {
    "dataset": (r"[A-Za-z0-9_.-]{1,64}", "a dataset name (letters, digits, _ . -)"),
    "writer": (r"[A-Za-z0-9_-]{1,32}", "a writer name such as template or lora"),
    "reason": (r"[A-Z0-9_]{1,64}", "a reason code such as DEBT_TO_INCOME"),
    "actor": (r"[^\x00-\x1f\x7f-\x9f]{1,128}", "an actor of at most 128 characters without control characters"),
}


def iso_time(text: str) -> datetime:
    """An ISO 8601 date or time (UTC unless it says otherwise), e.g. 2024-05-01 or 2024-05-01T12:00:00Z."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 date or time such as 2024-05-01 or "
                                         f"2024-05-01T12:00:00Z; got {printable(text)[:80]!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def matching(pattern: str, what: str):
    """An argparse type: text matching `pattern` as a whole (else an error saying `what` was expected)."""
    compiled = re.compile(pattern)

    def parse(text: str) -> str:
        if not compiled.fullmatch(text):
            raise argparse.ArgumentTypeError(f"expected {what}; got {printable(text)[:80]!r}")
        return text
    parse.__name__ = what
    return parse


def bounded_int(low: int, high: int):
    """An argparse type: a whole number from ``low`` to ``high``."""
    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number; got {printable(text)[:80]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}; got {value}")
        return value
    parse.__name__ = "whole number"
    return parse


def register(subparsers: argparse._SubParsersAction) -> None:
    audit = subparsers.add_parser("audit", help="inspect, verify, replay and retain recorded decisions")
    audit.add_argument("--db", dest="database_url", help="audit store URL (default: LENDSAFE_DATABASE_URL "
                                                         "or SQLite under LENDSAFE_HOME)")
    commands = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    for name, (helptext, func, add_arguments) in ACTIONS.items():
        parser = commands.add_parser(name, help=helptext)
        add_arguments(parser)
        parser.set_defaults(func=func)


def _open(args: argparse.Namespace):
    from lendsafe.audit.store import AuditStore

    return AuditStore(args.database_url)


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    for name in TIME_FILTERS:
        parser.add_argument(f"--{name}", type=iso_time, help=f"ISO 8601 date or time ({name}; UTC unless given)")
    parser.add_argument("--decision", choices=DECISIONS, help="only records of this decision or kind")
    for name, (pattern, what) in TEXT_FILTERS.items():
        parser.add_argument(f"--{name}", type=matching(pattern, what), help=f"only records whose {name} matches")
    parser.add_argument("--limit", type=bounded_int(1, MAX_LIST_LIMIT), default=100,
                        help="at most this many records (default 100)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")


def run_list(args: argparse.Namespace) -> int:
    with _open(args) as store:
        records = store.list(limit=args.limit, **{name: getattr(args, name) for name in LIST_FILTERS})
    for record in records:
        print(json.dumps(_without_content(record.to_dict())) if args.json else record.summary())
    return 0


def _without_content(values: dict) -> dict:
    return {k: v for k, v in values.items() if k != "content"}


def _id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=bounded_int(1, 2**62), help="record id")


def run_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        print(json.dumps(store.get(args.id).to_dict(), indent=2, sort_keys=True, ensure_ascii=False))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    with _open(args) as store:
        report = store.verify()
    print(report.summary())
    return 0 if report.ok else 1


def _checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accept", action="store_true",
                        help="after a review, anchor the current head even though the store does not match its "
                             "checkpoint (or has none); the replaced file is kept beside it")


def run_checkpoint(args: argparse.Namespace) -> int:
    with _open(args) as store:
        report, state = store.anchor_checkpoint(accept=args.accept)
        where = store.checkpoint.where
    print(f"checkpoint written: {where}: {state.describe()}, head hash {state.head_hash}")
    print(report.summary())
    return 0


def out_path(kind: str):
    """An argparse type: a path for a `kind` ("file" or "folder") whose existing entry is of that kind."""
    def parse(text: str) -> Path:
        path = Path(text)
        exists_as_other = path.is_dir() if kind == "file" else path.exists() and not path.is_dir()
        if not text or "\x00" in text or exists_as_other:
            raise argparse.ArgumentTypeError(f"expected a {kind} path; got {printable(text)[:80]!r}"
                                             + (f", which is not a {kind}" if exists_as_other else ""))
        return path
    parse.__name__ = f"{kind} path"
    return parse


def _replay_arguments(parser: argparse.ArgumentParser) -> None:
    _id_argument(parser)
    parser.add_argument("--out", type=out_path("file"), help="write the regenerated notice PDF here")


def run_replay(args: argparse.Namespace) -> int:
    from lendsafe.audit.replay import replay_notice

    with _open(args) as store:
        result = replay_notice(store, args.id)
    if args.out:
        with _writing(args.out):
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_bytes(result.pdf)
        print(f"wrote {args.out}")
    print(result.summary())
    return 0 if result.identical else 1


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    _id_argument(parser)
    parser.add_argument("--out", type=out_path("folder"), required=True, help="folder for the evidence pack")


def run_export(args: argparse.Namespace) -> int:
    from lendsafe.audit.evidence import export_evidence

    with _open(args) as store, _writing(args.out):
        sidecar = export_evidence(store, args.id, args.out)
    replay = sidecar["replay"]
    print(f"wrote {args.out / f'record-{args.id}.json'}"
          + (f" and {args.out / sidecar['notice_pdf']}" if sidecar["notice_pdf"] else ""))
    print(f"replay: {replay['status']}" + "".join(f"\n  {line}" for line in replay.get("differences", ())))
    if replay.get("reason"):
        print(f"  {replay['reason']}")
    return 0 if replay["status"] in ("identical", "no notice recorded") else 1


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """An OSError while writing `path` becomes a message naming --out (exit 2), not a traceback."""
    from lendsafe.errors import ConfigurationError

    try:
        yield
    except OSError as exc:
        raise ConfigurationError(f"--out {printable(path)}: cannot write there ({exc.strerror or exc})") from None


def _retention_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--months", type=bounded_int(1, 1200), default=25,
                        help="retention period in months (default 25; at least 25 for consumer credit, "
                             "12 for business credit, 12 CFR 1002.12(b))")
    parser.add_argument("--credit", choices=CREDIT_KINDS, default="consumer",
                        help="kind of credit the records are for (sets the legal minimum; default consumer)")


def _check_months(args: argparse.Namespace) -> None:
    from lendsafe.audit.retention import check_retention

    check_retention(args.months, args.credit)


def run_retention(args: argparse.Namespace) -> int:
    _check_months(args)
    with _open(args) as store:
        records = store.past_retention(args.months, credit=args.credit)
    for record in records:
        print(record.summary())
    print(f"{len(records)} record(s) past {args.months}-month retention")
    return 0


def _purge_arguments(parser: argparse.ArgumentParser) -> None:
    _retention_arguments(parser)
    parser.add_argument("--confirm", action="store_true", help="required: records are removed for good")
    parser.add_argument("--actor", default=None, help="who purges (default: the current user)")


def run_purge(args: argparse.Namespace) -> int:
    _check_months(args)
    with _open(args) as store:
        result = store.purge(args.months, actor=args.actor or getpass.getuser(), confirm=args.confirm,
                             credit=args.credit)
        report = store.verify()
    print(result.summary())
    print(report.summary())
    return 0 if report.ok else 1


ACTIONS = {
    "list": ("list recorded decisions in chain order, filtered on indexed columns", run_list, _list_arguments),
    "show": ("print one record as JSON", run_show, _id_argument),
    "verify": ("walk the hash chain, check signatures and the signed checkpoint; name the first broken link",
               run_verify, lambda parser: None),
    "checkpoint": ("write the signed checkpoint at the current head (--accept after a review)", run_checkpoint,
                   _checkpoint_arguments),
    "replay": ("regenerate a record's notice and compare it byte for byte", run_replay, _replay_arguments),
    "export": ("write an evidence pack: notice PDF + JSON sidecar with chain hashes", run_export,
               _export_arguments),
    "retention": ("list records past the retention period", run_retention, _retention_arguments),
    "purge": ("remove records past retention (the purge is itself a chain record; the chain still verifies)",
              run_purge, _purge_arguments),
}
