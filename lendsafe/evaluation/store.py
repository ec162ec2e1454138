"""The evaluation's artifact hashes, its results store (JSON + per-decision JSONL records, resumed only
with identical artifacts and settings) and its progress reporting."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from lendsafe.config import PACKAGE_DIR, Settings
from lendsafe.decide.reasons import catalog_sha256
from lendsafe.decide.risk import RiskModel, model_dir
from lendsafe.errors import ArtifactNotFoundError
from lendsafe.evaluation.results import EvaluationMismatchError, records_path
from lendsafe.knowledge.retrieval import corpus_hash, default_corpus_dir, load_corpus
from lendsafe.lm.adapters import adapter_sha256
from lendsafe.lm.basemodel import base_model_sha256, ensure_base_model

CODE_FILES = ("explain/pipeline.py", "explain/verify", "explain/composer.py", "explain/prompts.py",
              "explain/generation.py", "explain/writer.py", "explain/drafts.py", "explain/int8.py",
              "explain/prepared.py", "decide/catalog.py", "decide/reasons.py", "explain/grounding.py",
              "explain/sentences.py")
Progress = Callable[[int, int, str], None]


# ---------------------------------------------------------------------------- artifacts

def file_sha256(path: Path) -> str:
    if not Path(path).is_file():
        raise ArtifactNotFoundError(f"expected a file at {path}; got nothing")
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def code_sha256(path: Path) -> str:
    """sha256 of a module, or of a package's modules (relative path and bytes, in path order)."""
    if not Path(path).is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for module in sorted(Path(path).rglob("*.py")):
        digest.update(f"{module.relative_to(path).as_posix()}\n".encode() + module.read_bytes())
    return digest.hexdigest()


def writer_hashes(writer: str, use_adapter: bool | None, settings: Settings, generators: dict[str, Any]) -> dict[str, Any]:
    """The language model behind a writer: base and adapter sha256 (from files, before loading); nothing for
    a writer without one (``use_adapter`` None)."""
    if use_adapter is None:
        return {}
    if writer in generators:
        described = generators[writer].describe()
        return {k: described.get(k) for k in ("base_sha256", "adapter_sha256")}
    hashes = {"base_sha256": base_model_sha256(ensure_base_model(settings)), "adapter_sha256": None}
    if use_adapter:
        hashes["adapter_sha256"] = adapter_sha256(settings.adapter_dir)
    return hashes


def artifact_hashes(config: Any, settings: Settings, generators: dict[str, Any],
                    use_adapter: dict[str, bool | None]) -> dict[str, Any]:
    """sha256 of every artifact the results depend on; ``use_adapter`` says for each writer whether its
    language model has the adapter (None: no language model)."""
    models = {name: RiskModel.load(model_dir(name, settings)) for name in config.datasets}
    sft_dir = settings.data_dir / "sft"
    return {
        "risk_model_sha256": {name: m.sha256 for name, m in models.items()},
        "data_sha256": {name: m.data_["sha256"] for name, m in models.items()},
        "writers": {w: writer_hashes(w, use_adapter[w], settings, generators) for w in config.writers},
        "corpus_sha256": corpus_hash(load_corpus(default_corpus_dir(settings))),
        "catalog_sha256": catalog_sha256(),
        "sft_sha256": {name: file_sha256(sft_dir / f"{name}.jsonl") for name in ("train", "validation", config.split)},
        "retrieval_queries_sha256": file_sha256(settings.data_dir / "eval" / "retrieval_queries.jsonl"),
        "code_sha256": {name: code_sha256(PACKAGE_DIR / name) for name in CODE_FILES},
    }


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): data}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = _flatten(old), _flatten(new)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


# ---------------------------------------------------------------------------- results store

def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class ResultsStore:
    """The results JSON (rewritten atomically after every section or chunk) and the per-decision
    records (JSONL, appended); both tied to one header of schema, settings and artifact hashes."""

    def __init__(self, path: Path, header: dict[str, Any], fresh: bool = False):
        self.path, self.records_file = Path(path), records_path(path)
        self.header = header
        if fresh:
            for file in (self.path, self.records_file):
                file.unlink(missing_ok=True)
        self.results = self._open_results()
        self.records = self._open_records()

    def _refuse(self, what: str, old: dict[str, Any]) -> None:
        changed = differences(old, self.header)
        if changed:
            raise EvaluationMismatchError(
                f"{what} holds results of other artifacts or settings ({'; '.join(changed[:4])}"
                f"{'; ...' if len(changed) > 4 else ''}); they are never mixed: start fresh (--fresh) or choose "
                f"another --out")

    def _open_results(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {**self.header, "started": now(), "complete": False, "sections": {}, "timing": {}, "plots": {}}
        results = json.loads(self.path.read_text(encoding="utf-8"))
        self._refuse(str(self.path), {k: results.get(k) for k in self.header})
        return results

    def _open_records(self) -> list[dict[str, Any]]:
        if not self.records_file.is_file():
            self._write_line({"header": self.header}, mode="w")
            return []
        lines = self.records_file.read_text(encoding="utf-8").splitlines()
        rows = []
        for line in lines:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:       # a line cut short by an interruption
                continue
        self._refuse(str(self.records_file), (rows[0] if rows else {}).get("header", {}))
        return [row for row in rows[1:] if "kind" in row]

    def _write_line(self, row: dict[str, Any], mode: str = "a") -> None:
        self.records_file.parent.mkdir(parents=True, exist_ok=True)
        with self.records_file.open(mode, encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")

    def done(self, kind: str, writer: str) -> set[str]:
        return {r["id"] for r in self.records if r["kind"] == kind and r["writer"] == writer}

    def select(self, kind: str, writer: str, ids: set[str]) -> list[dict[str, Any]]:
        latest = {r["id"]: r for r in self.records if r["kind"] == kind and r["writer"] == writer and r["id"] in ids}
        return [latest[i] for i in sorted(latest)]

    def append(self, records: list[dict[str, Any]]) -> None:
        with self.records_file.open("a", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self.records.extend(records)

    def put(self, section: str, data: dict[str, Any], seconds: float | None = None) -> None:
        self.results["sections"][section] = data
        if seconds is not None:
            self.results["timing"][section] = round(seconds, 1)
        self.save()

    def save(self) -> None:
        self.results["updated"] = now()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(self.path.suffix + ".tmp")
        temporary.write_text(json.dumps(self.results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)


# ---------------------------------------------------------------------------- progress

class ProgressReporter:
    """Calls ``progress(done, total, stage)`` and draws one tqdm bar per stage on stderr."""

    def __init__(self, callback: Progress | None = None, bar: bool = True):
        self.callback, self.bar = callback, bar
        self.bars: dict[str, Any] = {}

    def __call__(self, done: int, total: int, stage: str) -> None:
        if self.callback:
            self.callback(done, total, stage)
        if self.bar:
            self._draw(done, total, stage)

    def _draw(self, done: int, total: int, stage: str) -> None:
        from tqdm import tqdm

        if stage not in self.bars:
            self.bars[stage] = tqdm(total=total, desc=stage, file=sys.stderr, leave=True, dynamic_ncols=True)
        bar = self.bars[stage]
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
