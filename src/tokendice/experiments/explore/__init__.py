"""Exploring by hand: fork a generation at any token, continue it, and see every branch's exact probability."""
