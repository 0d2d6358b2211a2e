"""The determinism audit: one request under a matrix of conditions, and agreement over a prompt set."""
