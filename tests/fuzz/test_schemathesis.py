"""schemathesis against the broker's own OpenAPI schema (/api/schema/), in process through the WSGI app, as an
anonymous client, a customer and a provider member (API tokens): every operation in the schema, positive and
negative generated requests, each checked for no server error, a documented status code, a documented content
type and a body matching the response schema.

Each request runs in a savepoint that is rolled back afterwards, so every request sees the same world (tests/fuzz/
conftest.py) and nothing committed ever reaches Celery. Hypothesis is derandomized: CI generates the same requests
on every run, and each operation's cases are generated once and sent as each role. Failures are collected, not
shrunk, and all are listed at the end (the first per role and operation in full); the figures go to pytest's
terminal summary."""

from __future__ import annotations

import contextlib

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fuzz import report

ROLES = ("anonymous", "customer", "provider")
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}
MIN_REQUESTS = 2000
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@contextlib.contextmanager
def in_process_requests():
    """What Django's test client does around a request: the test's connection (inside the test transaction)
    stays open instead of being closed by request_started/request_finished."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def strategy_for(operation, mode: GenerationMode, world):
    """Generated cases; where a path takes an id, half of them with the id of a real object of the world; where
    the world has meaningful bodies for a write (a recommendation request, an order from a quote, an offer), a
    share of the positive cases send one of them with generated parameters, so the fuzz also reaches the code
    behind validation."""
    strategies = [operation.as_strategy(generation_mode=mode)]
    real = [(name, values) for (path, name), values in world.path_ids.items() if path == operation.path]
    for name, values in real[:1]:
        strategies.append(st.sampled_from(values).flatmap(
            lambda value, name=name: operation.as_strategy(generation_mode=mode, path_parameters={name: value})))
    seeds = world.bodies.get(operation.label, [])
    if seeds and mode == GenerationMode.POSITIVE:
        path = {name: values[0] for name, values in real[:1]}
        strategies.append(st.sampled_from(seeds).flatmap(
            lambda body: operation.as_strategy(generation_mode=mode, body=body, media_type="application/json",
                                               path_parameters=path or None)))
    return st.one_of(*strategies)


def generate(operation, strategy, examples: int) -> list:
    """The cases Hypothesis generates for one operation and mode (derandomized: the same on every run). They are
    generated once and sent as every role: generation, not the requests, is most of the run's cost."""
    cases: list = []

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def collect(case):
        cases.append(case)

    with contextlib.suppress(Unsatisfiable):  # nothing in it can be made invalid (e.g. a GET without parameters)
        collect()
    return cases


def send(run: report.FuzzRun, case, role: str, headers: dict) -> None:
    """One request in a savepoint that is rolled back, then the schema checks on its response."""
    from marketplace.selectors.snapshot import clear_snapshot_cache
    from marketplace.services.catalog_version import catalog_stamp

    with transaction.atomic():
        stamp = catalog_stamp()
        response = case.call(headers=headers)
        changed = catalog_stamp() != stamp
        transaction.set_rollback(True)
    if changed:  # the request changed the catalog: a snapshot built in the rolled-back savepoint is stale
        clear_snapshot_cache()
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
        failure = None
    except (Exception, BaseExceptionGroup) as exc:  # every check failure is collected
        failure = str(exc)
    run.record(role, case.operation.label, response.status_code, failure, case)


@pytest.mark.django_db
def test_every_operation_as_every_role(world):
    from broker.wsgi import application

    run = report.FuzzRun()
    with in_process_requests():
        schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
        operations = [result.ok() for result in schema.get_all_operations()]
        for operation in operations:
            for mode, examples in EXAMPLES.items():
                cases = generate(operation, strategy_for(operation, mode, world), examples)
                if not cases:
                    run.unsatisfiable.append(f"{mode.value} {operation.label}")
                for role in ROLES:
                    key = world.tokens[role]
                    headers = {"Authorization": f"Token {key}"} if key else {}
                    for case in cases:
                        send(run, case, role, headers)

    report.RUNS.append(run)
    labels = {operation.label for operation in operations}
    assert len(labels) >= 40, sorted(labels)
    assert {label for (_, label) in run.per_operation} == labels, "an operation was never requested"
    assert not run.server_errors and not run.failures, run.failure_text()
    assert run.total >= MIN_REQUESTS, run.summary()
    # The world is reached, not only refused: every read of an object by id and every write the world has a
    # meaningful body for succeeds at least once.
    by_id = {f"GET {path}" for (path, _) in world.path_ids} & labels
    unreached = sorted(label for label in by_id | set(world.bodies) if run.successes[label] == 0)
    assert not unreached, unreached
