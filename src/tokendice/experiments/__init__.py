"""Experiments: each computes a typed result (results.py) from an engine; none draws or prints."""
