"""The store itself: pure Python and nats-py, no Django imports."""
