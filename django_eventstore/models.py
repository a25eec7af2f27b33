"""The app's models: ``Actor`` (unmanaged, no table: it anchors "Actors" in the admin) and the projections' checkpoints."""

from django.db import models
from django.utils import timezone


class Actor(models.Model):
    """An actor of the event store. Its rows live in JetStream, never in the database."""

    actor_id = models.CharField(max_length=256, primary_key=True)

    class Meta:
        managed = False
        default_permissions = ("view",)
        permissions = [("write_events", "Can write events and snapshots")]  # the REST API's writes (api/permissions.py)
        verbose_name = "actor"
        verbose_name_plural = "actors"

    def __str__(self) -> str:
        return self.actor_id


class ProjectionCheckpoint(models.Model):
    """How far a projection has applied the events stream; moved by a compare-and-set in each batch's transaction."""

    name = models.CharField(max_length=100, primary_key=True, help_text="the projection's name")
    position = models.PositiveBigIntegerField(default=0, help_text="stream sequence of the last event applied (0: none)")
    updated_at = models.DateTimeField(default=timezone.now)
    error = models.TextField(blank=True, default="", help_text="why the last attempt failed; empty when healthy")
    error_position = models.PositiveBigIntegerField(null=True, blank=True, help_text="position of the event that failed")

    class Meta:
        ordering = ("name",)
        verbose_name = "projection"
        verbose_name_plural = "projections"

    def __str__(self) -> str:
        return f"{self.name} at {self.position}"
