"""A tiny WSGI application shipped by infra (role app) so that a fresh environment serves
something end to end. Real deployments set vars.app.wsgi_module to their own application."""

import os


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/healthz":
        body = b"ok\n"
    else:
        body = ("hello from %s\n" % os.environ.get("DJANGO_SETTINGS_MODULE", "infra")).encode()
    start_response("200 OK", [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ])
    return [body]
