"""Which Celery queue a run goes to, given the requested device and the queues live workers consume."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from helical_workflow.contract import CPU_QUEUE, DEVICE_PARAMS, GPU_QUEUE


class NoGpuWorkerError(RuntimeError):
    """device=gpu was asked for but no live Celery worker consumes the gpu queue."""


def registered_workers(celery_app: Any) -> int | None:
    """How many Celery workers have bound a broadcast (pidbox) queue in the Redis broker, or None elsewhere.

    Every live worker has, and one killed without shutting down keeps its binding: never fewer than answer a
    broadcast, so `inspect(limit=...)` may stop at that many replies instead of waiting out its timeout
    (12 ms instead of 2 s here); a stale binding only makes it wait the timeout, as it would without a limit.
    """
    with celery_app.connection_for_read() as connection:
        channel = connection.default_channel
        if not hasattr(channel, "keyprefix_queue"):  # not kombu's Redis transport
            return None
        return int(channel.client.scard(channel.keyprefix_queue % celery_app.control.mailbox.exchange.name))


def live_queues(active_queues: Mapping[str, Iterable[Mapping[str, object]]] | None) -> set[str]:
    """Queue names from Celery's `inspect().active_queues()` reply ({worker: [{"name": ...}, ...]})."""
    return {str(q["name"]) for queues in (active_queues or {}).values() for q in queues}


def route_to_queue(device: str, queues: set[str]) -> str:
    """gpu -> gpu (or fail fast); auto -> gpu only when a live worker consumes it; cpu -> cpu."""
    if device not in DEVICE_PARAMS:
        raise ValueError(f"device must be one of {DEVICE_PARAMS}, got {device!r}")
    if device == "cpu":
        return CPU_QUEUE
    if GPU_QUEUE in queues:
        return GPU_QUEUE
    if device == "gpu":
        raise NoGpuWorkerError(
            f"device=gpu but no live Celery worker consumes the {GPU_QUEUE!r} queue: start one with "
            "`make up GPU=1` (needs the NVIDIA driver and container toolkit), or trigger with device=auto or cpu."
        )
    return CPU_QUEUE

