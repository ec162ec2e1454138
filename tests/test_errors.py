"""Errors: each LendSafe error is also the built-in error callers already catch."""
from __future__ import annotations

import pytest

from lendsafe import errors

BUILT_IN_PARENTS = {
    errors.InvalidApplicationError: ValueError,
    errors.ArtifactNotFoundError: FileNotFoundError,
    errors.ConfigurationError: ValueError,
    errors.IncompatibleAdapterError: ValueError,
}


@pytest.mark.parametrize("error, parent", BUILT_IN_PARENTS.items(), ids=lambda v: getattr(v, "__name__", ""))
def test_errors_are_lendsafe_errors_and_built_in_errors(error, parent):
    assert issubclass(error, errors.LendSafeError) and issubclass(error, parent)


def test_every_error_in_the_module_is_a_lendsafe_error():
    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert len(classes) >= 6 and all(issubclass(c, errors.LendSafeError) for c in classes)


def test_invalid_application_keeps_each_problem_and_joins_them_in_the_message():
    problems = ["debt_to_income must be between 0 and 3; got -1", "condominium is required (true or false); it is missing"]
    error = errors.InvalidApplicationError(problems)
    assert error.problems == problems and error.problems is not problems
    assert str(error) == "invalid application: " + "; ".join(problems)
