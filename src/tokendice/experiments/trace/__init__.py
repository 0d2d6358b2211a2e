"""Tracing one generation: every step explained (white-box), or as a server reported it (black-box)."""
