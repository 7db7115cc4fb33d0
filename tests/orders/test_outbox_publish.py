"""outbox.send_task builds and sends its message with Celery's own steps, without app.send_task around them: the
message a worker receives must be the one app.send_task would have sent (same task, args, headers, properties,
queue), for a task published now and one with a countdown."""

from __future__ import annotations

import base64
import json

import pytest
import redis

from broker.celery import app
from marketplace.orders.services.lifecycle import TASK_METER, TASK_PROVISION
from marketplace.orders.services.outbox import PUBLISH_RETRY, queue_name, send_task
from tests.worker_process import redis_url_for_tests

VARYING_HEADERS = {"id", "root_id", "eta"}  # a new task id each time; eta: from the clock


@pytest.fixture
def broker_redis(private_queue):
    url = redis_url_for_tests()
    if url is None:
        pytest.skip("no Redis")
    return redis.Redis.from_url(url)


def _last(client: redis.Redis, queue: str) -> dict:
    raw = client.rpop(queue)
    assert raw is not None, f"nothing published to {queue}"
    return json.loads(raw)


def _comparable(message: dict) -> dict:
    properties = {k: v for k, v in message["properties"].items() if k not in {"correlation_id", "delivery_tag"}}
    headers = {k: v for k, v in message["headers"].items() if k not in VARYING_HEADERS}
    return {"body": json.loads(base64.b64decode(message["body"])), "headers": headers, "properties": properties,
            "content-type": message["content-type"], "content-encoding": message["content-encoding"]}


@pytest.mark.parametrize("registered", [False, True], ids=["task-unknown-here", "task-registered-here"])
@pytest.mark.parametrize(("task", "args", "countdown"), [(TASK_PROVISION, [12, 1], 0), (TASK_METER, [12, 2], 30.0)])
def test_the_message_is_the_one_send_task_sends(broker_redis, monkeypatch, task, args, countdown, registered):
    """A web process may not have imported the tasks; a worker has (send_task then adds the task's time limits)."""
    import workers.tasks.orders  # noqa: F401  (declares the order tasks)

    if registered:
        assert task in app.tasks  # finalizes the app: the declared tasks are registered
    else:
        monkeypatch.delitem(app._tasks, task, raising=False)
    queue = queue_name(task)
    send_task(task, args, countdown=countdown)
    ours = _last(broker_redis, queue)
    app.send_task(task, args=args, countdown=countdown or None, queue=queue, retry=True,
                  retry_policy=PUBLISH_RETRY, ignore_result=True)
    theirs = _last(broker_redis, queue)

    mine, celery = _comparable(ours), _comparable(theirs)
    differing = {k: (mine["headers"].get(k), celery["headers"].get(k))
                 for k in mine["headers"].keys() | celery["headers"].keys()
                 if mine["headers"].get(k) != celery["headers"].get(k)}
    assert differing == {}
    assert mine == celery
    assert ours["headers"]["task"] == task and ours["headers"]["argsrepr"] == repr(args)
    assert ours["headers"]["root_id"] == ours["headers"]["id"]  # no parent: its own root, as send_task makes it
    assert (ours["headers"]["eta"] is None) == (not countdown)
    assert (ours["headers"]["timelimit"] != [None, None]) == registered
    assert ours["properties"]["delivery_info"]["routing_key"] == queue
