"""Mount with ``path("api/eventstore/", include("django_eventstore.api.urls"))``.

An actor's routes take its id as one path segment, encoded as ``actor_urls`` says (``a/b`` as ``a~2Fb``).
"""

from django.urls import path

from . import views
from .docs import DocsView, docs_asset
from .schema import SchemaView
from .state import ActorStateView
from .stream import EventStreamView

app_name = "django_eventstore"

urlpatterns = [
    path("", views.APIRootView.as_view(), name="api-root"),
    path("actors/", views.ActorListView.as_view(), name="actor-list"),
    path("actors/<str:actor_id>/", views.ActorDetailView.as_view(), name="actor-detail"),
    path("actors/<str:actor_id>/events/", views.ActorEventsView.as_view(), name="actor-events"),
    path("actors/<str:actor_id>/version/", views.ActorVersionView.as_view(), name="actor-version"),
    path("actors/<str:actor_id>/snapshot/", views.ActorSnapshotView.as_view(), name="actor-snapshot"),
    path("actors/<str:actor_id>/state/", ActorStateView.as_view(), name="actor-state"),
    path("events/", views.EventFeedView.as_view(), name="event-list"),
    path("events/stream/", EventStreamView.as_view(), name="event-stream"),
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(), name="docs"),
    path("docs/<str:name>", docs_asset, name="docs-asset"),
]
