"""Consumer-group state: one offsets store and one view of groups, whether brokers run or not.

The members that consume (embedded or through a coordinator) live in kcli.client, above this layer;
the broker's coordinator uses the same stores.

- :mod:`kcli.groups.offsets`     the committed-offsets store (OffsetStore), shared with the broker coordinator
- :mod:`kcli.groups.assignors`   Kafka's range and roundrobin assignors as pure functions
- :mod:`kcli.groups.membership`  embedded membership: flock-held member files, generation
- :mod:`kcli.groups.ownership`   per-partition ownership locks (one consumer per partition at a time)
- :mod:`kcli.groups.view`        describe / lag / list, read from the same files
- :mod:`kcli.groups.reset`       planning reset-offsets
- :mod:`kcli.groups.layout`      where a group's files live

Submodules are imported on demand, so importing one does not pull in the others.
"""
