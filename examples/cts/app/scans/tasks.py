"""Celery tasks: `poll`, scheduled by beat (CELERY_BEAT_SCHEDULE), records one row per run."""
import socket

from celery import shared_task

from .models import Scan


@shared_task
def poll():
    scan = Scan.objects.create(package="poll", source="beat", host=socket.gethostname())
    return scan.id
