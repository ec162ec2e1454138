"""`lendsafe recourse`: the smallest changes that would have approved a denied application, each re-scored."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lendsafe.decide.decision import REFERENCES


def register(subparsers: argparse._SubParsersAction) -> None:
    recourse = subparsers.add_parser(
        "recourse", help="what would have changed a denial: the smallest changes to actionable features, "
                         "each re-scored by the same model (JSON)")
    recourse.add_argument("file", help="application JSON file, or - for standard input")
    recourse.add_argument("--dataset", default="hmda", help="dataset whose model scores it (default hmda)")
    recourse.add_argument("--reference", default="population", choices=REFERENCES,
                          help="reason reference of the re-scored decisions (Reg B comment 9(b)(2)-5)")
    recourse.add_argument("--max-changes", type=int, default=None, metavar="K",
                          help="features one option may change together, 1 to 3 (default 3)")
    recourse.add_argument("--model", type=Path, help="a trained model folder (default models/risk/<dataset>)")
    recourse.set_defaults(func=run_recourse)


def run_recourse(args: argparse.Namespace) -> int:
    from lendsafe.decide.application import read_application_json
    from lendsafe.recourse import DEFAULT_MAX_CHANGES, check_max_changes, find_recourse
    from lendsafe.decide.risk import RiskModel
    from lendsafe.decide.scoring import Scorer

    max_changes = check_max_changes(DEFAULT_MAX_CHANGES if args.max_changes is None else args.max_changes)
    scorer = Scorer(RiskModel.load(args.model)) if args.model else Scorer.load(_trained(args.dataset))
    application = read_application_json(args.file, scorer.spec)
    result = find_recourse(scorer, application, args.reference, max_changes=max_changes)
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def _trained(dataset: str) -> str:
    """The dataset name when a risk model is trained for it; else an error naming --dataset and the choices."""
    from lendsafe.errors import ArtifactNotFoundError
    from lendsafe.redaction import printable
    from lendsafe.decide.risk import model_dir

    if (model_dir(dataset) / "model.json").is_file():
        return dataset
    known = sorted(p.parent.name for p in model_dir("x").parent.glob("*/model.json"))
    raise ArtifactNotFoundError(f"--dataset {printable(repr(dataset))} has no trained risk model; expected one of: "
                                f"{', '.join(known) or 'none (run lendsafe train-risk)'}")
