"""Leader elections, reassignment and describe filters on a data directory with no broker running."""

from __future__ import annotations

import os
import subprocess
import sys

from support.runner import KcliRunner

from kcli.cluster.controller import NO_LEADER, choose_leader
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata, PartitionMeta


def kcli(tmp_path, *args, stdin=None):
    env = dict(os.environ, KCLI_DATA_DIR=str(tmp_path / "data"))
    return subprocess.run([sys.executable, "-m", "kcli.cli.main", *args], env=env, input=stdin,
                          capture_output=True, text=True)


def test_choose_leader_prefers_highest_leo_then_preferred_replica():
    meta = PartitionMeta(replicas=[0, 1, 2], leader=0, isr=[0, 1, 2])
    leo = {0: 10, 1: 12, 2: 12}
    assert choose_leader(meta, {1, 2}, leo.__getitem__, False) == (1, [1, 2], False)
    assert choose_leader(meta, {2}, leo.__getitem__, False) == (2, [2], False)


def test_no_live_isr_goes_offline_unless_unclean_allowed():
    meta = PartitionMeta(replicas=[0, 1, 2], leader=0, isr=[0])
    leo = {0: 10, 1: 7, 2: 9}
    assert choose_leader(meta, {1, 2}, leo.__getitem__, False) == (NO_LEADER, [0], False)
    assert choose_leader(meta, {1, 2}, leo.__getitem__, True) == (2, [2], True)


def _setup(tmp_path, brokers=3, rf=2, partitions=2, lines=300):
    """The cluster, topic and records the tests work on: the topic and records in this process (setup,
    not under test); ``cluster init -n`` stays a process, the only one of its short flag."""
    runner = KcliRunner(tmp_path / "data")
    runner("cluster", "init", "-n", brokers)
    runner.in_process("topic", "create", "t", "-p", partitions, "-r", rf)
    runner.produce_lines("t", "".join(f"m{i}\n" for i in range(lines)), "-p", 0)


def test_reassign_copies_data_and_moves_replicas(tmp_path):
    _setup(tmp_path)
    meta = Metadata(DataDir(str(tmp_path / "data"))).load().partition("t", 0)
    target = [b for b in range(3) if b not in meta.replicas] + [meta.replicas[0]]
    plan = ",".join(map(str, target))
    dry = kcli(tmp_path, "reassign", "-t", "t", "-p", "0", "-r", plan)
    assert dry.returncode == 0 and "Dry run" in dry.stderr
    assert Metadata(DataDir(str(tmp_path / "data"))).load().partition("t", 0).replicas == meta.replicas
    r = kcli(tmp_path, "reassign", "-t", "t", "-p", "0", "-r", plan, "--execute")
    assert r.returncode == 0, r.stderr
    after = Metadata(DataDir(str(tmp_path / "data"))).load().partition("t", 0)
    assert after.replicas == target and after.isr == target
    removed = [b for b in meta.replicas if b not in target]
    for b in removed:
        assert not os.path.exists(tmp_path / "data" / f"broker-{b}" / "t-0")
    logs = {b: (tmp_path / "data" / f"broker-{b}" / "t-0" / ("0" * 20 + ".log")).read_bytes() for b in target}
    assert len(set(logs.values())) == 1 and len(logs[target[0]]) > 0
    out = kcli(tmp_path, "consume", "t", "-p", "0", "-b", "-e")
    assert out.stdout.split() == [f"m{i}" for i in range(300)]


def test_preferred_election_moves_leader_and_bumps_epoch(tmp_path):
    _setup(tmp_path)
    md = Metadata(DataDir(str(tmp_path / "data")))
    meta = md.load().partition("t", 0)
    md.update_partition("t", 0, leader=meta.replicas[1])
    r = kcli(tmp_path, "leader-election", "--preferred", "--topic", "t")
    assert r.returncode == 0, r.stderr
    assert f"t-0: leader {meta.replicas[0]} (was {meta.replicas[1]}), epoch 1" in r.stdout
    after = md.load().partition("t", 0)
    assert after.leader == meta.replicas[0] and after.leader_epoch == 1
    again = kcli(tmp_path, "leader-election", "--preferred", "--all")
    assert again.returncode == 0 and again.stdout == ""


def test_offline_partition_refuses_io_until_unclean_election(tmp_path):
    _setup(tmp_path, rf=3, partitions=1)
    md = Metadata(DataDir(str(tmp_path / "data")))
    meta = md.load().partition("t", 0)
    md.update_partition("t", 0, leader=-1, isr=[])
    r = kcli(tmp_path, "consume", "t", "-b", "-e")
    assert r.returncode == 10 and r.stderr.startswith("kcli: error: partition t-0 has no leader")
    listing = kcli(tmp_path, "topic", "describe", "--unavailable-partitions")
    assert "\nt\t0\t-1\t" in listing.stdout
    r = kcli(tmp_path, "leader-election", "--unclean", "--all")
    assert r.returncode == 0 and "UNCLEAN election" in r.stdout
    after = md.load().partition("t", 0)
    assert after.leader == meta.replicas[0] and after.isr == [after.leader] and after.leader_epoch == 1
    out = kcli(tmp_path, "consume", "t", "-b", "-e")
    assert len(out.stdout.split()) == 300
    under = kcli(tmp_path, "topic", "describe", "--under-replicated-partitions")
    assert "\nt\t0\t" in under.stdout


def test_election_usage_errors(tmp_path):
    _setup(tmp_path, lines=1)
    r = kcli(tmp_path, "leader-election", "--all")
    assert r.returncode == 2 and "choose --preferred or --unclean" in r.stderr
    r = kcli(tmp_path, "reassign", "-t", "t", "-p", "0", "-r", "0,9", "--execute")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
