"""The JSON API, version 1.0 (seed 003: every response is JSON; a released version is frozen).
/v1.0/ and /health/ are public; the rest needs a Keystone token (X-Auth-Token)."""
import json

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET, require_http_methods

from . import tasks
from .keystone import token_required
from .models import Cluster, Job


def health(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return JsonResponse({"status": "ok", "release": settings.RELEASE})


@require_GET
def index(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        database = cursor.fetchone()[0]
    return JsonResponse({
        "api": "v1.0",
        "release": settings.RELEASE,
        "database": database,
        "clusters": Cluster.objects.count(),
        "jobs": Job.objects.count(),
    })


def user_of(request):
    user = request.keystone.get("user", {})
    return f"{user.get('name', '?')}@{user.get('domain', {}).get('name', '?')}"


@require_GET
@token_required
def whoami(request):
    token = request.keystone
    return JsonResponse({
        "user": token.get("user", {}).get("name"),
        "domain": token.get("user", {}).get("domain", {}).get("name"),
        "project": token.get("project", {}).get("name"),
        "roles": sorted(r.get("name") for r in token.get("roles", [])),
        "expires_at": token.get("expires_at"),
    })


def body_of(request):
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@require_http_methods(["GET", "POST"])
@token_required
def clusters(request):
    if request.method == "GET":
        return JsonResponse({"clusters": [c.as_json() for c in Cluster.objects.order_by("name")]})
    data = body_of(request)
    name, hostname = (data or {}).get("name"), (data or {}).get("hostname")
    if not isinstance(name, str) or not isinstance(hostname, str) or not name or not hostname:
        return JsonResponse({"error": "a JSON object with name and hostname is required"}, status=400)
    cluster, created = Cluster.objects.get_or_create(name=name[:100], defaults={"hostname": hostname[:255]})
    return JsonResponse(cluster.as_json(), status=201 if created else 200)


@require_http_methods(["GET", "POST"])
@token_required
def jobs(request):
    if request.method == "GET":
        latest = Job.objects.select_related("cluster").order_by("-id")[:50]
        return JsonResponse({"jobs": [j.as_json() for j in latest]})
    data = body_of(request) or {}
    cluster = Cluster.objects.filter(name=data.get("cluster")).first()
    if cluster is None:
        return JsonResponse({"error": "no such cluster"}, status=404)
    job = Job.objects.create(cluster=cluster, op="refresh", requested_by=user_of(request))
    # Through RabbitMQ to a celery worker, which records the result in PostgreSQL.
    tasks.refresh.delay(job.id)
    return JsonResponse(job.as_json(), status=202)


@require_GET
@token_required
def job(request, job_id):
    found = Job.objects.select_related("cluster").filter(id=job_id).first()
    if found is None:
        return JsonResponse({"error": "no such job"}, status=404)
    return JsonResponse(found.as_json())
