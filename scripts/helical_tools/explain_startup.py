#!/usr/bin/env python3
"""What `make up` prints when `docker compose up --wait` fails: each service that exited with an error, keeps
restarting, is unhealthy or could not start, with its state and the last lines of its log, read before anything
recreates the container; then, for the causes we know, the cause and the fix.

Usage: explain_startup.py [--check] docker compose -f compose.yaml ...   (the compose command make ran; --check:
       after it succeeded, since `up --wait` calls a one-shot service that failed done)
Standard library only: it runs on the host's python3, before any venv exists.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LOG_LINES = 25
ENV_EXAMPLE = Path(__file__).resolve().parents[2] / "config" / ".env.example"


@dataclass(frozen=True)
class Container:
    service: str
    name: str
    state: str  # created, running, restarting, exited, dead, paused
    health: str  # "", starting, healthy, unhealthy
    exit_code: int
    project: str = ""


@dataclass(frozen=True)
class Hint:
    cause: str
    fix: str


IMAGE_HINT = Hint(
    "an image could not be pulled",
    "check its name and tag in compose/ and .env, this machine's network and registry login (docker login); "
    "without a registry, load the image first (docker load), or build ours with make images.")


def parse_ps(text: str) -> list[Container]:
    """`docker compose ps -a --format json`: one JSON array (compose < 2.21) or one object per line."""
    text = text.strip()
    if not text:
        return []
    rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line.strip()]
    return [Container(row.get("Service", ""), row.get("Name", ""), row.get("State", ""), row.get("Health", ""),
                      int(row.get("ExitCode") or 0), row.get("Project", "")) for row in rows]


def trouble(container: Container, start_error: str) -> str | None:
    """Why this container stands in the way of `up --wait`, or None when it does not."""
    if container.state == "exited" and container.exit_code != 0:
        return f"exited with code {container.exit_code}"
    if container.state in ("restarting", "dead"):
        return f"{container.state} (last exit code {container.exit_code})"
    if container.health == "unhealthy":
        return "unhealthy"
    if container.health == "starting":
        return "not healthy when the wait ended"
    if container.state == "created" and start_error:
        return "could not start"
    return None  # running, a one-shot that succeeded, or not started because a dependency failed


def port_settings(port: str, env: Mapping[str, str], example: Mapping[str, str]) -> list[str]:
    """The *_PORT settings of .env whose value (or default) is `port`."""
    names = {k for k in (*env, *example) if k.endswith("_PORT")}
    return sorted(name for name in names if (env.get(name) or example.get(name)) == port)


def read_example(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def hints_for(text: str, project: str, env: Mapping[str, str], example: Mapping[str, str]) -> list[Hint]:
    """The known causes found in what the failed containers said (logs, start errors, healthchecks)."""
    hints = []
    if re.search(r'password authentication failed for user "?airflow', text):
        hints.append(Hint(
            "the metadata database refuses the POSTGRES_PASSWORD of .env (password authentication failed)",
            f"its volume ({project}_postgres-db) was created with another password: .env was made anew (deleted, "
            "or another checkout's) while the volume stayed. Either\n"
            "  - put back the .env that created the volume (your copy, e.g. the one kept with your backups), then "
            "make up; or\n"
            "  - make clean, which DELETES the data (run history, connections, variables, queued tasks), then make up."))
    for port in dict.fromkeys(re.findall(r"(?:Bind for|listen tcp[46]?) \S*?:(\d+)(?: failed|: bind)", text)):
        settings = port_settings(port, env, example)
        hints.append(Hint(
            f"port {port} is already in use on this host (another stack, another checkout, or another program)",
            f"find who holds it (docker ps --filter publish={port}; ss -ltnp | grep :{port}) and stop it, or give "
            f"this stack another port: {' or '.join(settings) or 'the *_PORT setting'} in .env, then make up."))
    if re.search(r"pull access denied|manifest unknown|repository does not exist|failed to resolve reference|"
                 r"toomanyrequests|No such image", text, re.IGNORECASE):
        hints.append(IMAGE_HINT)
    if re.search(r'could not select device driver "nvidia"|unknown or invalid runtime name: nvidia|nvidia-container-cli',
                 text):
        hints.append(Hint(
            "no GPU runtime: Docker cannot give a container an NVIDIA GPU here",
            "install the NVIDIA driver and the NVIDIA Container Toolkit, then restart Docker (README, GPU); or start "
            "without the GPU worker: drop GPU=1 and gpu from COMPOSE_PROFILES."))
    if "database files are incompatible with server" in text:
        hints.append(Hint(
            "the Postgres volume was made by another PostgreSQL major version",
            "start the version that made it, make backup, then make clean and make restore BACKUP=... with this one "
            "(docs/operations.md)."))
    return hints


def run(*command: str, with_stderr: bool = False) -> str:
    """stdout (with stderr too for logs, where containers write both): compose's warnings go to stderr."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return done.stdout + done.stderr if with_stderr else done.stdout


def inspect_state(name: str) -> dict:
    try:
        return json.loads(run("docker", "inspect", "--format", "{{json .State}}", name))
    except json.JSONDecodeError:
        return {}


def missing_images(compose: list[str]) -> list[str]:
    """Images of the enabled services that are not on this machine: after a failed `up`, the pull failed."""
    images = run(*compose, "config", "--images").split()
    return [image for image in dict.fromkeys(images)
            if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode]


def project_containers(compose: list[str], env: Mapping[str, str]) -> list[Container]:
    """The project's containers, of the services `make up SERVICES=...` asked for when it named some."""
    try:
        containers = parse_ps(run(*compose, "ps", "-a", "--format", "json"))
    except ValueError:  # compose itself failed (its message is above): no container to read
        return []
    asked = set((env.get("SERVICES") or "").split())
    return [c for c in containers if not asked or c.service in asked]


def explain(compose: list[str], env: Mapping[str, str]) -> str | None:
    """What failed and the hints for it; None when no container reports an error and every image is here."""
    containers = project_containers(compose, env)
    project = next((c.project for c in containers if c.project), env.get("COMPOSE_PROJECT_NAME", "helical"))
    out, said = [], []
    for container in containers:
        state = inspect_state(container.name)
        start_error = state.get("Error") or ""
        why = trouble(container, start_error)
        if why is None:
            continue
        log = run("docker", "logs", "--tail", str(LOG_LINES), container.name, with_stderr=True).rstrip()
        checks = [entry.get("Output", "").strip() for entry in (state.get("Health") or {}).get("Log") or []][-1:]
        out.append(f"── {container.service} ({container.name}): {why}")
        out += [f"   start error: {start_error}"] * bool(start_error)
        out += [f"   last healthcheck: {check}" for check in checks if check]
        out += [f"   {line}" for line in (log or "(no log)").splitlines()]
        said += [log, start_error, *checks]
    missing = missing_images(compose)
    out += [f"── image {image} is not on this machine" for image in missing]
    if not out:
        return None
    hints = hints_for("\n".join(said), project, env, read_example())
    if missing and IMAGE_HINT not in hints:
        hints.append(IMAGE_HINT)
    lines = ["", "make up: the stack did not start. What failed (last log lines):", "", *out]
    for hint in hints:
        lines += ["", f"Cause: {hint.cause}.", f"Fix:   {hint.fix}"]
    if not hints:
        lines += ["", "No known cause recognised: the log lines above say what went wrong (make logs SERVICE=... "
                      "for more)."]
    return "\n".join(lines)


def one_shot_services(compose: list[str]) -> set[str]:
    """Services others wait to complete (`condition: service_completed_successfully`): airflow-init and the like."""
    try:
        services = json.loads(run(*compose, "config", "--format", "json")).get("services") or {}
    except ValueError:
        return set()
    return {name for service in services.values() for name, needs in (service.get("depends_on") or {}).items()
            if needs.get("condition") == "service_completed_successfully"}


def wait_for_one_shots(compose: list[str], env: Mapping[str, str], timeout: float = 600) -> None:
    """`up --wait` calls a one-shot service ready once it runs (it has no healthcheck): wait for its end."""
    one_shots = one_shot_services(compose)
    for container in project_containers(compose, env):
        if container.service in one_shots and container.state == "running":
            subprocess.run(["docker", "wait", container.name], capture_output=True, timeout=timeout, check=False)


def main(argv: list[str]) -> int:
    """`COMPOSE...` after compose failed: explain it. `--check COMPOSE...` after compose succeeded: `up --wait`
    reports a one-shot service it was asked for (airflow-init) as done even when it exited with an error, so
    look again, and fail (exit 1) explaining it when anything did."""
    check = argv[:1] == ["--check"]
    compose = argv[1:] if check else argv
    if not compose:
        print(__doc__, file=sys.stderr)
        return 2
    if check:
        wait_for_one_shots(compose, os.environ)
    said = explain(compose, os.environ)
    if said is None:
        if not check:
            print("make up: docker compose up failed, but no container reports an error and every image is here: "
                  "read compose's message above, then make ps and make logs.", file=sys.stderr)
        return 0
    print(said, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
