"""``kcli``'s entry point and its command table.

Each command lives in its own module and is imported only when it runs, so ``kcli --help`` and a small
``kcli produce`` start fast; the click application itself is :mod:`kcli.cli.app`.  ``kcli --version``
is answered before importing click, which alone costs about as much as starting Python.
"""

from __future__ import annotations

import sys

from kcli import __version__

# command name -> (module, attribute, one-line help shown by `kcli --help` without importing the module)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "produce": ("kcli.cli.produce", "produce", "Write messages from stdin or a file to a topic."),
    "consume": ("kcli.cli.consume", "consume", "Read messages from a topic."),
    "topic": ("kcli.cli.topic", "topic", "Create, list, describe, alter and delete topics."),
    "group": ("kcli.cli.group", "group", "List, describe, reset offsets of and delete consumer groups."),
    "lag": ("kcli.cli.lag", "lag", "Show consumer group lag per partition and in total (alerting with --max-lag)."),
    "cluster": ("kcli.cli.cluster", "cluster", "Initialise the data directory and show the cluster."),
    "broker": ("kcli.cli.broker", "broker", "Run a broker speaking Kafka's protocol; list live brokers."),
    "dump-log": ("kcli.cli.inspect", "dump_log", "Print the batches and index entries of segment files."),
    "log-dirs": ("kcli.cli.inspect", "log_dirs", "Show size, segments and offsets of every partition replica."),
    "verify": ("kcli.cli.inspect", "verify", "Check CRCs, offsets, indexes and replica consistency."),
    "leader-election": ("kcli.cli.elections", "leader_election", "Move partition leadership (preferred or unclean)."),
    "reassign": ("kcli.cli.elections", "reassign", "Move partition replicas between brokers."),
    "repair": ("kcli.cli.inspect", "repair", "Truncate a torn tail and rebuild indexes (dry run by default)."),
    "completion": ("kcli.cli.completion", "completion", "Print the shell completion script for bash, zsh or fish."),
    "perf": ("kcli.cli.perf", "perf", "Measure produce and consume throughput like Kafka's perf-test tools."),
    "mirror": ("kcli.cli.mirror", "mirror", "Copy a topic between the data dir and a Kafka cluster, resumably."),
}

VERSION_MESSAGE = "%(prog)s, version %(version)s"  # click's wording, which the fast path repeats


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        print(VERSION_MESSAGE % {"prog": "kcli", "version": __version__})
        sys.exit(0)
    from kcli.cli.app import run

    run(argv)


if __name__ == "__main__":  # pragma: no cover
    main()
