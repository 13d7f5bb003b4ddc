"""Requests the clients build from their arguments."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

import kgw
from kgw import _requests
from kgw._values import from_struct
from kgw.v1 import execution_pb2, resource_pb2, workflow_pb2


def test_database_helper() -> None:
    spec = kgw.KailashClient.database(
        host="127.0.0.1", port=5433, database="app", credentials_ref="pg", max_size=5
    ).to_proto()
    assert spec.type == "database"
    assert spec.credentials_ref == "pg"
    assert from_struct(spec.config) == {"host": "127.0.0.1", "port": 5433, "database": "app", "max_size": 5}


def test_cache_http_and_ref_helpers() -> None:
    cache = kgw.cache(port=6380, credentials_ref="redis").to_proto()
    assert cache.type == "cache"
    assert from_struct(cache.config) == {"host": "localhost", "port": 6380, "db": 0}
    http = kgw.http_client(
        "https://api.example.com", credentials_ref="keys", credentials_key="example", timeout=5
    ).to_proto()
    assert http.type == "http_client"
    assert http.credentials_key == "example"
    assert from_struct(http.config) == {"base_url": "https://api.example.com", "timeout": 5}
    named = kgw.ref("orders_db").to_proto()
    assert named.ref == "orders_db"
    assert named.type == "" and not named.HasField("config")


@pytest.mark.parametrize("key", ["password", "token", "api_key"])
def test_helpers_refuse_inline_credentials(key: str) -> None:
    config: dict[str, Any] = {key: "x"}
    with pytest.raises(ValueError, match="credentials_ref"):
        kgw.database(database="app", **config)


def test_resource_spec_accepts_dicts_and_messages() -> None:
    from_dict = kgw.resources.resource_spec(
        {"type": "database", "config": {"host": "db"}, "credentials_ref": "pg"}
    )
    assert from_dict.type == "database" and from_dict.credentials_ref == "pg"
    assert from_struct(from_dict.config) == {"host": "db"}
    msg = resource_pb2.ResourceSpec(ref="x")
    assert kgw.resources.resource_spec(msg) is msg
    with pytest.raises(ValueError, match="unknown resource spec keys"):
        kgw.resources.resource_spec({"type": "database", "password": "x"})
    with pytest.raises(TypeError):
        kgw.resources.resource_spec(42)  # type: ignore[arg-type]


def test_execution_request_fields() -> None:
    request = _requests.execution_request(
        execution_pb2.ExecuteWorkflowRequest(),
        "hello",
        parameters={"n": 3},
        resources={"db": kgw.database(database="app", credentials_ref="pg"), "api": kgw.ref("api")},
        context={"user": "u1"},
        timeout=datetime.timedelta(seconds=90),
        idempotency_key="key-1",
        version=2,
    )
    assert request.workflow == "hello"
    assert request.version == 2
    assert from_struct(request.parameters) == {"n": 3}
    assert from_struct(request.context) == {"user": "u1"}
    assert request.timeout.seconds == 90
    assert request.idempotency_key == "key-1"
    assert sorted(request.resources) == ["api", "db"]
    assert request.resources["db"].credentials_ref == "pg"
    assert request.resources["api"].ref == "api"


def test_execution_request_leaves_unset_fields_unset() -> None:
    request = _requests.execution_request(
        execution_pb2.StreamExecutionRequest(),
        "hello",
        parameters=None,
        resources=None,
        context=None,
        timeout=None,
        idempotency_key=None,
        version=0,
    )
    assert not request.HasField("parameters")
    assert not request.HasField("context")
    assert not request.HasField("timeout")
    assert request.idempotency_key == ""


def test_execution_request_sets_given_empty_values() -> None:
    # Given but empty is not the same as not given: the field is present.
    request = _requests.execution_request(
        execution_pb2.ExecuteWorkflowRequest(),
        "hello",
        parameters={},
        resources={},
        context={},
        timeout=0,
        idempotency_key="",
        version=0,
    )
    assert request.HasField("parameters") and not request.parameters.fields
    assert request.HasField("context") and not request.context.fields
    assert request.HasField("timeout") and request.timeout.seconds == 0
    assert not request.resources
    # Bad values are refused whether or not other arguments are given.
    for bad in ({"parameters": [1]}, {"context": "x"}, {"timeout": "5s"}):
        args: dict[str, Any] = dict(
            parameters=None, resources=None, context=None, timeout=None, idempotency_key=None, version=0
        )
        args.update(bad)
        with pytest.raises(TypeError):
            _requests.execution_request(execution_pb2.ExecuteWorkflowRequest(), "hello", **args)


def test_execution_request_needs_a_name() -> None:
    with pytest.raises(ValueError, match="workflow name is empty"):
        _requests.execution_request(
            execution_pb2.StartExecutionRequest(),
            "",
            parameters=None,
            resources=None,
            context=None,
            timeout=None,
            idempotency_key=None,
            version=0,
        )


def test_register_request_name_overrides() -> None:
    wf = kgw.AsyncWorkflowBuilder("built-name").add_async_code("a", "result = {}").build()
    assert _requests.register_request("given", wf).workflow.name == "given"
    assert _requests.register_request(None, wf).workflow.name == "built-name"
    assert wf.name == "built-name"
    with pytest.raises(TypeError, match="AsyncWorkflowBuilder"):
        _requests.register_request("x", {"nodes": []})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name is empty"):
        _requests.register_request(None, workflow_pb2.Workflow())


def test_list_executions_status_filter() -> None:
    request = _requests.list_executions_request("hello", "timed_out", 10, "tok")
    assert request.status == execution_pb2.EXECUTION_STATUS_TIMED_OUT
    assert (request.workflow, request.page_size, request.page_token) == ("hello", 10, "tok")
    assert _requests.list_executions_request(None, None, 0, "").status == 0
    with pytest.raises(ValueError, match="unknown execution status 'done'"):
        _requests.list_executions_request(None, "done", 0, "")


def test_store_secret_request() -> None:
    value: dict[str, Any] = {"user": "app", "password": "pw"}
    request = _requests.store_secret_request(
        "pg", value, ttl=3600, expire_time=None, allowed_hosts=["127.0.0.1"], description="db login"
    )
    assert request.name == "pg"
    assert from_struct(request.value) == value
    assert request.ttl.seconds == 3600
    assert request.WhichOneof("expiration") == "ttl"
    assert list(request.allowed_hosts) == ["127.0.0.1"]
    at = datetime.datetime(2031, 1, 1, tzinfo=datetime.timezone.utc)
    request = _requests.store_secret_request(
        "pg", value, ttl=None, expire_time=at, allowed_hosts=None, description=""
    )
    assert request.WhichOneof("expiration") == "expire_time"
    with pytest.raises(ValueError, match="not both"):
        _requests.store_secret_request("pg", value, ttl=1, expire_time=at, allowed_hosts=None, description="")
    with pytest.raises(ValueError, match="non-empty dict"):
        _requests.store_secret_request("pg", {}, ttl=None, expire_time=None, allowed_hosts=None, description="")


def test_method_paths_come_from_descriptors() -> None:
    assert _requests.method_path(_requests.EXECUTION_SERVICE, "ExecuteWorkflow") == (
        "/kgw.v1.ExecutionService/ExecuteWorkflow"
    )
    assert _requests.method_path(_requests.SECRET_SERVICE, "StoreSecret") == "/kgw.v1.SecretService/StoreSecret"


def _lagging(metadata: dict[str, str]) -> kgw.KailashError:
    import grpc

    return kgw.ResourceExhausted(grpc.StatusCode.RESOURCE_EXHAUSTED, "WATCH_LAGGING", "behind", metadata=metadata)


def test_resume_tracker() -> None:
    import grpc

    tracker = _requests.ResumeTracker()
    # Before any event, the error's metadata names the execution and seq.
    assert tracker.resume_point(_lagging({"execution_id": "ex", "resume_after_seq": "4"})) == ("ex", 4)
    # No second resume without progress in between.
    assert tracker.resume_point(_lagging({"execution_id": "ex"})) is None
    tracker.saw("ex", 7)
    assert tracker.resume_point(_lagging({})) == ("ex", 7)
    tracker.saw("ex", 8)
    other = kgw.NotFound(grpc.StatusCode.NOT_FOUND, "EXECUTION_NOT_FOUND", "gone")
    assert tracker.resume_point(other) is None
    assert _requests.ResumeTracker().resume_point(_lagging({})) is None
