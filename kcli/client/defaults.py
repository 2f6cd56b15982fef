"""The client's named values that command-line options need when they are defined: kept in a module of
their own, so that defining ``kcli produce``'s or ``kcli consume``'s options imports nothing more (the
Transport Protocol and the transactional producer cost every start-up to define)."""

READ_UNCOMMITTED = "read_uncommitted"  # every batch up to the high watermark (Kafka's isolation.level 0)
READ_COMMITTED = "read_committed"  # up to the last stable offset, without aborted transactions (1)
ISOLATION_LEVELS = (READ_COMMITTED, READ_UNCOMMITTED)
TRANSACTION_TIMEOUT_MS = 60000  # Kafka's producer default transaction.timeout.ms
