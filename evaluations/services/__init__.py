"""Writes for evaluations: suites, runs (start, execute, sweep, cancel), MLflow logging, comparison, alignment."""
