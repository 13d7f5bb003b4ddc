"""Responses become plain Python objects."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import pickle
from typing import Any

import pytest

from google.protobuf import struct_pb2

from kgw.types import Execution, ExecutionError, ExecutionEvent, NodeExecution, Secret
from kgw.v1 import execution_pb2, secret_pb2


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def _execution(status: int) -> execution_pb2.Execution:
    msg = execution_pb2.Execution(id="ex-1", workflow="hello", version=2, status=status, idempotency_key="k")  # type: ignore[arg-type]
    msg.result["query"].CopyFrom(_struct({"message": "Hello from kgw", "rows": 2}))
    msg.create_time.FromDatetime(datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc))
    node = msg.nodes.add(node_id="query", status=execution_pb2.NODE_STATUS_COMPLETED, attempts=1)
    node.duration.FromMilliseconds(1500)
    return msg


def test_execution_view() -> None:
    ex = Execution.from_proto(_execution(execution_pb2.EXECUTION_STATUS_COMPLETED))
    assert ex.execution_id == ex.id == "ex-1"
    assert ex.status == "completed"
    assert ex.succeeded and ex.done
    assert ex.result == {"query": {"message": "Hello from kgw", "rows": 2}}
    assert ex.result["query"]["message"] == "Hello from kgw"
    assert ex.error is None
    assert ex.create_time == datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    assert ex.start_time is None
    (node,) = ex.nodes
    assert node.status == "completed"
    assert node.duration == datetime.timedelta(milliseconds=1500)
    assert node.start_time is None


def _eager(msg: execution_pb2.Execution) -> Execution:
    """The Execution every field of which is converted at once (the constructor)."""
    ex = Execution.from_proto(msg)
    return Execution(**{f.name: getattr(ex, f.name) for f in dataclasses.fields(Execution)})


def test_lazy_fields_match_eager_conversion() -> None:
    msg = _execution(execution_pb2.EXECUTION_STATUS_COMPLETED)
    msg.start_time.FromDatetime(datetime.datetime(2030, 1, 1, 0, 0, 1, 250, tzinfo=datetime.timezone.utc))
    eager = _eager(msg)
    lazy = Execution.from_proto(msg)
    # Nothing read yet: no field is converted, the instance holds the message only.
    assert vars(lazy) == {"proto": msg}
    assert lazy == eager
    assert repr(Execution.from_proto(msg)) == repr(eager)
    assert lazy.nodes is lazy.nodes  # converted once, then stored
    assert lazy.start_time == datetime.datetime(2030, 1, 1, 0, 0, 1, 250, tzinfo=datetime.timezone.utc)
    assert lazy.end_time is None
    assert dataclasses.asdict(Execution.from_proto(msg)) == dataclasses.asdict(eager)
    for fresh in (
        pickle.loads(pickle.dumps(Execution.from_proto(msg))),
        copy.copy(Execution.from_proto(msg)),
        copy.deepcopy(Execution.from_proto(msg)),
    ):
        assert fresh == eager
    changed = dataclasses.replace(Execution.from_proto(msg), status="failed")
    assert changed.status == "failed" and changed.nodes == eager.nodes
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        getattr(lazy, "nope")
    with pytest.raises(dataclasses.FrozenInstanceError):
        lazy.nodes = []  # type: ignore[misc]


def test_every_execution_field_is_converted_on_first_read() -> None:
    utc = datetime.timezone.utc
    msg = _execution(execution_pb2.EXECUTION_STATUS_FAILED)
    msg.error.CopyFrom(execution_pb2.ExecutionError(node_id="query", code="NODE_ERROR", message="boom", traceback="tb"))
    msg.end_time.FromDatetime(datetime.datetime(2030, 1, 1, 0, 0, 2, tzinfo=utc))
    # Written out by hand, not through from_proto: what each field must read.
    want = Execution(
        execution_id="ex-1",
        workflow="hello",
        version=2,
        status="failed",
        result={"query": {"message": "Hello from kgw", "rows": 2}},
        error=ExecutionError(node_id="query", code="NODE_ERROR", message="boom", traceback="tb"),
        nodes=[
            NodeExecution(
                node_id="query",
                status="completed",
                attempts=1,
                start_time=None,
                end_time=None,
                duration=datetime.timedelta(milliseconds=1500),
                error=None,
            )
        ],
        create_time=datetime.datetime(2030, 1, 1, tzinfo=utc),
        start_time=None,
        end_time=datetime.datetime(2030, 1, 1, 0, 0, 2, tzinfo=utc),
        idempotency_key="k",
        proto=msg,
    )
    names = [f.name for f in dataclasses.fields(Execution) if f.name != "proto"]
    for name in names:
        # A fresh view per field: reading one converts that one only, and stores it.
        ex = Execution.from_proto(msg)
        assert getattr(ex, name) == getattr(want, name), name
        assert set(vars(ex)) == {"proto", name}
        assert getattr(ex, name) is vars(ex)[name]
    assert Execution.from_proto(msg) == want
    # An Execution made by its constructor holds its own values, whatever its proto says.
    other = dataclasses.replace(want, status="completed", error=None)
    assert other.status == "completed" and other.error is None and other.proto is msg
    # Without a message there is nothing to convert from: a plain AttributeError.
    bare = object.__new__(Execution)
    with pytest.raises(AttributeError, match="no attribute 'status'"):
        bare.status


def test_failed_execution_carries_error() -> None:
    msg = _execution(execution_pb2.EXECUTION_STATUS_FAILED)
    msg.error.node_id = "query"
    msg.error.code = "NODE_ERROR"
    msg.error.message = "node 'query' failed at 2:5: boom"
    ex = Execution.from_proto(msg)
    assert ex.status == "failed"
    assert ex.done and not ex.succeeded
    assert ex.error is not None
    assert (ex.error.node_id, ex.error.code) == ("query", "NODE_ERROR")
    # Exact: the node is named once, by the gateway's message.
    assert str(ex.error) == "NODE_ERROR: node 'query' failed at 2:5: boom"


def test_status_names() -> None:
    names = {
        execution_pb2.EXECUTION_STATUS_PENDING: "pending",
        execution_pb2.EXECUTION_STATUS_RUNNING: "running",
        execution_pb2.EXECUTION_STATUS_CANCELLED: "cancelled",
        execution_pb2.EXECUTION_STATUS_TIMED_OUT: "timed_out",
        execution_pb2.EXECUTION_STATUS_UNSPECIFIED: "unspecified",
    }
    for value, name in names.items():
        assert Execution.from_proto(execution_pb2.Execution(status=value)).status == name
    assert Execution.from_proto(execution_pb2.Execution(status=99)).status == "unspecified"  # type: ignore[arg-type]
    # Every value of the enums has its lower-case name (the tables are built once from the enums).
    for enum_name, status in execution_pb2.ExecutionStatus.items():
        want = enum_name.removeprefix("EXECUTION_STATUS_").lower()
        assert Execution.from_proto(execution_pb2.Execution(status=status)).status == want  # type: ignore[arg-type]
    for enum_name, node_status in execution_pb2.NodeStatus.items():
        msg = execution_pb2.Execution(nodes=[execution_pb2.NodeExecution(node_id="n", status=node_status)])  # type: ignore[arg-type]
        assert Execution.from_proto(msg).nodes[0].status == enum_name.removeprefix("NODE_STATUS_").lower()


def test_event_views() -> None:
    started = execution_pb2.ExecutionEvent(execution_id="ex-1", seq=1)
    started.execution_started.workflow = "hello"
    started.execution_started.version = 2
    e = ExecutionEvent.from_proto(started)
    assert (e.type, e.seq, e.workflow, e.version, e.resumed, e.terminal) == (
        "execution_started", 1, "hello", 2, False, False
    )
    assert e.node_id is None

    log = execution_pb2.ExecutionEvent(execution_id="ex-1", seq=2)
    log.node_log.node_id = "query"
    log.node_log.level = execution_pb2.LOG_LEVEL_WARNING
    log.node_log.message = "slow"
    log.node_log.fields.CopyFrom(_struct({"ms": 12}))
    e = ExecutionEvent.from_proto(log)
    assert (e.type, e.node_id, e.level, e.message, e.fields) == ("node_log", "query", "warning", "slow", {"ms": 12})

    retry = execution_pb2.ExecutionEvent(execution_id="ex-1", seq=3)
    retry.node_retrying.node_id = "query"
    retry.node_retrying.attempt = 1
    retry.node_retrying.error.code = "NODE_ERROR"
    retry.node_retrying.backoff.FromSeconds(2)
    e = ExecutionEvent.from_proto(retry)
    assert e.type == "node_retrying" and e.backoff == datetime.timedelta(seconds=2)
    assert e.error is not None and e.error.code == "NODE_ERROR"

    done = execution_pb2.ExecutionEvent(execution_id="ex-1", seq=4)
    done.node_completed.node_id = "query"
    done.node_completed.attempt = 2
    done.node_completed.result.CopyFrom(_struct({"message": "hi"}))
    e = ExecutionEvent.from_proto(done)
    assert (e.type, e.node_id, e.attempt, e.result) == ("node_completed", "query", 2, {"message": "hi"})

    failed = execution_pb2.ExecutionEvent(execution_id="ex-1", seq=4)
    failed.node_failed.node_id = "query"
    failed.node_failed.error.message = "boom"
    e = ExecutionEvent.from_proto(failed)
    assert e.type == "node_failed" and e.error is not None and e.error.message == "boom"

    terminal = execution_pb2.ExecutionEvent(execution_id="ex-1", seq=5)
    terminal.execution_completed.execution.CopyFrom(_execution(execution_pb2.EXECUTION_STATUS_COMPLETED))
    e = ExecutionEvent.from_proto(terminal)
    assert e.type == "execution_completed" and e.terminal
    assert e.execution is not None and e.execution.result["query"]["message"] == "Hello from kgw"

    for field, name in [
        ("execution_failed", "execution_failed"),
        ("execution_cancelled", "execution_cancelled"),
        ("execution_timed_out", "execution_timed_out"),
    ]:
        msg = execution_pb2.ExecutionEvent(execution_id="ex-1", seq=6)
        getattr(msg, field).execution.id = "ex-1"
        e = ExecutionEvent.from_proto(msg)
        assert e.type == name and e.terminal and e.execution is not None and e.execution.id == "ex-1"

    assert ExecutionEvent.from_proto(execution_pb2.ExecutionEvent(seq=7)).type == "unknown"


def test_secret_view() -> None:
    msg = secret_pb2.Secret(name="pg", version=3, keys=["password", "user"], allowed_hosts=["db.internal"])
    s = Secret.from_proto(msg)
    assert (s.name, s.version, s.keys, s.allowed_hosts, s.expire_time) == (
        "pg", 3, ["password", "user"], ["db.internal"], None
    )
