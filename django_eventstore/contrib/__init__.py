"""Integrations of the store with other libraries, each an optional extra (e.g. ``contrib.eventsourcing``)."""
