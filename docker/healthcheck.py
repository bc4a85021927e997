"""HEALTHCHECK of the web container: the login page must answer 200 from gunicorn on port 8000.

Two details make a bare ``urlopen("http://127.0.0.1:8000/...")`` fail on a healthy production
container, so the request sets them itself:

- Host: Django answers 400 to a host that is not in DJANGO_ALLOWED_HOSTS, and "127.0.0.1" often
  is not there in production. The first usable entry of that list is sent instead.
- X-Forwarded-Proto: https: with LIGHTBOX_SSL_REDIRECT on, a plain-HTTP request gets a redirect.
  Real requests arrive through the TLS-terminating proxy with this header; the check does the same.

Rendering the login page reads the sites table, so a dead database also fails the check.
"""

from __future__ import annotations

import http.client
import os
import sys

PORT = 8000
PATH = "/accounts/login/"


def host_header() -> str:
    for entry in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(","):
        entry = entry.strip()
        if entry and entry != "*":
            return entry.lstrip(".")  # ".example.org" also matches example.org itself
    return "localhost"


def main() -> int:
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=8)
    try:
        connection.request("GET", PATH, headers={"Host": host_header(), "X-Forwarded-Proto": "https"})
        status = connection.getresponse().status
    except OSError as exc:
        print(f"web healthcheck: {exc}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if status != 200:
        print(f"web healthcheck: GET {PATH} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
