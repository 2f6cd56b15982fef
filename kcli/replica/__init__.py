"""Writing a partition's replicas: the layer beneath both the broker and the embedded client.

- :mod:`kcli.replica.writer`       PartitionWriter: one write session on a partition's leader and followers
- :mod:`kcli.replica.checkpoints`  a broker folder's per-replica checkpoints (recovery point, high watermark)

Imports only kcli.cluster, kcli.storage and kcli.errors, so a broker and an embedded writer share one
write path without importing each other.
"""
