"""Helpers shared by the test modules (one copy each): running kcli, brokers, tansu, waiting."""
