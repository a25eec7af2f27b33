"""The bare view at ``bare/``, the sync twin of version/ at ``sync-version/<id>/`` and the store's API at ``api/eventstore/``."""

from django.urls import include, path

from .views import BareView, SyncVersionView

urlpatterns = [
    path("bare/", BareView.as_view(), name="bare"),
    path("sync-version/<str:actor_id>/", SyncVersionView.as_view(), name="sync-version"),
    path("api/eventstore/", include("django_eventstore.api.urls")),
]
