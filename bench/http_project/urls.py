"""The bare view at ``bare/`` and the store's API at ``api/eventstore/``."""

from django.urls import include, path

from .views import BareView

urlpatterns = [
    path("bare/", BareView.as_view(), name="bare"),
    path("api/eventstore/", include("django_eventstore.api.urls")),
]
