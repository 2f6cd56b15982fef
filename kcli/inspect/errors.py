"""Errors of the inspection tools, as KcliError subclasses so the CLI maps them to exit codes."""

from __future__ import annotations

from kcli.errors import KcliError, LockTimeoutError


class ProblemsFound(KcliError):
    """An inspection found corrupt or inconsistent data (exit 1: a failed operation)."""

    exit_code = 1


class PartitionLockedError(LockTimeoutError):
    """A writer or a broker holds the partition, so it must not be repaired now (exit 5, like a lock
    that could not be had)."""
