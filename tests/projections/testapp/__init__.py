"""A tiny app with read models and projections, for the projection tests (in this process and in runner subprocesses)."""
