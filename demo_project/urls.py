from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("demo_project.bank.urls")),
    path("admin/", admin.site.urls),
    path("api/eventstore/", include("django_eventstore.api.urls")),
]
