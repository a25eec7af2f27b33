from django.urls import path, re_path

from . import views
from .domain import ACCOUNT_NUMBER, ACCOUNT_TYPE

app_name = "bank"
urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/open/", views.open_view, name="open"),
    re_path(rf"^accounts/(?P<account_id>{ACCOUNT_TYPE}-{ACCOUNT_NUMBER})/$", views.account_view, name="account"),
]
