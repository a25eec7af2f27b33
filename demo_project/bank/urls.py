from django.urls import path, re_path

from . import views

app_name = "bank"
urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/open/", views.open_view, name="open"),
    re_path(r"^accounts/(?P<account_id>account-[0-9]+)/$", views.account_view, name="account"),
]
