"""A tiny celery application shipped by infra (role app) so that the celery worker and beat
programs have something to run. Real deployments set vars.app.celery_app to their own."""

import os

from celery import Celery

app = Celery("infra_demo", broker=os.environ["BROKER_URL"])
app.conf.beat_schedule = {
    "heartbeat": {"task": "infra_demo_celery.heartbeat", "schedule": 300.0},
}


@app.task
def heartbeat():
    return "ok"
