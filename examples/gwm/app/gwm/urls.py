"""URLs: the versioned JSON API (frozen per version, seed 003: /v1.0 first) and the health check."""
from django.urls import path

from ganeti import views

urlpatterns = [
    path("health/", views.health, name="health"),
    path("v1.0/", views.index, name="index"),
    path("v1.0/whoami/", views.whoami, name="whoami"),
    path("v1.0/clusters/", views.clusters, name="clusters"),
    path("v1.0/jobs/", views.jobs, name="jobs"),
    path("v1.0/jobs/<int:job_id>/", views.job, name="job"),
]
