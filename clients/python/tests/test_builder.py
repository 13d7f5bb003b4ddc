"""AsyncWorkflowBuilder produces the kgw.v1.Workflow the gateway expects."""

from __future__ import annotations

import datetime

import pytest

import kgw
from kgw.v1 import workflow_pb2

CODE = 'db = get_resource("db")\nresult = {"message": db.fetchval("SELECT 1")}\n'


def test_build_hello_database() -> None:
    wf = (
        kgw.AsyncWorkflowBuilder("hello-database")
        .add_async_code("query", CODE, required_resources=["db"], timeout=5, retry=3)
        .set_description("says hello")
        .set_timeout(datetime.timedelta(minutes=1))
        .set_labels({"team": "core"})
        .build()
    )
    assert isinstance(wf, workflow_pb2.Workflow)
    assert wf.name == "hello-database"
    assert wf.description == "says hello"
    assert wf.timeout.seconds == 60
    assert dict(wf.labels) == {"team": "core"}
    (node,) = wf.nodes
    assert node.id == "query"
    assert node.code == CODE
    assert list(node.required_resources) == ["db"]
    assert node.timeout.seconds == 5
    assert node.retry.max_attempts == 3
    assert not node.retry.HasField("initial_backoff")


def test_retry_policy_and_defaults() -> None:
    wf = (
        kgw.WorkflowBuilder("w")
        .add_async_code("a", "result = {}", retry=kgw.RetryPolicy(4, initial_backoff=0.25, max_backoff=2, multiplier=3))
        .add_code("b", "result = {}")
        .build()
    )
    a, b = wf.nodes
    assert a.retry.max_attempts == 4
    assert a.retry.initial_backoff.nanos == 250_000_000
    assert a.retry.max_backoff.seconds == 2
    assert a.retry.multiplier == 3
    assert not b.HasField("retry")
    assert not b.HasField("timeout")
    assert list(b.required_resources) == []


def test_pass_all_connection_is_empty_strings() -> None:
    wf = (
        kgw.AsyncWorkflowBuilder("pipe")
        .add_async_code("a", "result = {'x': 1}")
        .add_async_code("b", "result = {'y': x}")
        .add_async_code("c", "result = {'z': y}")
        .add_connection("a", None, "b", None)
        .add_connection("b", "y", "c", "y2")
        .add_connection("a", "x", "c")
        .build()
    )
    assert [(c.from_node, c.from_output, c.to_node, c.to_input) for c in wf.connections] == [
        ("a", "", "b", ""),
        ("b", "y", "c", "y2"),
        ("a", "x", "c", ""),
    ]


def test_build_returns_a_copy() -> None:
    builder = kgw.AsyncWorkflowBuilder("w").add_async_code("a", "result = {}")
    first = builder.build()
    builder.add_async_code("b", "result = {}")
    assert len(first.nodes) == 1
    assert len(builder.build().nodes) == 2


def test_duplicate_node_id_is_rejected() -> None:
    builder = kgw.AsyncWorkflowBuilder("w").add_async_code("a", "result = {}")
    with pytest.raises(ValueError, match="duplicate node id 'a'"):
        builder.add_async_code("a", "result = {}")


def test_connection_to_unknown_node_is_rejected() -> None:
    builder = kgw.AsyncWorkflowBuilder("w").add_async_code("a", "result = {}").add_connection("a", "x", "nope")
    with pytest.raises(ValueError, match="unknown node 'nope'"):
        builder.build()


def test_empty_workflow_is_rejected() -> None:
    with pytest.raises(ValueError, match="has no nodes"):
        kgw.AsyncWorkflowBuilder("w").build()


def test_retry_must_allow_one_attempt() -> None:
    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        kgw.AsyncWorkflowBuilder("w").add_async_code("a", "result = {}", retry=0)
