"""Watching the studio: /metrics (who may read it, what it says), X-Request-ID, JSON logs that carry
the request and user, and SQL query logging without parameters."""

from __future__ import annotations

import io
import json
import logging
import re

from fastapi.testclient import TestClient
from sqlalchemy import text

from imagestudio.accounts.deps import CurrentUser
from imagestudio.app import create_app
from imagestudio.kit.observability import ContextFilter, JsonFormatter, configure_logging, log_queries, logged_as
from tests.api.helpers import API, BASE_URL, assert_problem, run_queue


def _metrics_client(app, token: str | None = None, address: str = "203.0.113.7") -> TestClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return TestClient(app, base_url=BASE_URL, headers=headers, client=(address, 40000))


def _value(body: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" ([0-9.e+-]+)$"
    match = re.search(pattern, body, re.MULTILINE)
    return float(match[1]) if match else None


def test_metrics_need_the_token_or_an_allowed_address(container, make_settings) -> None:
    container.settings = make_settings(metrics_token="scrape-me", database_url=container.settings.database_url)
    app = create_app(container=container)
    assert_problem(_metrics_client(app).get("/metrics"), 401, "metrics_forbidden")
    assert_problem(_metrics_client(app, "wrong").get("/metrics"), 401, "metrics_forbidden")
    assert _metrics_client(app, "scrape-me").get("/metrics").status_code == 200
    # Loopback is allowed by default without the token.
    assert _metrics_client(app, address="127.0.0.1").get("/metrics").status_code == 200


def test_a_proxy_on_the_same_machine_does_not_open_metrics_to_everyone(app) -> None:
    # The peer is a trusted proxy (loopback), but the client behind it is not allowed.
    client = TestClient(
        app, base_url=BASE_URL, client=("127.0.0.1", 40000), headers={"X-Forwarded-For": "198.51.100.4"}
    )
    assert_problem(client.get("/metrics"), 401)


def test_metrics_report_the_queue_storage_and_requests(app, accounts, container) -> None:
    alice = accounts.make()
    for index in range(3):
        body = {"prompt": f"p{index}", "width": 64, "height": 64}
        assert alice.client.post(f"{API}/generations", json=body).status_code == 201
    scrape = _metrics_client(app, address="127.0.0.1")
    before = scrape.get("/metrics").text
    assert _value(before, "imagestudio_generations", status="queued") == 3
    assert _value(before, "imagestudio_queue_oldest_waiting_seconds") > 0
    run_queue(container)
    after = scrape.get("/metrics").text
    assert _value(after, "imagestudio_generations", status="queued") == 0
    assert _value(after, "imagestudio_generations", status="succeeded") == 3
    assert _value(after, "imagestudio_storage_bytes", kind="output") > 0
    assert _value(after, "imagestudio_users") == 1
    count = _value(
        after,
        "imagestudio_http_request_duration_seconds_count",
        method="POST",
        route="/api/v1/generations",
        status="201",
    )
    assert count is not None and count >= 3
    # Route templates, never raw paths with ids.
    assert "/api/v1/generations/0" not in after


def test_every_answer_names_its_request(app) -> None:
    plain = TestClient(app, base_url=BASE_URL)
    first, second = plain.get("/healthz"), plain.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert plain.get(f"{API}/nothing").headers["x-request-id"]
    # A trusted proxy's id is kept; anyone else's, or a hostile one, is replaced.
    proxied = TestClient(app, base_url=BASE_URL, client=("127.0.0.1", 1), headers={"X-Request-ID": "edge-42"})
    assert proxied.get("/healthz").headers["x-request-id"] == "edge-42"
    outsider = TestClient(app, base_url=BASE_URL, headers={"X-Request-ID": "edge-42"})
    assert outsider.get("/healthz").headers["x-request-id"] != "edge-42"
    hostile = TestClient(app, base_url=BASE_URL, client=("127.0.0.1", 1), headers={"X-Request-ID": "a b\tc"})
    assert hostile.get("/healthz").headers["x-request-id"] != "a b\tc"


def _remove_our_handlers() -> None:
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if getattr(handler, "_imagestudio", False):
            root.removeHandler(handler)


def test_json_logs_carry_the_request_and_the_user(app, accounts, capsys) -> None:
    alice = accounts.make()

    @app.get("/api/v1/test-log")
    def log_something(user: CurrentUser) -> dict:
        logging.getLogger("imagestudio.test").warning("something happened", extra={"detail": 7})
        return {}

    configure_logging("json", "info", force=True)
    try:
        capsys.readouterr()
        response = alice.client.get("/api/v1/test-log")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    finally:
        _remove_our_handlers()
    assert response.status_code == 200
    (record,) = [line for line in lines if line["message"] == "something happened"]
    # Authentication ran in another thread than the endpoint; the user still reached the log.
    assert record["request_id"] == response.headers["x-request-id"]
    assert record["user_id"] == alice.id
    assert record["level"] == "warning" and record["logger"] == "imagestudio.test" and record["detail"] == 7


def test_an_unexpected_error_is_logged_with_its_request(app, accounts, capsys) -> None:
    alice = accounts.make()

    @app.get("/api/v1/test-explode")
    def explode(user: CurrentUser) -> dict:
        raise RuntimeError("boom")

    configure_logging("json", "info", force=True)
    try:
        capsys.readouterr()
        client = TestClient(app, base_url=BASE_URL, cookies=alice.client.cookies, raise_server_exceptions=False)
        response = client.get("/api/v1/test-explode")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    finally:
        _remove_our_handlers()
    assert response.status_code == 500
    (record,) = [line for line in lines if line["logger"] == "imagestudio.kit.errors"]
    assert record["request_id"] == response.headers["x-request-id"] and "boom" in record["exception"]


def test_logged_as_adds_context_to_log_lines() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("imagestudio.test.context")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with logged_as(generation_id="g-1"):
            logger.info("working")
        logger.info("idle")
    finally:
        logger.removeHandler(handler)
    working, idle = (json.loads(line) for line in stream.getvalue().splitlines())
    assert working["generation_id"] == "g-1" and "generation_id" not in idle


def test_query_logging_times_statements_without_their_parameters(container, caplog) -> None:
    stop = log_queries(container.db.engine)
    try:
        with caplog.at_level(logging.INFO, logger="imagestudio.sql"), container.db.reading() as db:
            db.execute(text("SELECT :secret AS value"), {"secret": "hunter2-secret"}).all()
    finally:
        stop()  # the test database's engine outlives this test
    with caplog.at_level(logging.INFO, logger="imagestudio.sql"), container.db.reading() as db:
        db.execute(text("SELECT 'after' AS value")).all()
    assert not any("'after'" in record.getMessage() for record in caplog.records if record.name == "imagestudio.sql")
    records = [record for record in caplog.records if record.name == "imagestudio.sql"]
    assert any("SELECT" in record.getMessage() for record in records)
    assert all("hunter2-secret" not in record.getMessage() for record in records)
    assert all(isinstance(record.duration_ms, float) for record in records)


def test_workers_record_pickup_duration_failures_and_heartbeats(app, accounts, container) -> None:
    from imagestudio.kit.metrics import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    alice = accounts.make()
    before_ok = sample(
        "imagestudio_generation_duration_seconds_count", provider="builtin", type="text2img", status="succeeded"
    )
    before_pickup = sample("imagestudio_generation_pickup_seconds_count", provider="builtin", type="text2img")
    for index in range(2):
        assert (
            alice.client.post(f"{API}/generations", json={"prompt": f"m{index}", "width": 64, "height": 64}).status_code
            == 201
        )
    run_queue(container)
    after_ok = sample(
        "imagestudio_generation_duration_seconds_count", provider="builtin", type="text2img", status="succeeded"
    )
    assert after_ok - before_ok == 2
    assert (
        sample("imagestudio_generation_pickup_seconds_count", provider="builtin", type="text2img") - before_pickup == 2
    )
    scrape = _metrics_client(app, address="127.0.0.1").get("/metrics").text
    assert (
        'imagestudio_generation_duration_seconds_bucket{le="+Inf",provider="builtin",status="succeeded",type="text2img"}'
        in scrape
    )
