"""`lendsafe audit list|show|verify|replay|export|retention|purge`: the audit store from the shell."""
from __future__ import annotations

import argparse
import getpass
import json
from pathlib import Path

LIST_FILTERS = ("dataset", "decision", "writer", "actor", "reason", "since", "until")


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
    from lendsafe.audit import AuditStore

    return AuditStore(args.database_url)


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    for name in LIST_FILTERS:
        parser.add_argument(f"--{name}", help=f"only records whose {name} matches"
                            if name not in ("since", "until") else f"ISO time ({name}, UTC)")
    parser.add_argument("--limit", type=int, default=100, help="at most this many records (default 100)")
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
    parser.add_argument("id", type=int, help="record id")


def run_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        print(json.dumps(store.get(args.id).to_dict(), indent=2, sort_keys=True, ensure_ascii=False))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    with _open(args) as store:
        report = store.verify()
    print(report.summary())
    return 0 if report.ok else 1


def _replay_arguments(parser: argparse.ArgumentParser) -> None:
    _id_argument(parser)
    parser.add_argument("--out", type=Path, help="write the regenerated notice PDF here")


def run_replay(args: argparse.Namespace) -> int:
    with _open(args) as store:
        result = store.replay(args.id)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(result.pdf)
        print(f"wrote {args.out}")
    print(result.summary())
    return 0 if result.identical else 1


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    _id_argument(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder for the evidence pack")


def run_export(args: argparse.Namespace) -> int:
    with _open(args) as store:
        sidecar = store.export(args.id, args.out)
    replay = sidecar["replay"]
    print(f"wrote {args.out / f'record-{args.id}.json'}"
          + (f" and {args.out / sidecar['notice_pdf']}" if sidecar["notice_pdf"] else ""))
    print(f"replay: {replay['status']}" + "".join(f"\n  {line}" for line in replay.get("differences", ())))
    if replay.get("reason"):
        print(f"  {replay['reason']}")
    return 0 if replay["status"] in ("identical", "no notice recorded") else 1


def _retention_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--months", type=int, default=25,
                        help="retention period in months (default 25, 12 CFR 1002.12(b))")


def run_retention(args: argparse.Namespace) -> int:
    with _open(args) as store:
        records = store.past_retention(args.months)
    for record in records:
        print(record.summary())
    print(f"{len(records)} record(s) past {args.months}-month retention")
    return 0


def _purge_arguments(parser: argparse.ArgumentParser) -> None:
    _retention_arguments(parser)
    parser.add_argument("--confirm", action="store_true", help="required: records are removed for good")
    parser.add_argument("--actor", default=None, help="who purges (default: the current user)")


def run_purge(args: argparse.Namespace) -> int:
    with _open(args) as store:
        result = store.purge(args.months, actor=args.actor or getpass.getuser(), confirm=args.confirm)
        report = store.verify()
    print(result.summary())
    print(report.summary())
    return 0 if report.ok else 1


ACTIONS = {
    "list": ("list recorded decisions in chain order, filtered on indexed columns", run_list, _list_arguments),
    "show": ("print one record as JSON", run_show, _id_argument),
    "verify": ("walk the hash chain and name the first broken link", run_verify, lambda parser: None),
    "replay": ("regenerate a record's notice and compare it byte for byte", run_replay, _replay_arguments),
    "export": ("write an evidence pack: notice PDF + JSON sidecar with chain hashes", run_export,
               _export_arguments),
    "retention": ("list records past the retention period", run_retention, _retention_arguments),
    "purge": ("remove records past retention (logged; the chain still verifies)", run_purge, _purge_arguments),
}
