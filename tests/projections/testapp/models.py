"""Read models of the test projections. The app label is explicit so the suite can use them without installing the app."""

from django.db import models


class Applied(models.Model):
    """One row per event a projection applied: an event applied twice shows as two rows."""

    projection = models.CharField(max_length=100)
    position = models.PositiveBigIntegerField()
    actor_id = models.CharField(max_length=256)
    event_type = models.CharField(max_length=256)

    class Meta:
        app_label = "projections_testapp"


class Sums(models.Model):
    """The sum of the amounts deposited per actor, and how many deposits."""

    actor_id = models.CharField(max_length=256, primary_key=True)
    total = models.BigIntegerField(default=0)
    events = models.IntegerField(default=0)

    class Meta:
        abstract = True
        app_label = "projections_testapp"


class Balance(Sums):
    """The ledger's read model."""


class BatchBalance(Sums):
    """The batched ledger's read model: the same sums, written once per batch."""
