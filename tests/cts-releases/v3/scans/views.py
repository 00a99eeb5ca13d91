"""The JSON API (scans read from PostgreSQL) and the health check."""
from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from .models import Scan


def scans(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        database = cursor.fetchone()[0]
    latest = Scan.objects.order_by("-id").values("id", "package", "source", "host", "severity")[:50]
    return JsonResponse({
        "api": 3,
        "release": settings.RELEASE,
        "database": database,
        "count": Scan.objects.count(),
        "scans": list(latest),
    })


def health(request):
    # Release v3 is broken on purpose: its health check fails, so the roll stops.
    return JsonResponse({"status": "broken", "release": settings.RELEASE}, status=503)
