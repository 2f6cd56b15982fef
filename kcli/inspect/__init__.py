"""Operator tools over partition directories: dump-log, log-dirs, verify and repair.

A library (the CLI in ``kcli.cli.inspect`` is a thin layer over it).  Everything here reads segment
files defensively: corrupt or torn data is reported with its position, never raised as a crash, and
nothing is written except by ``repair.execute``.  Works on kcli data dirs and on real Kafka log dirs.
"""
