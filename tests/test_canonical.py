"""The one canonical JSON: sorted, compact, UTF-8, known types converted, NaN and unknown types refused."""
import datetime as dt
import hashlib
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from lendsafe.canonical import CanonicalValueError, canonical_json, canonical_sha256


def test_keys_are_sorted_without_whitespace_and_text_stays_utf8():
    assert canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'


def test_the_types_a_decision_may_carry_are_converted():
    value = {"d": dt.date(2026, 1, 2), "t": dt.datetime(2026, 1, 2, 3, 4, 5), "p": Path("a/b"), "m": Decimal("1.50"),
             "s": {3, 1}, "n": np.float32(0.5), "i": np.int64(7), "arr": np.array([1, 2])}
    assert canonical_json(value) == ('{"arr":[1,2],"d":"2026-01-02","i":7,"m":"1.50","n":0.5,"p":"a/b","s":[1,3],'
                                     '"t":"2026-01-02T03:04:05"}')


@pytest.mark.parametrize("bad", [math.nan, math.inf, {"x": -math.inf}, object(), {"x": b"bytes"}])
def test_values_without_a_canonical_form_are_refused(bad):
    with pytest.raises(CanonicalValueError):
        canonical_json(bad)


def test_the_hash_is_of_the_utf8_text():
    assert canonical_sha256({"a": "é"}) == hashlib.sha256('{"a":"é"}'.encode()).hexdigest()
