"""Measurement: paired datasets read in place, retrieval metrics, benchmark evaluation (one row per model
setting) and the cost benchmark. Not needed at run time by the app."""
