"""Mount with ``path("api/eventstore/", include("django_eventstore.api.urls"))``; routes in DESIGN section 8."""

from django.urls import path

from . import views
from .routing import ACTOR, actor_patterns
from .schema import SchemaView

app_name = "django_eventstore"

urlpatterns = [
    path("actors/", views.ActorListView.as_view(), name="actor-list"),
    *actor_patterns(
        {
            ACTOR: views.ActorDetailView.as_view(),
            "events": views.ActorEventsView.as_view(),
            "version": views.ActorVersionView.as_view(),
            "snapshot": views.ActorSnapshotView.as_view(),
        }
    ),
    path("events/", views.EventFeedView.as_view(), name="event-list"),
    path("schema/", SchemaView.as_view(), name="schema"),
]
