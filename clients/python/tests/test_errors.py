"""google.rpc.Status details become typed exceptions."""

from __future__ import annotations

import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2
import grpc
import pytest

import kgw
from kgw.errors import error_class, from_status


def _details(reason: str, *violations: tuple[str, str], metadata: dict[str, str] | None = None) -> bytes:
    status = status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0], message="m")
    if reason:
        info = error_details_pb2.ErrorInfo(reason=reason, domain="kgw", metadata=metadata or {})
        status.details.add().Pack(info)
    if violations:
        bad = error_details_pb2.BadRequest()
        for field, description in violations:
            bad.field_violations.add(field=field, description=description)
        status.details.add().Pack(bad)
    return status.SerializeToString()


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (grpc.StatusCode.NOT_FOUND, "WORKFLOW_NOT_FOUND", kgw.WorkflowNotFound),
        (grpc.StatusCode.NOT_FOUND, "EXECUTION_NOT_FOUND", kgw.ExecutionNotFound),
        (grpc.StatusCode.NOT_FOUND, "SECRET_NOT_FOUND", kgw.SecretNotFound),
        (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND", kgw.ResourceNotFound),
        (grpc.StatusCode.NOT_FOUND, "SOMETHING_ELSE", kgw.NotFound),
        (grpc.StatusCode.NOT_FOUND, "", kgw.NotFound),
        (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_WORKFLOW", kgw.InvalidWorkflow),
        (grpc.StatusCode.INVALID_ARGUMENT, "", kgw.InvalidArgument),
        (grpc.StatusCode.PERMISSION_DENIED, "", kgw.PermissionDenied),
        (grpc.StatusCode.UNAUTHENTICATED, "", kgw.Unauthenticated),
        (grpc.StatusCode.UNAVAILABLE, "", kgw.Unavailable),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "", kgw.ResourceExhausted),
        (grpc.StatusCode.ALREADY_EXISTS, "", kgw.AlreadyExists),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "", kgw.DeadlineExceeded),
        (grpc.StatusCode.INTERNAL, "", kgw.KailashError),
        # A reason whose class does not fit the code does not win over it.
        (grpc.StatusCode.UNAVAILABLE, "WORKFLOW_NOT_FOUND", kgw.Unavailable),
    ],
)
def test_error_class(code: grpc.StatusCode, reason: str, cls: type[kgw.KailashError]) -> None:
    assert error_class(code, reason) is cls


def test_from_status_reads_error_info_and_violations() -> None:
    err = from_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid workflow",
        _details(
            "INVALID_WORKFLOW",
            ("nodes[query].code", "1:5: got illegal token"),
            ("connections[0].to_node", "unknown node 'x'"),
            metadata={"workflow": "w"},
        ),
    )
    assert isinstance(err, kgw.InvalidWorkflow)
    assert isinstance(err, kgw.InvalidArgument)
    assert isinstance(err, kgw.KailashError)
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert err.reason == "INVALID_WORKFLOW"
    assert err.domain == "kgw"
    assert err.metadata == {"workflow": "w"}
    assert err.violations == [
        ("nodes[query].code", "1:5: got illegal token"),
        ("connections[0].to_node", "unknown node 'x'"),
    ]
    assert err.violations[0].field == "nodes[query].code"
    assert "INVALID_WORKFLOW" in str(err) and "nodes[query].code: 1:5: got illegal token" in str(err)


def test_from_status_without_details_falls_back_to_code() -> None:
    err = from_status(grpc.StatusCode.NOT_FOUND, "workflow 'x' not found", None)
    assert type(err) is kgw.NotFound
    assert err.reason == ""
    assert err.message == "workflow 'x' not found"


def test_from_status_ignores_garbage_details() -> None:
    err = from_status(grpc.StatusCode.NOT_FOUND, "m", b"\xff\xff\xff")
    assert type(err) is kgw.NotFound
