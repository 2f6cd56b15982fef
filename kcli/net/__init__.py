"""Talking to brokers over the network: one connection speaking Kafka's protocol (kcli.protocol is the
pure codec beneath it).  Clients reaching leaders and follower brokers fetching from theirs use the same
connection, so it lies beneath both."""
