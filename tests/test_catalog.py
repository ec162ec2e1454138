"""The reason catalog: complete entries, statements that follow the value, sources checked."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lendsafe.decide.catalog import CatalogEntry, catalog_sha256, is_missing, load_catalog
from lendsafe.decide.specs import builtin_dataset_names, load_spec
from lendsafe.errors import ConfigurationError

DATASETS = builtin_dataset_names()


def test_catalog_entries_are_complete_and_statements_follow_the_value():
    catalog = load_catalog()
    used = {f.reason for name in DATASETS for f in load_spec(name).model_features}
    assert used <= set(catalog)
    for entry in catalog.values():
        assert entry.statement and entry.factor and entry.citation.startswith("12 CFR 1002")
    history = catalog["CONSUMER_CREDIT_HISTORY"]
    assert history.statement_for(4).startswith("Limited credit experience")
    assert history.statement_for(6) == history.statement
    assert catalog["LOAN_TO_VALUE"].statement_for(0.9, "loan_to_price").startswith("Amount of credit requested")
    assert catalog["INCOME_INSUFFICIENT"].statement_for(None).startswith("Credit application incomplete")
    assert {entry.source for entry in catalog.values()} == {"application", "consumer_report", "third_party"}
    assert all(entry.missing and not any(ch.isdigit() for ch in entry.missing) for entry in catalog.values())
    assert len(catalog_sha256()) == 64


@pytest.mark.parametrize("value, missing", [(None, True), (math.nan, True), (np.float64("nan"), True),
                                            (0, False), (0.0, False), ("", False), (False, False)])
def test_only_none_and_nan_count_as_not_given(value, missing):
    assert is_missing(value) is missing


def test_an_unknown_information_source_is_refused_by_name():
    with pytest.raises(ConfigurationError, match="reason X: source must be one of"):
        CatalogEntry(code="X", statement="s", factor="f", citation="12 CFR 1002.9", source="rumour")
