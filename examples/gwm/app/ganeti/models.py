"""A Ganeti cluster GWM knows, and the jobs its workers run (seed 003: celery workers keep
PostgreSQL up to date with the clusters' state)."""
from django.db import models


class Cluster(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    hostname = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=5080)
    created = models.DateTimeField(auto_now_add=True)
    refreshed = models.DateTimeField(null=True, blank=True)

    def as_json(self):
        return {
            "name": self.name,
            "hostname": self.hostname,
            "port": self.port,
            "refreshed": self.refreshed.isoformat() if self.refreshed else None,
        }


class Job(models.Model):
    QUEUED, DONE, FAILED = "queued", "done", "failed"
    cluster = models.ForeignKey(Cluster, null=True, blank=True, on_delete=models.CASCADE)
    # "refresh" (asked for through the API) or "poll" (scheduled by celery beat).
    op = models.CharField(max_length=20)
    status = models.CharField(max_length=10, default=QUEUED)
    # Who asked: the Keystone user of the token, or "beat".
    requested_by = models.CharField(max_length=255)
    result = models.JSONField(default=dict)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    def as_json(self):
        return {
            "id": self.id,
            "cluster": self.cluster.name if self.cluster else None,
            "op": self.op,
            "status": self.status,
            "requested_by": self.requested_by,
            "result": self.result,
            "finished": self.finished.isoformat() if self.finished else None,
        }
