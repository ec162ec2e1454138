"""Errors LendSafe raises; each inherits from the built-in error callers already catch."""


class LendSafeError(Exception):
    """Base class: the CLI prints the message and exits with code 2."""


class InvalidApplicationError(LendSafeError, ValueError):
    """An application failed validation; ``problems`` lists one message per field."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid application: " + "; ".join(self.problems))


class ArtifactNotFoundError(LendSafeError, FileNotFoundError):
    """A model, adapter, index or data file that a step needs is missing."""


class ConfigurationError(LendSafeError, ValueError):
    """A setting has a value outside what it accepts."""


class IncompatibleAdapterError(LendSafeError, ValueError):
    """A LoRA adapter was asked to load onto a base model other than its own."""


class AuditIntegrityError(LendSafeError):
    """The audit store's hash chain or an append-only rule was violated."""
