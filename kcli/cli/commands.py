"""``kcli``'s command table: which module holds each command, and the help line ``kcli --help`` shows
without importing it.  Kept apart from click so the entry point can read it at no cost."""

from __future__ import annotations

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
    "transform": ("kcli.cli.transform", "transform",
                  "Pipe what is new for a group through a command into another topic, exactly once."),
    "transaction": ("kcli.cli.transaction", "transaction", "List and describe transactional ids."),
    "config": ("kcli.cli.config", "config", "Describe and change configs of topics, brokers and broker defaults."),
    "user": ("kcli.cli.user", "user", "Create, list and delete SCRAM users of SASL listeners."),
    "acl": ("kcli.cli.acl", "acl", "Add, list and remove ACLs (who may do what on which resource)."),
}

VERSION_MESSAGE = "%(prog)s, version %(version)s"  # click's wording, which the fast path repeats
