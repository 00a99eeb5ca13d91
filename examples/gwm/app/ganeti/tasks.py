"""Celery tasks. `refresh` runs a job the API queued (through RabbitMQ) and records its result in
PostgreSQL; `poll`, scheduled by beat, records one job per run. The example does not talk to a
real Ganeti RAPI: the worker records which worker ran the job and when."""
import socket

from celery import shared_task
from django.utils import timezone

from .models import Job


@shared_task
def refresh(job_id):
    job = Job.objects.select_related("cluster").get(id=job_id)
    now = timezone.now()
    job.status = Job.DONE
    job.finished = now
    job.result = {"worker": socket.gethostname(), "cluster": job.cluster.name if job.cluster else None}
    job.save()
    if job.cluster:
        job.cluster.refreshed = now
        job.cluster.save(update_fields=["refreshed"])
    return job.id


@shared_task
def poll():
    job = Job.objects.create(
        op="poll",
        status=Job.DONE,
        requested_by="beat",
        result={"worker": socket.gethostname()},
        finished=timezone.now(),
    )
    return job.id
