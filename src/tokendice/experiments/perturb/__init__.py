"""Prompt sensitivity: variants of a prompt, how far each moves the output, over a prompt suite."""
