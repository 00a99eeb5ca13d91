"""The sandbox demo's WSGI application: tests/sandbox/demo-repo.sh commits this folder to a git
repository and role app deploys it as a release. Real deployments point vars.app.repo at their
own repository and vars.app.wsgi_module at their own application."""

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
