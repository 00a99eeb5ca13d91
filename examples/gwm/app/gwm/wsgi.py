"""The WSGI application gunicorn serves (gwm.wsgi:application)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gwm.settings")

application = get_wsgi_application()
