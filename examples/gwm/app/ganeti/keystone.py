"""Keystone token authentication: a view wrapped in `token_required` answers only requests
whose X-Auth-Token Keystone says is valid (GET /v3/auth/tokens with the token as both the
caller's and the subject's: Keystone's default policy lets a token validate itself, so the API
needs no service credentials of its own)."""
import functools
import json
import urllib.error
import urllib.request

from django.conf import settings
from django.http import JsonResponse

# Fernet tokens are about 180 characters; anything much longer is not one.
MAX_TOKEN = 4096


class KeystoneUnavailable(Exception):
    pass


def validate(token):
    """The token's body from Keystone (user, project, roles), or None if it is not valid."""
    request = urllib.request.Request(
        settings.KEYSTONE_URL + "/v3/auth/tokens",
        headers={"X-Auth-Token": token, "X-Subject-Token": token, "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.KEYSTONE_TIMEOUT) as answer:
            return json.load(answer)["token"]
    except urllib.error.HTTPError as e:
        if e.code in (401, 403, 404):
            return None
        raise KeystoneUnavailable(f"Keystone answered {e.code}") from e
    except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
        raise KeystoneUnavailable(str(e)) from e


def token_required(view):
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        token = request.headers.get("X-Auth-Token", "")
        if not token:
            return JsonResponse({"error": "an X-Auth-Token header is required"}, status=401)
        if len(token) > MAX_TOKEN or not token.isascii() or not token.isprintable():
            return JsonResponse({"error": "the token is not valid"}, status=401)
        try:
            body = validate(token)
        except KeystoneUnavailable as e:
            return JsonResponse({"error": f"Keystone is unavailable: {e}"}, status=503)
        if body is None:
            return JsonResponse({"error": "the token is not valid"}, status=401)
        request.keystone = body
        return view(request, *args, **kwargs)

    return wrapped
