"""Shared fixtures: ``kcli`` runs the real CLI on a per-test data dir (in a subprocess, or in-process
for usage errors: ``kcli.in_process``); ``brokers``/``broker`` run real ``kcli broker serve`` processes;
``tansu`` runs an independent Kafka-compatible broker.  The helpers behind them live in ``support/``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.brokers import BrokerProcess, Brokers
from support.negotiated import LOG_REQUESTS
from support.runner import KcliRunner
from support.tansu import start_tansu


@pytest.fixture
def kcli(tmp_path: Path) -> KcliRunner:
    return KcliRunner(tmp_path / "data")


@pytest.fixture
def brokers(tmp_path: Path):
    """Start brokers on one data dir; every one is stopped after the test (SIGTERM, then SIGKILL if it
    hangs), whether it passed or not, and their logs' tails go to the failed test's report."""
    started = Brokers(tmp_path / "data", tmp_path)
    try:
        yield started
    finally:
        started.stop_all()
        started.print_logs()  # pytest shows a test's captured output only when it failed


@pytest.fixture
def broker(brokers: Brokers, request: pytest.FixtureRequest) -> BrokerProcess:
    """One broker (id 0) on a fresh data dir, which it initialises; ``broker.kcli`` runs kcli on it
    (``broker.runner`` is the KcliRunner behind it, for setup steps in this process).
    A module that needs topics first overrides this fixture with one that takes ``broker`` too.
    Marked ``log_requests``, the broker logs the versions clients use (support.negotiated)."""
    b = brokers.start(0, *(LOG_REQUESTS if request.node.get_closest_marker("log_requests") else ()))
    b.kcli = brokers.kcli
    b.runner = brokers.runner
    return b


@pytest.fixture
def tansu(tmp_path: Path):
    """A tansu broker on a free loopback port (skipped when not installed), stopped after the test."""
    started = start_tansu(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: one worker more than there are CPUs.  Part of the suite waits rather than computes
    (brokers starting, group joins and session timeouts, tansu), and the extra worker uses those gaps: on
    2 CPUs the quick subset took ~96 s with 2 workers and ~73 s with 3 (with --dist worksteal).
    PYTEST_XDIST_AUTO_NUM_WORKERS still decides when set (None hands over to xdist's hook, which reads it)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return len(os.sched_getaffinity(0)) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark by place, so no test module can forget: everything under tests/faults/ is ``faults``, and
    the modules that run real Kafka clients or another broker are ``interop`` (``-m "not faults and
    not interop and not slow"`` is the quick subset)."""
    for item in items:
        path = Path(str(item.fspath))
        if "faults" in path.parts:
            item.add_marker(pytest.mark.faults)
        if "interop" in path.name or "tansu" in path.name:
            item.add_marker(pytest.mark.interop)
