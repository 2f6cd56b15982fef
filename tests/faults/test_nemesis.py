"""The fault suite's short seeded run (see :mod:`faults.nemesis`; operators run long soaks from it).

``KCLI_NEMESIS_SECONDS`` and ``KCLI_NEMESIS_SEED`` change the run; a failure prints the report, whose
problems name the values, offsets and replicas involved, and the broker logs stay in the test's
temporary folder.
"""

from __future__ import annotations

import os

import pytest

from .nemesis import Config, run

pytest.importorskip("confluent_kafka")

pytestmark = [pytest.mark.slow, pytest.mark.interop]


def test_nothing_acknowledged_is_lost_doubled_or_reordered_under_the_nemesis(tmp_path):
    config = Config(seconds=float(os.environ.get("KCLI_NEMESIS_SECONDS", "45")),
                    seed=int(os.environ.get("KCLI_NEMESIS_SEED", "16")), workdir=tmp_path)
    report = run(config)
    print(report.summary(), *report.problems, sep="\n")
    assert sum(report.faults.values()) >= 5, report.summary()
    assert report.acknowledged > 1000, report.summary()
    assert report.violations == 0, "\n".join([report.summary(), *report.problems])
