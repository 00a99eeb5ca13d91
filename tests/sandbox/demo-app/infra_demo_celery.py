"""The sandbox demo's celery application, deployed with infra_demo_wsgi.py (see there), so that
the celery worker and beat programs have something to run. Real deployments set
vars.app.celery_app to their own."""

import os

from celery import Celery

# Not a Django project, though the env file names the real one's DJANGO_SETTINGS_MODULE: with
# python3-django installed, celery's Django fix-up would import that missing module and exit.
app = Celery("infra_demo", broker=os.environ["BROKER_URL"], fixups=[])
app.conf.beat_schedule = {
    "heartbeat": {"task": "infra_demo_celery.heartbeat", "schedule": 300.0},
}


@app.task
def heartbeat():
    return "ok"
