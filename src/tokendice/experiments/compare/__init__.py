"""Comparing generations: models and engines on one prompt (compare), and two generations token by token (diff)."""
