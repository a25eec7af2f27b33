"""The REST API (DRF): include ``django_eventstore.api.urls`` in the project's URLconf."""
