"""Performance tools behind ``kcli perf``: load generators and the reports Kafka's perf tools print.

Kept apart from the CLI so that the benchmark suite (benchmarks/run.py) can drive the same code.
"""
