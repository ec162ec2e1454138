"""A user's own lending data and spec (``mylender``), shared by the spec and dataset tests."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

USER_SPEC = textwrap.dedent('''
    name = "mylender"
    title = "My lender's personal loans"
    source = "mylender decisions export"
    csv = "decisions.csv"
    target = "outcome"
    target_positive = "bad"
    outcome = "the loan not being repaid"
    threshold = 0.5
    threshold_version = "mylender-1"

    [[excluded]]
    column = "sex"
    kind = "protected"
    why = "sex is a prohibited basis"

    [[features]]
    name = "debt_ratio"
    column = "debt_ratio"
    type = "float"
    min = 0
    max = 5
    monotone = 1
    reason = "DEBT_TO_INCOME"
    label = "Debt ratio"

    [[features]]
    name = "payment_ratio"
    column = "payment_ratio"
    type = "float"
    min = 0
    max = 2
    monotone = 1
    reason = "DEBT_TO_INCOME"
    label = "Payment-to-income ratio"

    [[features]]
    name = "late_payments"
    column = "late"
    type = "int"
    min = 0
    max = 20
    monotone = 1
    reason = "CONSUMER_CREDIT_HISTORY"
    label = "Late payments"

    [[features]]
    name = "public_record"
    column = "record"
    type = "bool"
    monotone = 1
    reason = "PUBLIC_RECORD"
    label = "Public record"
''')


def write_user_data(folder: Path, rows: int = 600, seed: int = 7) -> Path:
    """A small lending CSV whose outcome follows the features (and not the protected column)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "debt_ratio": rng.uniform(0, 2, rows).round(3), "payment_ratio": rng.uniform(0, 1, rows).round(3),
        "late": rng.integers(0, 7, rows), "record": rng.choice(["yes", "no"], rows, p=[0.2, 0.8]),
        "sex": rng.choice(["F", "M"], rows)})
    logit = -4 + 2 * frame.debt_ratio + 2 * frame.payment_ratio + 0.5 * frame.late + 1.5 * (frame.record == "yes")
    frame["outcome"] = np.where(rng.uniform(size=rows) < 1 / (1 + np.exp(-logit)), "bad", "good")
    frame.to_csv(folder / "decisions.csv", index=False)
    (folder / "mylender.toml").write_text(USER_SPEC)
    return folder / "mylender.toml"


def spec_with(tmp_path: Path, old: str, new: str) -> Path:
    write_user_data(tmp_path, rows=50)
    path = tmp_path / "mylender.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path
