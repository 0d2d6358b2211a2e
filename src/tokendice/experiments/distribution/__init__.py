"""The distribution of completions: sample runs (white-box and black-box), their analysis, stored and resumable."""
