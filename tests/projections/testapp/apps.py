from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "tests.projections.testapp"
    label = "projections_testapp"
    default_auto_field = "django.db.models.BigAutoField"
