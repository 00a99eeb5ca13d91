"""URLs: the JSON API and the health check."""
from django.urls import path

from scans import views

urlpatterns = [
    path("api/scans/", views.scans, name="scans"),
    path("health/", views.health, name="health"),
]
