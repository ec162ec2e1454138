"""LendSafe."""
