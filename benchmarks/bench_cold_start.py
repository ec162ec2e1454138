"""Cold start: ``lendsafe explain FILE`` end to end in a new process, with the benchmark method.

Each call is a new process timed from outside (process-level timer), beside ``lendsafe explain --writer
template`` (no language model) and a bare ``python -c "import torch, transformers"`` (the floor any process
using the language model pays), taking turns. The processes run in a scratch home that links the prepared
artifacts of ``$LENDSAFE_HOME`` (converted base model, index, writer weights, risk tables, query vectors)
but neither its audit store nor its generation cache, which is emptied before every call: each call
writes its explanation. ``load_ms`` and ``latency_ms`` are read from the command's own JSON.

Every call explains a different held-out denial (written to a file of its own), so no call is answered
from a cache. A fourth contender is the same command with a ``lendsafe serve`` worker running in the
scratch home: the command forwards to the worker, which keeps the models loaded (started once before the
rounds; its start-up is reported apart as ``worker_start_s``).

Target (issue 18): p50 <= 5 s. Run: ``python benchmarks/bench_cold_start.py [--force]``.
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
    """One command run as a new process per call, on the next application file when it takes one; keeps the
    explain JSON's own timings."""

    def __init__(self, command: list[str], home: Path, reads_json: bool, files: list[Path] | None = None,
                 env: dict[str, str] | None = None):
        self.command, self.home, self.reads_json = command, home, reads_json
        self.files = iter(files or [])
        self.env = {**os.environ, "LENDSAFE_HOME": str(home), "LENDSAFE_SERVE": "0", "PYTHONWARNINGS": "ignore",
                    **(env or {})}
        self.load_ms: list[float] = []
        self.latency_ms: list[float] = []

    def __call__(self) -> None:
        (self.home / "cache" / "generations.sqlite").unlink(missing_ok=True)
        command = [part if part != "{file}" else str(next(self.files)) for part in self.command]
        done = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(self.command)} exited {done.returncode}: {done.stderr[-2000:]}")
        if self.reads_json:
            result = json.loads(done.stdout)
            self.load_ms.append(result["load_ms"])
            self.latency_ms.append(result["latency_ms"])


def readme_rows(figures: dict) -> list[dict[str, str]]:
    lora, served, template, floor = (figures[k] for k in ("explain_lora", "explain_lora_served", "explain_template",
                                                          "import_torch_transformers"))
    return [{"what": "`lendsafe explain FILE` end to end, new process each call, a different held-out denial each "
                     "time (p50 / p95; the command's own load_ms / latency_ms p50)",
             "measured": f"{lora['p50_ms'] / 1000:.2f} s / {lora['p95_ms'] / 1000:.2f} s "
                         f"({lora['load_ms_p50'] / 1000:.2f} s / {lora['latency_ms_p50'] / 1000:.2f} s)",
             "baseline": f"`--writer template` {template['p50_ms'] / 1000:.2f} s; bare `import torch, transformers` "
                         f"{floor['p50_ms'] / 1000:.2f} s"},
            {"what": "`lendsafe explain FILE` with a `lendsafe serve` worker running (p50 / p95; latency_ms p50)",
             "measured": f"{served['p50_ms'] / 1000:.2f} s / {served['p95_ms'] / 1000:.2f} s "
                         f"({served['latency_ms_p50'] / 1000:.2f} s)",
             "baseline": f"the same command without a worker {lora['p50_ms'] / 1000:.2f} s"}]


def denial_files(folder: Path, count: int) -> list[Path]:
    """`count` held-out hmda denials, one JSON file each."""
    from lendsafe.decide.scoring import Scorer
    from lendsafe.ui.tables import held_out_applications

    rows = held_out_applications("hmda")
    decisions = Scorer.load("hmda").score_many([application for _, application in rows])
    denials = [application for (_, application), d in zip(rows, decisions) if d.denied][:count]
    if len(denials) < count:
        raise SystemExit(f"only {len(denials)} held-out denials; {count} needed")
    files = []
    for index, application in enumerate(denials):
        files.append(folder / f"denial-{index}.json")
        files[-1].write_text(json.dumps(application))
    return files


class Worker:
    """A `lendsafe serve` process in the scratch home, for the rounds' duration."""

    def __init__(self, home: Path, socket: Path):
        self.env = {**os.environ, "LENDSAFE_HOME": str(home), "LENDSAFE_SERVE_SOCKET": str(socket),
                    "PYTHONWARNINGS": "ignore"}
        self.socket = socket

    def __enter__(self) -> "Worker":
        import time

        started = time.perf_counter()
        self.process = subprocess.Popen([*LENDSAFE, "serve"], cwd=ROOT, env=self.env, stderr=subprocess.DEVNULL)
        while not self.socket.exists():
            if self.process.poll() is not None:
                raise SystemExit("the worker exited before serving")
            time.sleep(0.05)
        self.start_s = time.perf_counter() - started
        return self

    def __exit__(self, *_exc) -> None:
        import signal

        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = method.parser(__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="calls of each contender")
    args = parser.parse_args(argv)
    from lendsafe.config import Settings

    run = method.Run("cold_start", "torch", "transformers", "chromadb", "xgboost")
    with tempfile.TemporaryDirectory(prefix="lendsafe-cold-") as folder:
        home = scratch_home(Settings().home, Path(folder) / "home")
        per = args.runs + 1                                   # the method's warm-up call, then the timed ones
        files = denial_files(Path(folder), 3 * per)
        explain = [*LENDSAFE, "explain", "{file}"]
        with Worker(home, Path(folder) / "w.sock") as worker:
            contenders = {
                "explain_lora": Contender(explain, home, True, files[:per]),
                "explain_lora_served": Contender(explain, home, True, files[per:2 * per],
                                                 env={"LENDSAFE_SERVE": "1", **worker.env}),
                "explain_template": Contender([*explain, "--writer", "template"], home, True, files[2 * per:]),
                "import_torch_transformers": Contender([sys.executable, "-c", "import torch, transformers"],
                                                       home, False)}
            timings = method.interleave(contenders, calls=2, min_rounds=args.runs // 2, max_rounds=args.runs // 2)
    figures = method.summaries(timings, baseline="import_torch_transformers")
    figures["explain_lora_served"]["worker_start_s"] = round(worker.start_s, 2)
    for name in ("explain_lora", "explain_lora_served", "explain_template"):
        figures[name]["load_ms_p50"] = statistics.median(contenders[name].load_ms)
        figures[name]["latency_ms_p50"] = statistics.median(contenders[name].latency_ms)
    target = {"target_p50_s": TARGET_P50_S}
    for name in ("explain_lora", "explain_lora_served"):
        p50_s = figures[name]["p50_ms"] / 1000
        target[name] = {"measured_p50_s": round(p50_s, 3), "met": p50_s <= TARGET_P50_S}
        print(f"{name}: lendsafe explain p50 {p50_s:.2f} s (target <= {TARGET_P50_S} s: "
              f"{'met' if p50_s <= TARGET_P50_S else 'NOT met'})")
    run.finish(figures, readme_rows(figures), {k: t.spread() for k, t in timings.items()}, force=args.force,
               target=target, applications="a different held-out hmda denial per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
