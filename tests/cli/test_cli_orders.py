"""brokerctl orders against a live test server and a real Celery worker (simulated driver, 2 s jobs):
order from a quote, watch to completion, logs, events, list, cancel; tables and --json checked exactly."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.cli.helpers import table

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

H100 = "NVIDIA H100-SXM5-80GB"
TIME = r"\d\d:\d\d:\d\d"


def quote_id(brokerctl, token: str) -> str:
    run = brokerctl("recommend", "-a", "H100", "--count", "8", "--hours", "1", "--json", token=token)
    assert run.exit_code == 0, run.stderr
    return json.loads(run.stdout)["quote"]["id"]


def test_order_from_a_quote_watch_to_completion_then_logs_events_and_list(brokerctl, market, customer, token_for,
                                                                          order_worker):
    from marketplace.orders.models import Order

    token = token_for(customer)
    quote = quote_id(brokerctl, token)
    created = brokerctl("orders", "create", "--quote", quote, "--command", "python train.py --epochs 3",
                        "--hours", "1", "--env", "EPOCHS=3", "--budget", "50", token=token)
    assert created.exit_code == 0, created.stderr
    order = Order.objects.get(customer=customer)
    key = re.fullmatch(r"Idempotency-Key: ([0-9a-f-]{36})\n", created.stderr).group(1)
    assert order.idempotency_key == key
    offer = market["cheap8"]
    assert created.stdout.splitlines()[:10] == [
        f"order:         {order.pk}",
        f"state:         {created.stdout.splitlines()[1].split()[1]}",
        f"offer:         {offer.pk} h100x8-a by alpha in us-east-virginia",
        "driver:        simulated (no real machine runs the job)",
        f"resources:     1 node(s) x 8 {H100}",
        "price:         $18.5000/h ($18.5000 per node-hour)",
        "metered:       $0.00 for 0 s",
        "command:       python train.py --epochs 3",
        "duration:      1.0000 h, budget cap $50.00",
        "attempt:       1, job -",
    ]
    assert created.stdout.splitlines()[1].split()[1] in ("reserved", "queued")

    watched = brokerctl("orders", "watch", str(order.pk), "--interval", "0.1", "--timeout", "60", token=token)
    assert (watched.exit_code, watched.stderr) == (0, "")
    states = [re.fullmatch(rf"{TIME} order {order.pk} (\w+)", line).group(1) for line in watched.stdout.splitlines()]
    assert states[-1] == "completed"
    assert "running" in states
    assert states == sorted(set(states), key=states.index)  # each state once, in order

    order.refresh_from_db()
    logs = brokerctl("orders", "logs", str(order.pk), token=token)
    assert logs.exit_code == 0
    assert logs.stdout == (
        f"[simulated] job {order.job_ref} accepted: 1 node(s) x 8 {H100} on offer a-8\n"
        "[simulated] booting (boot latency 0.0s)\n"
        "[simulated] running: python train.py --epochs 3\n"
        "[simulated] t+1s: step 1 ok\n"
        "[simulated] t+2s: step 2 ok\n"
        "[simulated] finished: succeeded (exit code 0): simulated: the job exited with code 0\n")
    follow = brokerctl("orders", "logs", str(order.pk), "--follow", token=token)
    assert (follow.exit_code, follow.stdout) == (0, logs.stdout)  # finished: --follow returns at once
    tail = brokerctl("orders", "logs", str(order.pk), "--offset", str(len(logs.stdout) - 10), token=token)
    assert tail.stdout == logs.stdout[-10:]
    as_json = json.loads(brokerctl("orders", "logs", str(order.pk), "--json", token=token).stdout)
    assert as_json == {"offset": 0, "next_offset": len(logs.stdout), "text": logs.stdout, "complete": True}

    events = table(brokerctl("orders", "events", str(order.pk), token=token).stdout)
    assert events[0] == ["AT", "FROM", "TO", "BY", "REASON"]
    assert [row[1:3] for row in events[1:3]] == [["-", "reserved"], ["reserved", "queued"]]
    assert events[1][3:] == ["customer", "order placed; capacity reserved"]
    assert [row[1:3] for row in events[-2:]] == [["running", "stopping"], ["stopping", "completed"]]
    assert events[-1][3:] == ["workers.tasks.orders.stop", "job stopped; order completed"]

    listing = table(brokerctl("orders", "list", token=token).stdout)
    assert listing == [["ID", "STATE", "OFFER", "PROVIDER", "ACCELERATOR", "NODES", "$/HOUR", "METERED", "CREATED"],
                       [str(order.pk), "completed", str(offer.pk), "alpha", H100, "1", "18.5000",
                        f"{order.metered_usd:.2f}", f"{order.created_at:%Y-%m-%d %H:%M:%S}"]]
    listed = json.loads(brokerctl("orders", "list", "--json", token=token).stdout)
    assert [(o["id"], o["state"], o["job"]["env"]) for o in listed] == [(order.pk, "completed", {"EPOCHS": "3"})]
    shown = json.loads(brokerctl("orders", "show", str(order.pk), "--json", token=token).stdout)
    assert (shown["state"], shown["job_ref"], shown["failure"]) == ("completed", order.job_ref, None)

    again = brokerctl("orders", "cancel", str(order.pk), token=token)
    assert (again.exit_code, again.stdout) == (1, "")
    assert again.stderr == (f"error: Order {order.pk} is completed; it cannot be cancelled. "
                            "(HTTP 409, not_cancellable)\n")


def test_create_with_watch_and_the_same_idempotency_key_twice(brokerctl, market, customer, token_for,
                                                             order_worker):
    from marketplace.orders.models import Order

    token = token_for(customer)
    quote = quote_id(brokerctl, token)
    args = ("orders", "create", "--quote", quote, "-c", "echo hi", "--hours", "1", "--idempotency-key", "k-1")
    first = brokerctl(*args, "--watch", token=token)
    assert first.exit_code == 0, first.stderr
    assert first.stderr == "Idempotency-Key: k-1\n"
    order = Order.objects.get(customer=customer)
    assert first.stdout.splitlines()[-1].endswith(f"order {order.pk} completed")
    second = brokerctl(*args, "--json", token=token)  # a retry: the same order, not a second one
    assert second.exit_code == 0
    assert json.loads(second.stdout)["id"] == order.pk
    assert Order.objects.filter(customer=customer).count() == 1
    other_body = brokerctl("orders", "create", "--quote", quote, "-c", "echo different", "--hours", "1",
                           "--idempotency-key", "k-1", token=token)
    assert other_body.exit_code == 1
    assert "(HTTP 409, " in other_body.stderr.splitlines()[1]


def test_cancel_a_running_order_and_watch_exits_3(brokerctl, brokerctl_process, market, customer, token_for,
                                                 order_worker):
    from marketplace.orders.models import Order

    order_worker.configure(boot_latency_s=0.0, run_duration_s=300.0)
    token = token_for(customer)
    quote = quote_id(brokerctl, token)
    created = json.loads(brokerctl("orders", "create", "--quote", quote, "-c", "sleep 300", "--hours", "1", "--json",
                                   token=token).stdout)
    running = brokerctl("orders", "watch", str(created["id"]), "--until", "running", "--interval", "0.1",
                        token=token)
    assert running.exit_code == 0
    assert running.stdout.splitlines()[-1].endswith(f"order {created['id']} running")

    # A real `brokerctl orders logs --follow` process streams while the order is cancelled, and ends with it.
    follower = brokerctl_process.start("orders", "logs", str(created["id"]), "--follow", "--interval", "0.1",
                                       token=token)
    time.sleep(1.5)
    cancelled = brokerctl("orders", "cancel", str(created["id"]), token=token)
    assert cancelled.exit_code == 0
    assert cancelled.stdout in (f"order {created['id']} stopping (then cancelled)\n",
                                f"order {created['id']} cancelled\n")
    final = brokerctl("orders", "watch", str(created["id"]), "--interval", "0.1", "--json", token=token)
    assert final.exit_code == 3
    assert json.loads(final.stdout)["state"] == "cancelled"
    out, err = follower.communicate(timeout=30)
    assert (follower.returncode, err) == (0, "")
    order = Order.objects.get(pk=created["id"])
    assert out.startswith(f"[simulated] job {order.job_ref} accepted")
    assert "[simulated] running: sleep 300\n" in out
    assert out.endswith("\n")
    assert order.state == "cancelled"


def test_watch_gives_up_after_its_timeout(brokerctl, market, customer, token_for, order_worker):
    order_worker.configure(boot_latency_s=30.0)
    token = token_for(customer)
    created = json.loads(brokerctl("orders", "create", "--quote", quote_id(brokerctl, token), "-c", "x",
                                   "--hours", "1", "--json", token=token).stdout)
    run = brokerctl("orders", "watch", str(created["id"]), "--timeout", "1", "--interval", "0.2", token=token)
    assert run.exit_code == 1
    assert re.fullmatch(rf"error: order {created['id']} is still (queued|provisioning) after 1s "
                        r"\(no answer, watch_timeout\)\n", run.stderr)
    brokerctl("orders", "cancel", str(created["id"]), token=token)


def test_another_customers_order_is_not_found(brokerctl, market, customer, make_user, token_for, order_worker):
    token = token_for(customer)
    created = json.loads(brokerctl("orders", "create", "--quote", quote_id(brokerctl, token), "-c", "x",
                                   "--hours", "1", "--json", token=token).stdout)
    stranger = token_for(make_user("stranger"))
    for args in (("orders", "show"), ("orders", "logs"), ("orders", "cancel"), ("orders", "events")):
        run = brokerctl(*args, str(created["id"]), token=stranger)
        assert (run.exit_code, run.stdout) == (1, "")
        assert run.stderr == f"error: No order {created['id']}. (HTTP 404, order_not_found)\n"
