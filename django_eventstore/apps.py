from django.apps import AppConfig


class EventStoreConfig(AppConfig):
    name = "django_eventstore"
    verbose_name = "Event store"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
        from . import conf  # noqa: F401 - connects the setting_changed receiver
