"""Evaluation primitives: per-frame metrics with the papers' conventions, and pictures."""
