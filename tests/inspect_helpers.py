"""Helpers shared by the inspect tests: run kcli, check one-line errors, build data dirs from fixtures."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from support.runner import KcliRunner, one_error_line  # noqa: F401  (one_error_line: for the inspect tests)

from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEG0 = "00000000000000000000"


def kcli(*args: object, data_dir: Path | None = None) -> subprocess.CompletedProcess:
    """``kcli [--data-dir DIR] ARGS`` with no KCLI_DATA_DIR: the inspect commands take paths."""
    pre = ["--data-dir", data_dir] if data_dir is not None else []
    return KcliRunner(None)(*pre, *args, ok=False, timeout=60)


def make_datadir(root: Path, topics: dict[str, tuple[str, int, dict]]) -> DataDir:
    """A 2-broker data dir; ``topics`` maps name -> (fixture set, replication factor, configs), and every
    replica gets a copy of the fixture's partition dir."""
    dd = DataDir(str(root))
    md = Metadata(dd)
    md.ensure(brokers=2)
    for name, (fixture, rf, configs) in topics.items():
        meta = md.create_topic(name, 1, rf, configs)
        source = next((FIXTURES / fixture).glob("*-0"))
        for broker in meta.partitions[0].replicas:
            shutil.copytree(source, dd.partition_dir(broker, name, 0))
    return dd


def leader(dd: DataDir, topic: str) -> int:
    return Metadata(dd).load().topics[topic].partitions[0].leader
