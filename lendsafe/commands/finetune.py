"""`lendsafe finetune`: train the LoRA adapter on the SFT set (flags mirror `FinetuneSettings`);
`--sweep GRID` trains and measures every configuration of a TOML grid instead (`lendsafe.train.sweep`);
`--preference FILE` runs a DPO round on top of the SFT adapter (`lendsafe.train.preference`);
`--sampling-report FILE` measures the writer sampled beside greedy and the composer (`lendsafe.train.sampling`)."""
from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields
from pathlib import Path

FLAG_TYPES = {"Path": Path, "str": str, "int": int, "float": float}


def register(subparsers) -> None:
    from lendsafe.train.finetune import FinetuneSettings

    parser = subparsers.add_parser("finetune", help="train the LoRA adapter that writes explanations",
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for spec in fields(FinetuneSettings):
        default = spec.default if spec.default is not MISSING else None
        parser.add_argument("--" + spec.name.replace("_", "-"), dest=spec.name, default=default,
                            type=FLAG_TYPES[_type_name(spec.type)], help=spec.metadata.get("help", ""))
    parser.add_argument("--sweep", type=Path, metavar="GRID",
                        help="run the LoRA sweep of this TOML grid (e.g. data/sweep/lora.toml): each run trains "
                             "from the base; the record (sweep.json, sweep.png) goes to --out; of the other flags "
                             "only --data-dir and --base-model apply")
    parser.add_argument("--preference", type=Path, metavar="FILE",
                        help="run a preference (DPO) round with the settings of this TOML file (e.g. "
                             "data/sweep/preference.toml); the other flags do not apply")
    parser.add_argument("--sampling-report", type=Path, metavar="FILE",
                        help="measure the adapter greedy and sampled on validation denials with the settings of "
                             "this TOML file (e.g. data/sweep/sampling.toml); the other flags do not apply")
    parser.set_defaults(func=run)


def _type_name(annotation) -> str:
    return annotation if isinstance(annotation, str) else annotation.__name__


def run(args: argparse.Namespace) -> int:
    from lendsafe.train.finetune import FinetuneSettings, finetune

    if args.sweep:
        return run_sweep(args)
    if args.preference:
        return run_preference(args)
    if args.sampling_report:
        return run_sampling_report(args)
    settings = FinetuneSettings(**{spec.name: getattr(args, spec.name) for spec in fields(FinetuneSettings)})
    result = finetune(settings)
    print(f"adapter written to {result.out}: {result.steps} steps, {result.train_tokens_per_s:.0f} train tokens/s, "
          f"final train loss {result.manifest['final_train_loss']:.4f}, "
          f"final validation loss {result.manifest['final_validation_loss']}")
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    from lendsafe.train.sweep import SweepGrid, sweep

    record = sweep(SweepGrid.read(args.sweep), Path(args.out), Path(args.data_dir), args.base_model)
    for run in record["runs"]:
        print(f"{run['name']:>22}: first pass {run['first_pass']}/{run['texts']}, meaning errors "
              f"{run['meaning_errors']}, validation loss {run['validation_loss']}, {run['train_tokens_per_s']} tokens/s")
    print(f"chosen: {record['chosen']['name']} ({record['chosen']['rule']}); record in {Path(args.out) / 'sweep.json'}")
    return 0


def run_preference(args: argparse.Namespace) -> int:
    from lendsafe.train.preference import PreferenceSettings, preference_round

    settings = PreferenceSettings.read(args.preference)
    record = preference_round(settings, args.preference)
    print(f"pairs: {record['samples']['pairs']} from {record['samples']['applications']} applications")
    for stage in ("before", "after"):
        if stage in record:
            greedy, sampled = record[stage]["greedy"], record[stage]["sampled"]
            print(f"{stage:>6}: greedy first pass {greedy['first_pass']}/{greedy['texts']}, meaning errors "
                  f"{greedy['meaning_errors']}; sampled first pass {sampled['first_pass']}/{sampled['texts']}")
    print(f"ship on validation: {record.get('ship_on_validation')}; record in "
          f"{settings.record_dir / 'preference.json'}")
    return 0


def run_sampling_report(args: argparse.Namespace) -> int:
    from lendsafe.train.sampling import SamplingReportSettings, sampling_report

    settings = SamplingReportSettings.read(args.sampling_report)
    record = sampling_report(settings)
    for name, writer in record["writers"].items():
        print(f"{name:>16}: first pass {writer['first_pass']}/{writer['texts']}, meaning errors "
              f"{writer['meaning_errors']}, equal to the composer's {writer['wording']['same_as_composer']}, "
              f"distinct sentences {writer['wording']['distinct_sentences']}")
    print(f"record in {settings.record_dir / 'sampling.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m lendsafe.commands.finetune ...`: the same command without the CLI registry."""
    parser = argparse.ArgumentParser(prog="lendsafe")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["finetune", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
