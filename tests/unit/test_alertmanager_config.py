"""monitoring/alertmanager/render_config.py: which integrations each .env gets, and the settings it refuses.
amtool checks the rendered files (tests/monitoring/test_alertmanager.py); the e2e sends a real alert through one."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
import yaml

from alertmanager_config.render_config import RECEIVERS, SettingsError, describe, main, receivers, render

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = (ROOT / "monitoring" / "alertmanager" / "alertmanager.yml.tmpl").read_text()
RELAY = {"ALERT_EMAIL_TO": "ops@example.org", "ALERT_SMTP_SMARTHOST": "smtp.example.org:587",
         "ALERT_SMTP_FROM": "alerts@example.org"}
WEBHOOK = {"ALERT_WEBHOOK_URL": "https://hooks.example.org/services/T0K3N"}


def test_with_nothing_set_the_receivers_exist_and_send_nowhere():
    assert receivers({}) == [{"name": name} for name in RECEIVERS]
    assert "reach no one" in describe({}) and "ALERT_WEBHOOK_URL or ALERT_EMAIL_TO" in describe({})


def test_every_receiver_gets_the_webhook_and_its_resolved_alerts():
    for receiver in receivers(WEBHOOK):
        assert receiver["webhook_configs"] == [{"url": WEBHOOK["ALERT_WEBHOOK_URL"], "send_resolved": True}]
        assert "email_configs" not in receiver


def test_email_goes_through_the_relay_with_tls_unless_turned_off():
    (email,) = receivers(RELAY)[0]["email_configs"]
    assert email == {"to": "ops@example.org", "from": "alerts@example.org", "smarthost": "smtp.example.org:587",
                     "require_tls": True, "send_resolved": True}
    login = {**RELAY, "ALERT_SMTP_AUTH_USERNAME": "alerts", "ALERT_SMTP_AUTH_PASSWORD": "pw",
             "ALERT_SMTP_REQUIRE_TLS": "false"}
    (email,) = receivers(login)[0]["email_configs"]
    assert (email["auth_username"], email["auth_password"], email["require_tls"]) == ("alerts", "pw", False)


@pytest.mark.parametrize(("env", "named"), [
    ({"ALERT_WEBHOOK_URL": "hooks.example.org/x"}, "ALERT_WEBHOOK_URL"),
    ({"ALERT_WEBHOOK_URL": "ftp://hooks.example.org/x"}, "ALERT_WEBHOOK_URL"),
    ({"ALERT_EMAIL_TO": "ops@example.org"}, "ALERT_SMTP_SMARTHOST and ALERT_SMTP_FROM are empty"),
    ({**RELAY, "ALERT_SMTP_SMARTHOST": "smtp.example.org"}, "host:port"),
    ({**RELAY, "ALERT_SMTP_AUTH_PASSWORD": "pw"}, "ALERT_SMTP_AUTH_USERNAME is empty"),
    ({**RELAY, "ALERT_SMTP_REQUIRE_TLS": "maybe"}, "ALERT_SMTP_REQUIRE_TLS"),
    ({"ALERT_SMTP_SMARTHOST": "smtp.example.org:587"}, "ALERT_EMAIL_TO is empty"),
])
def test_a_setting_that_cannot_work_is_refused_by_name(env, named):
    with pytest.raises(SettingsError, match=re.escape(named)):
        receivers(env)


def test_no_secret_is_ever_printed(capsys):
    env = {**WEBHOOK, **RELAY, "ALERT_SMTP_AUTH_USERNAME": "alerts", "ALERT_SMTP_AUTH_PASSWORD": "pw-1234"}
    said = describe(env)
    assert "hooks.example.org" in said and "ops@example.org" in said
    assert "T0K3N" not in said and "pw-1234" not in said
    with pytest.raises(SettingsError) as refused:
        receivers({"ALERT_WEBHOOK_URL": "hooks.example.org/T0K3N"})
    assert "T0K3N" not in str(refused.value)


def test_the_rendered_file_is_the_template_with_the_receivers_filled_in():
    config = yaml.safe_load(render(TEMPLATE, WEBHOOK))
    assert config["receivers"] == receivers(WEBHOOK)
    routed = {config["route"]["receiver"], *(route["receiver"] for route in config["route"]["routes"])}
    assert routed == set(RECEIVERS)
    assert yaml.safe_load(TEMPLATE.replace("$receivers", "[]"))["route"] == config["route"]


def test_the_file_is_replaced_whole_and_readable_by_its_owner_only(tmp_path, monkeypatch):
    template, out = tmp_path / "t.tmpl", tmp_path / "alertmanager.yml"
    template.write_text(TEMPLATE)
    out.write_text("old")
    out.chmod(0o400)
    monkeypatch.setenv("ALERT_WEBHOOK_URL", WEBHOOK["ALERT_WEBHOOK_URL"])
    assert main([str(template), str(out)]) == 0
    assert json.dumps(receivers(WEBHOOK)) in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o400
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["t.tmpl", out.name])  # no temporary file left


def test_a_refused_setting_stops_the_start_and_leaves_the_file_as_it_was(tmp_path, monkeypatch, capsys):
    template, out = tmp_path / "t.tmpl", tmp_path / "alertmanager.yml"
    template.write_text(TEMPLATE)
    monkeypatch.setenv("ALERT_EMAIL_TO", "ops@example.org")
    assert main([str(template), str(out)]) == 1
    assert "alertmanager-config: ALERT_EMAIL_TO is set" in capsys.readouterr().err
    assert not out.exists()
