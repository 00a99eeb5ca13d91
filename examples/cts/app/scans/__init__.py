"""Package scans: what CTS records, polled for by a celery task that beat schedules."""
