"""The broker: ``kcli broker serve`` speaking Kafka's wire protocol over the data directory.

Modules, one job each:

- :mod:`~kcli.broker.partitions` -- the partitions this broker leads: their locks, write sessions,
  reads, ISR upkeep and high watermark, and the wake-ups long-polling fetches wait for.
- :mod:`~kcli.broker.isr` -- the leader's rules for followers: caught up or lagging, the high watermark.
- :mod:`~kcli.broker.replication` -- the follower side: fetching from leaders, truncating by leader
  epoch, appending what was fetched.
- :mod:`~kcli.broker.controller` -- the controller duty: who acts, lost brokers, elections.
- :mod:`~kcli.broker.handlers` -- one function per data-path API (ApiVersions, Metadata,
  InitProducerId, Produce, Fetch, ListOffsets, OffsetForLeaderEpoch); :mod:`~kcli.broker.admin_handlers` -- CreateTopics,
  DeleteTopics, CreatePartitions; :mod:`~kcli.broker.group_handlers` -- the consumer-group APIs.
- :mod:`~kcli.broker.answers` -- an exception to the code a request answers with (the one table is
  :mod:`kcli.protocol.error_codes`), broker failures logged.
- :mod:`~kcli.broker.coordinator` -- the group state machine; :mod:`~kcli.broker.coordinator_choice` --
  which broker coordinates a group; :mod:`~kcli.broker.group_mirror` -- its groups mirrored into group
  files; :mod:`~kcli.broker.group_service` -- its thread, offsets store and per-broker instance.
- :mod:`~kcli.broker.context` -- what every handler is given.
- :mod:`~kcli.broker.dispatch` -- request bytes in, response bytes out: decoding, the handler table,
  what to do with unknown or malformed requests.
- :mod:`~kcli.broker.server` -- sockets: the Unix and TCP listeners and one thread per connection.
- :mod:`~kcli.broker.broker` -- the process: broker lock, start-up order, maintenance, heartbeat,
  controlled shutdown.

This package imports nothing at import time, so ``kcli.cluster.broker_info`` stays cheap for clients.
"""
