"""Queue routing: device param x live Celery queues."""

import pytest

from helical_workflow.names import CPU_QUEUE as CPU
from helical_workflow.names import GPU_QUEUE as GPU
from helical_workflow.routing import NoGpuWorkerError, live_queues, route_to_queue

CELERY_REPLY = {
    f"{CPU}@a1": [{"name": CPU, "exchange": {"name": CPU}}],
    f"{CPU}@b2": [{"name": CPU, "exchange": {"name": CPU}}],
}


def test_live_queues_reads_celery_active_queues_reply():
    assert live_queues(CELERY_REPLY) == {CPU}
    assert live_queues({**CELERY_REPLY, f"{GPU}@c3": [{"name": GPU}]}) == {CPU, GPU}
    assert live_queues(None) == set()  # no worker answered


@pytest.mark.parametrize(
    ("device", "queues", "expected"),
    [
        ("cpu", {CPU, GPU}, CPU),
        ("cpu", set(), CPU),  # queued until a cpu worker appears: a backlog, not an error
        ("auto", {CPU}, CPU),
        ("auto", {CPU, GPU}, GPU),
        ("auto", set(), CPU),
        ("gpu", {GPU}, GPU),
    ],
)
def test_route_to_queue(device, queues, expected):
    assert route_to_queue(device, queues) == expected


def test_gpu_without_gpu_worker_fails_fast_naming_the_fix():
    with pytest.raises(NoGpuWorkerError, match=r"make up GPU=1"):
        route_to_queue("gpu", {CPU})


def test_unknown_device_is_rejected():
    with pytest.raises(ValueError, match="device must be one of"):
        route_to_queue("tpu", {CPU})
