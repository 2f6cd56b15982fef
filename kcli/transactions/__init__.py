"""Transactions (exactly-once): Kafka's transaction coordinator over a durable store in the data dir.

- :mod:`kcli.transactions.coordinator`  TransactionCoordinator: InitProducerId, AddPartitions/AddOffsets,
  TxnOffsetCommit, EndTxn, timeouts, roll-forward after a crash, embedded ownership, describe/list
- :mod:`kcli.transactions.state`        one transactional id's state and Kafka's transitions
- :mod:`kcli.transactions.store`        where that state lives (one JSON file per id) and its locks

Above kcli.groups (committed transactions apply their offsets to the OffsetStore); the broker and the
embedded client both run a coordinator, each with its own MarkerWriter.
"""
