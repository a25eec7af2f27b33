from django.apps import AppConfig


class EventStoreConfig(AppConfig):
    name = "django_eventstore"
    verbose_name = "Event store"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks, conf  # noqa: F401 - importing registers the system checks and the setting_changed receiver
        from .upcasting import autodiscover

        autodiscover()
