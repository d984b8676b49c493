#!/usr/bin/env python3
"""Alertmanager's configuration, written from alertmanager.yml.tmpl and the ALERT_* settings of .env when the
stack starts (the one-shot service alertmanager-config): Alertmanager itself expands no environment variables.

    render_config.py TEMPLATE OUTPUT   write OUTPUT (readable by Alertmanager's user only), say where alerts go
    render_config.py --describe        only say where alerts go (make up prints it)

A setting that cannot work (an e-mail address without a mail relay, a webhook that is not http(s)) stops the
start with a message naming it; secrets are never printed. Standard library only (the python image has no YAML):
the receivers are written as JSON, which YAML reads as it is.
"""

from __future__ import annotations

import json
import os
import re
import string
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# The receivers the template's routes name; each one gets every integration .env asks for.
RECEIVERS = ("critical", "warning")
# Alertmanager's user (nobody) in the upstream image and in the test machines' stand-in.
ALERTMANAGER_UID = 65534
TRUE, FALSE = {"", "true", "yes", "1"}, {"false", "no", "0"}


class SettingsError(ValueError):
    """An ALERT_* setting of .env that Alertmanager could not use; the message names it and the fix."""


def _get(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def webhook_configs(env: Mapping[str, str]) -> list[dict[str, Any]]:
    url = _get(env, "ALERT_WEBHOOK_URL")
    if not url:
        return []
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The URL itself is not repeated: webhook URLs often carry a token.
        raise SettingsError("ALERT_WEBHOOK_URL in .env is not an http:// or https:// URL with a host: fix it, or "
                            "empty it to send no webhook")
    return [{"url": url, "send_resolved": True}]


def email_configs(env: Mapping[str, str]) -> list[dict[str, Any]]:
    to = _get(env, "ALERT_EMAIL_TO")
    relay = {key: _get(env, f"ALERT_SMTP_{key}") for key in ("SMARTHOST", "FROM", "AUTH_USERNAME", "AUTH_PASSWORD")}
    if not to:
        if any(relay.values()):
            set_ = ", ".join(f"ALERT_SMTP_{k}" for k, v in relay.items() if v)
            raise SettingsError(f"{set_} set in .env but ALERT_EMAIL_TO is empty: set the address alerts go to, or "
                                "empty those settings")
        return []
    missing = [f"ALERT_SMTP_{key}" for key in ("SMARTHOST", "FROM") if not relay[key]]
    if missing:
        raise SettingsError(f"ALERT_EMAIL_TO is set but {' and '.join(missing)} {'are' if len(missing) > 1 else 'is'} "
                            "empty in .env: alerts by e-mail need your mail relay (host:port) and a sender address")
    if not re.fullmatch(r"[^\s:/]+:\d{1,5}", relay["SMARTHOST"]):
        raise SettingsError("ALERT_SMTP_SMARTHOST in .env must be host:port of your mail relay, e.g. "
                            "smtp.example.org:587")
    if relay["AUTH_PASSWORD"] and not relay["AUTH_USERNAME"]:
        raise SettingsError("ALERT_SMTP_AUTH_PASSWORD is set but ALERT_SMTP_AUTH_USERNAME is empty in .env")
    tls = _get(env, "ALERT_SMTP_REQUIRE_TLS").lower()
    if tls not in TRUE | FALSE:
        raise SettingsError("ALERT_SMTP_REQUIRE_TLS in .env must be true or false")
    config: dict[str, Any] = {"to": to, "from": relay["FROM"], "smarthost": relay["SMARTHOST"],
                              "require_tls": tls in TRUE, "send_resolved": True}
    if relay["AUTH_USERNAME"]:
        config |= {"auth_username": relay["AUTH_USERNAME"], "auth_password": relay["AUTH_PASSWORD"]}
    return [config]


def receivers(env: Mapping[str, str]) -> list[dict[str, Any]]:
    integrations = {key: value for key, value in (("webhook_configs", webhook_configs(env)),
                                                  ("email_configs", email_configs(env))) if value}
    return [{"name": name, **integrations} for name in RECEIVERS]


def render(template: str, env: Mapping[str, str]) -> str:
    return string.Template(template).substitute(receivers=json.dumps(receivers(env)))


def describe(env: Mapping[str, str]) -> str:
    """Where alerts go, without a secret: the webhook's host only."""
    webhook = [urlsplit(c["url"]).hostname for c in webhook_configs(env)]
    email = [c["to"] for c in email_configs(env)]
    if not webhook and not email:
        return "alerts reach no one: set ALERT_WEBHOOK_URL or ALERT_EMAIL_TO in .env (until then, Alertmanager's UI only)"
    return "alerts sent to " + " and ".join([*(f"webhook {h}" for h in webhook), *(f"e-mail {t}" for t in email)])


def write_for_alertmanager(path: Path, text: str) -> None:
    """Replaced in one rename; only Alertmanager's user may read it (it may hold the SMTP password)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o400)
    if os.geteuid() == 0:
        os.chown(tmp, ALERTMANAGER_UID, ALERTMANAGER_UID)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    try:
        if argv == ["--describe"]:
            print(describe(os.environ))
            return 0
        if len(argv) != 2:
            print(__doc__, file=sys.stderr)
            return 2
        template, output = map(Path, argv)
        write_for_alertmanager(output, render(template.read_text(), os.environ))
    except SettingsError as error:
        print(f"alertmanager-config: {error}", file=sys.stderr)
        return 1
    print(f"alertmanager-config: wrote {output}; {describe(os.environ)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
