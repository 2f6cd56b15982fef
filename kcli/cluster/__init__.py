"""Cluster metadata: the data directory's layout and locks, topics, assignment, leaders and ISR, producer
ids, and the broker registry (where a running broker is reached, and whether it lives), shared by the
broker and the client beneath both.

- :mod:`kcli.cluster.datadir`      the data directory's layout and its file locks
- :mod:`kcli.cluster.metadata`     topics, partitions, replicas, leaders and ISR (``metadata.log``)
- :mod:`kcli.cluster.controller`   leader elections and ISR changes on the metadata
- :mod:`kcli.cluster.topics`       topic admin straight on the data directory
- :mod:`kcli.cluster.producers`    producer ids (per-partition producer state: kcli.storage.producer_state)
- :mod:`kcli.cluster.broker_info`  where a broker is reached (``broker.sock``, ``broker.json``)
- :mod:`kcli.cluster.liveness`     running, stopped or lost: broker locks plus heartbeat files
- :mod:`kcli.cluster.advice`       Kafka's operating guidance as warnings and advice
"""
