"""Talks to Airflow 3's REST API through the official `apache-airflow-client` (airflow_client.client).

Responses are read as raw JSON (the client's `*_without_preload_content` calls) so the records we keep
have exactly the REST API's shape, the same shape as the unit-test fixtures; stats never see client models.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from airflow_client import client as af
from airflow_client.client.api import dag_api, dag_run_api, task_instance_api, x_com_api

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
PAGE = 100  # Airflow's default [api] maximum_page_limit; a larger limit is silently cut to it.


class ApiError(RuntimeError):
    """An API answer we cannot use; the message names the call, the status and the likely fix."""


def fetch_token(url: str, username: str, password: str, timeout_s: float = 30.0) -> str:
    """JWT from `POST {url}/auth/token` (FAB and simple auth managers); the client has no call for it."""
    http = urllib3.PoolManager()
    resp = http.request(
        "POST",
        f"{url}/auth/token",
        body=json.dumps({"username": username, "password": password}),
        headers={"Content-Type": "application/json"},
        timeout=timeout_s,
    )
    if resp.status not in (200, 201):
        raise ApiError(
            f"POST {url}/auth/token answered {resp.status}: {resp.data[:200]!r}. Check --url and "
            "--username/--password (env _AIRFLOW_WWW_USER_USERNAME/_AIRFLOW_WWW_USER_PASSWORD), "
            "or pass a ready JWT with --token / AIRFLOW_API_TOKEN."
        )
    return str(json.loads(resp.data)["access_token"])


class AirflowApi:
    """The handful of calls a load test needs, each returning plain JSON."""

    def __init__(self, url: str, username: str, password: str, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self._username, self._password = username, password
        # A given token cannot be renewed; credentials can, when a long load outlives the JWT.
        self._renewable = token is None
        self._config = af.Configuration(host=self.url, access_token=token or self._login())
        self._api = af.ApiClient(self._config)
        self.dags = dag_api.DAGApi(self._api)
        self.runs = dag_run_api.DagRunApi(self._api)
        self.tis = task_instance_api.TaskInstanceApi(self._api)
        self.xcom = x_com_api.XComApi(self._api)

    def _login(self) -> str:
        return fetch_token(self.url, self._username, self._password)

    def _call(self, what: str, fn: Callable[[], Any], ok: tuple[int, ...] = (200,)) -> Any:
        """Run one raw call, renewing the JWT once on 401, and decode its JSON body."""
        try:
            resp = fn()
            if resp.status == 401 and self._renewable:
                self._config.access_token = self._login()
                resp = fn()
        except urllib3.exceptions.HTTPError as err:  # connection refused, timeouts: name the URL
            raise ApiError(f"{what}: cannot reach {self.url} ({err}); is the stack up?") from err
        if resp.status not in ok:
            raise ApiError(f"{what} answered {resp.status}: {resp.data[:300]!r}")
        return json.loads(resp.data) if resp.data else None

    def get_dag(self, dag_id: str) -> dict[str, Any]:
        try:
            return self._call(
                f"GET dag {dag_id}", lambda: self.dags.get_dag_without_preload_content(dag_id)
            )
        except ApiError as err:
            raise ApiError(
                f"{err}. Is the DAG `{dag_id}` deployed and parsed (dags/ folder, dag-processor)?"
            ) from err

    def unpause(self, dag_id: str) -> None:
        body = af.DAGPatchBody(is_paused=False)
        self._call(
            f"PATCH dag {dag_id}",
            lambda: self.dags.patch_dag_without_preload_content(dag_id, body, update_mask=["is_paused"]),
        )

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        # logical_date must be sent as null: Airflow 3 runs triggered by API carry no logical date.
        body = af.TriggerDAGRunPostBody(dag_run_id=run_id, conf=conf, logical_date=None)
        return self._call(
            f"POST dagRuns {run_id}",
            lambda: self.runs.trigger_dag_run_without_preload_content(dag_id, body),
        )

    def list_runs(self, dag_id: str, prefix: str) -> list[dict[str, Any]]:
        """Every run of ours (by run id prefix), all pages."""
        return list(
            self._pages(
                "dag_runs",
                lambda offset: self.runs.get_dag_runs_without_preload_content(
                    dag_id, run_id_prefix_pattern=prefix, limit=PAGE, offset=offset
                ),
            )
        )

    def count_active_runs(self, dag_id: str) -> int:
        body = self._call(
            "GET active dagRuns",
            lambda: self.runs.get_dag_runs_without_preload_content(
                dag_id, state=["queued", "running"], limit=1
            ),
        )
        return int(body.get("total_entries") or 0)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(
            self._pages(
                "task_instances",
                lambda offset: self.tis.get_task_instances_without_preload_content(
                    dag_id, run_id, limit=PAGE, offset=offset
                ),
            )
        )

    def return_value(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
        """A task's XCom `return_value`, or None when absent (no push, or XCom API not allowed)."""
        try:
            body = self._call(
                f"GET xcom {run_id}/{task_id}[{map_index}]",
                lambda: self.xcom.get_xcom_entry_without_preload_content(
                    dag_id, task_id, run_id, "return_value", map_index=map_index, deserialize=True
                ),
            )
        except ApiError:
            return None
        return body.get("value") if isinstance(body, dict) else None

    def log_tail(self, ti: dict[str, Any], lines: int = 15) -> str | None:
        """Last lines of a task try's log, to give a failure a reason; None when unreadable."""
        try:
            body = self._call(
                f"GET log {ti['dag_run_id']}/{ti['task_id']}",
                lambda: self.tis.get_log_without_preload_content(
                    ti["dag_id"], ti["dag_run_id"], ti["task_id"], ti["try_number"],
                    full_content=True, map_index=ti["map_index"], accept="application/json",
                ),
            )
        except ApiError:
            return None
        content = body.get("content") if isinstance(body, dict) else None
        if isinstance(content, list):  # Airflow 3: structured events
            text = [_event_line(e) for e in content]
        else:  # older handlers: one string
            text = str(content or "").splitlines()
        return "\n".join(text[-lines:]) or None

    def fail_run(self, dag_id: str, run_id: str, note: str) -> None:
        body = af.DAGRunPatchBody(state="failed", note=note[:1000])
        self._call(
            f"PATCH dagRun {run_id}",
            lambda: self.runs.patch_dag_run_without_preload_content(dag_id, run_id, body),
        )

    def _pages(self, key: str, fetch: Callable[[int], Any]) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            body = self._call(f"GET {key}", lambda o=offset: fetch(o))
            items = body.get(key) or []
            yield from items
            offset += len(items)
            if not items or offset >= int(body.get("total_entries") or 0):
                return


def _event_line(event: Any) -> str:
    """One structured log event as text; a failure's `error_detail` is its clearest reason."""
    if not isinstance(event, dict):
        return str(event)
    details = event.get("error_detail") or []
    if details and isinstance(details, list):
        return " <- ".join(f"{d.get('exc_type')}: {d.get('exc_value')}" for d in details
                           if isinstance(d, dict))
    return f"[{event.get('level', 'info')}] {event.get('event', '')}"
