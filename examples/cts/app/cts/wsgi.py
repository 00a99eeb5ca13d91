"""The WSGI application gunicorn serves (cts.wsgi:application)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cts.settings")

application = get_wsgi_application()
