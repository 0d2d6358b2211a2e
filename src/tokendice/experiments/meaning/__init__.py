"""Answers and meaning: what completions say (answer specs), their distribution, and semantic entropy."""
