from django.apps import AppConfig


class BankConfig(AppConfig):
    """The demo's example domain: bank accounts stored as event-sourced actors."""

    name = "demo_project.bank"
    label = "bank"
    verbose_name = "Bank (demo)"
