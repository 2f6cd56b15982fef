"""Kafka-format storage: record batches, segments, indexes and partition logs.

Imports nothing of kcli but ``kcli.errors`` and ``kcli.storage.config``.
"""
