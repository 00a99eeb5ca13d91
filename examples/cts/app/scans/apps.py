"""The scans application."""
from django.apps import AppConfig


class ScansConfig(AppConfig):
    name = "scans"
    default_auto_field = "django.db.models.BigAutoField"
