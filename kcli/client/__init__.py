"""Client API: producer, consumer, group members and admin over a :class:`~kcli.client.transport.Transport`
(the data directory itself, or the partitions' leaders over Kafka's protocol).

- :mod:`kcli.client.transport`      the Transport seam both transports implement
- :mod:`kcli.client.embedded`       EmbeddedTransport: straight on the data dir, through kcli.replica
- :mod:`kcli.client.remote`         RemoteTransport: through leaders, with failover and retries
- :mod:`kcli.client.broker_pool`    connections to a cluster's brokers and the last Metadata
- :mod:`kcli.client.kafka_errors`   Kafka error codes in answers as kcli errors
- :mod:`kcli.client.connect`        choosing the transport for a data dir
- :mod:`kcli.client.producer`, :mod:`kcli.client.consumer`, :mod:`kcli.client.partitioner`
- :mod:`kcli.client.groups`         choosing a group member / group view for a transport
- :mod:`kcli.client.group_reader`   what every group member shares (MemberSettings)
- :mod:`kcli.client.embedded_group` GroupConsumer: a member coordinating through the data dir
- :mod:`kcli.client.group_member`, :mod:`kcli.client.group_session`: a member of a coordinator's group
- :mod:`kcli.client.cluster_groups` a cluster's groups shown as kcli shows its own
- :mod:`kcli.client.admin`, :mod:`kcli.client.remote_admin`, :mod:`kcli.client.cluster_admin`: topics
- :mod:`kcli.client.elections`, :mod:`kcli.client.mirror`
"""
