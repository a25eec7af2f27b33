"""An unmanaged model with no table: it anchors "Actors" in the admin and carries its permission."""

from django.db import models


class Actor(models.Model):
    """An actor of the event store. Its rows live in JetStream, never in the database."""

    actor_id = models.CharField(max_length=256, primary_key=True)

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = "actor"
        verbose_name_plural = "actors"

    def __str__(self) -> str:
        return self.actor_id
