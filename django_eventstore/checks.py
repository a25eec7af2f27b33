"""System checks of the EVENTSTORE setting (ids django_eventstore.E001...); no network."""
