"""The bank's read model: one row per account, kept up to date from the events by the ``bank.account-summaries`` projection."""

from django.db import models


class AccountSummary(models.Model):
    """An account as the list page shows it; the events in JetStream stay the truth (a rebuild recomputes every row)."""

    account_id = models.CharField(max_length=40, primary_key=True)
    number = models.PositiveBigIntegerField(db_index=True)
    owner = models.CharField(max_length=100, db_index=True)
    balance = models.BigIntegerField(default=0, help_text="in cents")
    status = models.CharField(max_length=10, help_text="open, closed, or unreadable (an event the bank cannot apply)")
    version = models.PositiveIntegerField(help_text="the account's version the row reflects")

    class Meta:
        ordering = ("number",)
        verbose_name_plural = "account summaries"

    def __str__(self) -> str:
        return self.account_id
