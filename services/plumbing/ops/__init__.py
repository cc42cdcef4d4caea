"""SRE tools: the topic catalogue and AsyncAPI document, consumer lag, dead letters, metrics.

Run each as a module (`python -m services.plumbing.ops.<tool> --help`); docs/runbook.md says when.
"""
