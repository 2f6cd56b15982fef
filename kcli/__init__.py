"""kcli: Apache Kafka's log model on one machine's disk."""

__version__ = "0.1.0"
