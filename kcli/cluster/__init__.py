"""Cluster metadata: the data directory's layout and locks, topics, assignment, leaders and ISR."""
