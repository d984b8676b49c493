"""Queue routing: device param x live Celery queues."""

import pytest

from helical_workflow.routing import NoGpuWorkerError, live_queues, route_to_queue

CELERY_REPLY = {
    "cpu@a1": [{"name": "cpu", "exchange": {"name": "cpu"}}],
    "cpu@b2": [{"name": "cpu", "exchange": {"name": "cpu"}}],
}


def test_live_queues_reads_celery_active_queues_reply():
    assert live_queues(CELERY_REPLY) == {"cpu"}
    assert live_queues({**CELERY_REPLY, "gpu@c3": [{"name": "gpu"}]}) == {"cpu", "gpu"}
    assert live_queues(None) == set()  # no worker answered


@pytest.mark.parametrize(
    ("device", "queues", "expected"),
    [
        ("cpu", {"cpu", "gpu"}, "cpu"),
        ("cpu", set(), "cpu"),  # queued until a cpu worker appears: a backlog, not an error
        ("auto", {"cpu"}, "cpu"),
        ("auto", {"cpu", "gpu"}, "gpu"),
        ("auto", set(), "cpu"),
        ("gpu", {"gpu"}, "gpu"),
    ],
)
def test_route_to_queue(device, queues, expected):
    assert route_to_queue(device, queues) == expected


def test_gpu_without_gpu_worker_fails_fast_naming_the_fix():
    with pytest.raises(NoGpuWorkerError, match=r"make up GPU=1"):
        route_to_queue("gpu", {"cpu"})


def test_unknown_device_is_rejected():
    with pytest.raises(ValueError, match="device must be one of"):
        route_to_queue("tpu", {"cpu"})
