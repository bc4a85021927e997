from django.urls import path

from sharing.views import pages

urlpatterns = [
    path("", pages.home, name="home"),
]
