"""Cold start: ``lendsafe explain FILE`` end to end in a new process, with the benchmark method.

Each call is a new process timed from outside (process-level timer), beside ``lendsafe explain --writer
template`` (no language model) and a bare ``python -c "import torch, transformers"`` (the floor any process
using the language model pays), taking turns. The processes run in a scratch home that links the prepared
artifacts of ``$LENDSAFE_HOME`` (converted base model, index, writer weights, risk tables, query vectors)
but neither its audit store nor its generation cache, which is emptied before every call: each call
writes its explanation. ``load_ms`` and ``latency_ms`` are read from the command's own JSON.

Target (issue 18): p50 <= 5 s. Run: ``python benchmarks/bench_cold_start.py [--file F] [--force]``.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import method  # noqa: E402

ROOT = method.ROOT
TARGET_P50_S = 5.0
PREPARED = ("models", "index", "cache/writer", "cache/risk-tables", "cache/query-vectors.sqlite", "audit.key")
LENDSAFE = [sys.executable, "-m", "lendsafe.cli"]


def scratch_home(real: Path, folder: Path) -> Path:
    """A home linking the real one's prepared artifacts (nothing else)."""
    for name in PREPARED:
        if (real / name).exists():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).symlink_to(real / name)
    return folder


class Contender:
    """One command run as a new process per call; keeps the explain JSON's own timings."""

    def __init__(self, command: list[str], home: Path, reads_json: bool):
        self.command, self.home, self.reads_json = command, home, reads_json
        self.load_ms: list[float] = []
        self.latency_ms: list[float] = []

    def __call__(self) -> None:
        (self.home / "cache" / "generations.sqlite").unlink(missing_ok=True)
        env = {**os.environ, "LENDSAFE_HOME": str(self.home), "PYTHONWARNINGS": "ignore"}
        done = subprocess.run(self.command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(self.command)} exited {done.returncode}: {done.stderr[-2000:]}")
        if self.reads_json:
            result = json.loads(done.stdout)
            self.load_ms.append(result["load_ms"])
            self.latency_ms.append(result["latency_ms"])


def readme_rows(figures: dict) -> list[dict[str, str]]:
    lora, template, floor = (figures[k] for k in ("explain_lora", "explain_template", "import_torch_transformers"))
    return [{"what": "`lendsafe explain FILE` end to end, new process each call (p50 / p95; the command's own "
                     "load_ms / latency_ms p50)",
             "measured": f"{lora['p50_ms'] / 1000:.2f} s / {lora['p95_ms'] / 1000:.2f} s "
                         f"({lora['load_ms_p50'] / 1000:.2f} s / {lora['latency_ms_p50'] / 1000:.2f} s)",
             "baseline": f"`--writer template` {template['p50_ms'] / 1000:.2f} s; bare `import torch, transformers` "
                         f"{floor['p50_ms'] / 1000:.2f} s"}]


def main(argv: list[str] | None = None) -> int:
    parser = method.parser(__doc__.splitlines()[0])
    parser.add_argument("--file", default=str(ROOT / "data" / "examples" / "hmda_denial.json"))
    parser.add_argument("--runs", type=int, default=10, help="calls of each contender")
    args = parser.parse_args(argv)
    from lendsafe.config import Settings

    run = method.Run("cold_start", "torch", "transformers", "chromadb", "xgboost")
    with tempfile.TemporaryDirectory(prefix="lendsafe-cold-") as folder:
        home = scratch_home(Settings().home, Path(folder))
        contenders = {"explain_lora": Contender([*LENDSAFE, "explain", args.file], home, True),
                      "explain_template": Contender([*LENDSAFE, "explain", args.file, "--writer", "template"], home, True),
                      "import_torch_transformers": Contender([sys.executable, "-c", "import torch, transformers"],
                                                             home, False)}
        timings = method.interleave(contenders, calls=2, min_rounds=args.runs // 2, max_rounds=args.runs // 2)
    figures = method.summaries(timings, baseline="import_torch_transformers")
    for name in ("explain_lora", "explain_template"):
        figures[name]["load_ms_p50"] = statistics.median(contenders[name].load_ms)
        figures[name]["latency_ms_p50"] = statistics.median(contenders[name].latency_ms)
    p50_s = figures["explain_lora"]["p50_ms"] / 1000
    target = {"target_p50_s": TARGET_P50_S, "measured_p50_s": round(p50_s, 3), "met": p50_s <= TARGET_P50_S}
    print(f"lendsafe explain p50 {p50_s:.2f} s (target <= {TARGET_P50_S} s: {'met' if target['met'] else 'NOT met'})")
    run.finish(figures, readme_rows(figures), {k: t.spread() for k, t in timings.items()}, force=args.force,
               target=target, file=str(Path(args.file).relative_to(ROOT)) if Path(args.file).is_relative_to(ROOT)
               else args.file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
