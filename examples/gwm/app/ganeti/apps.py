"""The ganeti application."""
from django.apps import AppConfig


class GanetiConfig(AppConfig):
    name = "ganeti"
    default_auto_field = "django.db.models.BigAutoField"
