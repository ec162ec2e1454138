"""Exact TreeSHAP by table lookup: ``TreeTables`` holds, for each tree of a shallow booster, xgboost's own
contributions and leaf value per direction pattern, and ``load_tables`` keeps them in a cache keyed by the
model file, so scoring is bit-identical to ``pred_contribs`` without importing xgboost.
"""
from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lendsafe.config import Settings

TABLE_NODES = 8          # split nodes per tree a table covers (depth-3 trees have 7 at most)
TABLE_ROWS = 2048        # rows per chunk of a batch lookup (bounds the working memory)
FEW_ROWS = 16            # up to this many rows, every tree is gathered at once
CHECK_ROWS = 2048        # cell rows on which a new table is checked against xgboost's full model
BASE_MARGIN_TRIES = 16   # base margins tried, nearest logit(base_score) first


class TreeTables:
    """Exact TreeSHAP and margin of a shallow ``binary:logistic`` booster by table lookup.

    One tree's TreeSHAP values depend on a row only through the direction the row takes at each of the
    tree's split nodes, and a depth-3 tree has at most 7: each tree's values form a table over at most
    2**8 direction patterns. The tables hold xgboost's own per-tree values (``pred_contribs`` of that tree
    alone) and a row's values are added in float32 in tree order, as xgboost adds them, so the result is
    bit-identical to ``pred_contribs`` and to the margin of ``inplace_predict``; ``build`` checks that on
    a row for every table cell and gives None where it does not hold (the caller then uses xgboost).
    """

    def __init__(self, splits: dict[str, np.ndarray], contributions: np.ndarray, leaves: np.ndarray,
                 base_margin: float):
        self.features, self.thresholds = splits["features"], splits["thresholds"]
        self.default_left, self.nodes = splits["default_left"], splits["nodes"]
        self.contributions = contributions    # (trees, 2**TABLE_NODES, columns + 1) float32, bias last
        self.leaves = leaves                  # (trees, 2**TABLE_NODES) float32 leaf values
        self.base_margin = np.float32(base_margin)
        self._trees = np.arange(len(leaves))
        self.model_sha256 = ""                # sha256 of the booster's JSON, so scoring needs no xgboost

    def patterns(self, X: np.ndarray, trees: slice = slice(None)) -> np.ndarray:
        """(rows, trees) uint8: bit k set when the row goes left at the tree's k-th split node."""
        values = X[:, self.features]
        left = np.where(np.isnan(values), self.default_left, values < self.thresholds)
        left = np.concatenate([left, np.zeros((len(X), 1), bool)], axis=1)   # last: padding, never left
        return np.packbits(left[:, self.nodes[trees]], axis=-1, bitorder="little")[..., 0]

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(contributions with the bias last, margin), float32, of a float32 model matrix."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if len(X) <= TABLE_ROWS:
            return self._chunk(X)
        parts = [self._chunk(X[start:start + TABLE_ROWS]) for start in range(0, len(X), TABLE_ROWS)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _chunk(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        patterns = self.patterns(X)
        margin = np.full((len(X), 1), self.base_margin, np.float32)
        if len(X) <= FEW_ROWS:
            contribs = np.add.accumulate(self.contributions[self._trees, patterns], axis=1)[:, -1]
            leaves = np.concatenate([margin, self.leaves[self._trees, patterns]], axis=1)
            margin = np.add.accumulate(leaves, axis=1)[:, -1]
        else:
            contribs = np.zeros((len(X), self.contributions.shape[2]), np.float32)
            margin = margin[:, 0]
            for tree in self._trees:
                contribs += self.contributions[tree, patterns[:, tree]]
                margin += self.leaves[tree, patterns[:, tree]]
        contribs[:, -1] += self.base_margin
        return contribs, margin

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, booster) -> "TreeTables | None":
        """Tables of a booster, or None when its trees are too deep, its objective is not binary:logistic
        or the lookup is not bit-identical to xgboost on every table cell."""
        config = json.loads(booster.save_config())["learner"]
        trees = json.loads(bytes(booster.save_raw("json")))["learner"]["gradient_booster"]["model"]["trees"]
        nodes = [[i for i, child in enumerate(t["left_children"]) if child != -1] for t in trees]
        if config["objective"]["name"] != "binary:logistic" or max(map(len, nodes), default=0) > TABLE_NODES:
            return None
        base = float(config["learner_model_param"]["base_score"].strip("[]"))
        splits = _distinct_splits(trees, nodes)
        width = int(config["learner_model_param"]["num_feature"]) + 1
        tables = cls(splits, np.zeros((len(trees), 256, width), np.float32), np.zeros((len(trees), 256), np.float32),
                     np.float32(np.log(base / (1.0 - base))))
        rows = np.concatenate([tables._fill(booster, tree, trees[tree]) for tree in range(len(trees))])
        sample = rows[:: max(1, len(rows) // CHECK_ROWS)]       # every tree's cells, summed over all trees
        tables.model_sha256 = hashlib.sha256(bytes(booster.save_raw("json"))).hexdigest()
        return tables if tables._settle_base_margin(booster, sample) else None

    def _fill(self, booster, tree: int, dumped: dict) -> np.ndarray:
        """Fill one tree's cells from xgboost's values for that tree alone; returns one row per cell."""
        import xgboost as xgb

        rows = _cell_rows(dumped, self.contributions.shape[2] - 1)
        patterns, first = np.unique(self.patterns(rows, slice(tree, tree + 1))[:, 0], return_index=True)
        rows = rows[first]
        matrix = xgb.DMatrix(rows, missing=np.nan, feature_names=booster.feature_names,
                             base_margin=np.zeros(len(rows), np.float32))
        alone = booster[tree:tree + 1]
        self.contributions[tree, patterns] = alone.predict(matrix, pred_contribs=True)
        self.leaves[tree, patterns] = alone.predict(matrix, output_margin=True)
        return rows

    def _settle_base_margin(self, booster, rows: np.ndarray) -> bool:
        """Find the float32 base margin xgboost adds (the configuration prints base_score with too few
        digits to recover it): candidates are the first tree's margins less its leaf values, and the one
        with which the lookup equals xgboost's full model on ``rows`` is kept; False when none does."""
        import xgboost as xgb

        matrix = xgb.DMatrix(rows, missing=np.nan, feature_names=booster.feature_names)
        expected = (booster.predict(matrix, pred_contribs=True),
                    booster.inplace_predict(rows, predict_type="margin", missing=np.nan))
        first = booster[0:1].inplace_predict(rows, predict_type="margin", missing=np.nan).astype(np.float64)
        near = np.unique((first - self.leaves[0, self.patterns(rows, slice(0, 1))[:, 0]]).astype(np.float32))
        candidates = {self.base_margin, *near, *np.nextafter(near, np.float32(np.inf)),
                      *np.nextafter(near, np.float32(-np.inf))}
        for candidate in sorted(candidates, key=lambda c: abs(c - self.base_margin))[:BASE_MARGIN_TRIES]:
            self.base_margin = np.float32(candidate)
            if all(np.array_equal(got, want) for got, want in zip(self.predict(rows), expected)):
                return True
        return False

    # ------------------------------------------------------------------ on disk
    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(partial, features=self.features, thresholds=self.thresholds, default_left=self.default_left,
                 nodes=self.nodes, contributions=self.contributions, leaves=self.leaves,
                 base_margin=self.base_margin, model_sha256=np.array(self.model_sha256))
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> "TreeTables":
        with np.load(path) as saved:
            splits = {k: saved[k] for k in ("features", "thresholds", "default_left", "nodes")}
            tables = cls(splits, saved["contributions"], saved["leaves"], float(saved["base_margin"]))
            tables.model_sha256 = str(saved["model_sha256"]) if "model_sha256" in saved else ""
            return tables


def _distinct_splits(trees: list[dict], nodes: list[list[int]]) -> dict[str, np.ndarray]:
    """Every distinct (feature, threshold, default direction) once; each tree's nodes as indices into them
    (padding points one past the last split, a column that never goes left)."""
    index: dict[tuple, int] = {}
    per_tree = np.empty((len(trees), TABLE_NODES), np.intp)
    for t, (tree, internal) in enumerate(zip(trees, nodes)):
        keys = [(tree["split_indices"][i], np.float32(tree["split_conditions"][i]).item(),
                 bool(tree["default_left"][i])) for i in internal]
        ids = [index.setdefault(key, len(index)) for key in keys]
        per_tree[t] = ids + [-1] * (TABLE_NODES - len(ids))
    per_tree[per_tree < 0] = len(index)
    keys = list(index)
    return {"features": np.array([k[0] for k in keys], np.intp),
            "thresholds": np.array([k[1] for k in keys], np.float32),
            "default_left": np.array([k[2] for k in keys], bool), "nodes": per_tree}


def _cell_rows(tree: dict, columns: int) -> np.ndarray:
    """One row in every cell of the tree's splits (missing, below the first threshold, at each threshold);
    columns the tree does not use are missing."""
    cuts: dict[int, set] = {}
    for node, child in enumerate(tree["left_children"]):
        if child != -1:
            cuts.setdefault(tree["split_indices"][node], set()).add(np.float32(tree["split_conditions"][node]))
    grids = [[np.float32(np.nan), np.nextafter(min(c), np.float32(-np.inf)), *sorted(c)] for c in cuts.values()]
    rows = np.full((int(np.prod([len(g) for g in grids])), columns), np.nan, np.float32)
    for combo, row in zip(itertools.product(*grids), rows):
        row[list(cuts)] = combo
    return rows


def load_tables(model_file: Path, booster: Callable[[], Any], cache: Path | None = None) -> TreeTables | None:
    """The model's lookup tables from the cache under ``$LENDSAFE_HOME/cache`` (built from ``booster()``
    and saved on first use, keyed by the model file's hash and the xgboost version); None when the model
    cannot have them."""
    key = hashlib.sha256(model_file.read_bytes()).hexdigest()[:32]
    path = (cache or Settings().home / "cache" / "risk-tables") / f"{key}-xgboost{xgboost_version()}.npz"
    if path.exists():
        return TreeTables.load(path)
    tables = TreeTables.build(booster())
    if tables is not None:
        try:
            tables.save(path)
        except OSError:           # a read-only home still scores, it only builds again next time
            pass
    return tables


def xgboost_version() -> str:
    """The installed xgboost's version, read without importing it."""
    spec = importlib.util.find_spec("xgboost")
    folder = Path(spec.origin).parent if spec and spec.origin else None
    if folder is None or not (folder / "VERSION").is_file():
        import xgboost

        return xgboost.__version__
    return (folder / "VERSION").read_text().strip()
