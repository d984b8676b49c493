"""Flower's view of the Celery workers (`GET /api/workers?status=true`): who is online, and on which host."""

from __future__ import annotations

import base64
import json
import urllib.request


def worker_status(flower_url: str, user: str | None, password: str | None) -> dict[str, bool]:
    """{Celery node name: online} of every worker Flower has seen."""
    req = urllib.request.Request(f"{flower_url.rstrip('/')}/api/workers?status=true")
    if user:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=15) as resp:
        return json.loads(resp.read())
