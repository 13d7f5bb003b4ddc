"""Exceptions raised by the kgw client.

Every failed RPC raises a :class:`KailashError` (or a subclass) carrying the
gRPC status code, the stable ``reason`` of the server's ``google.rpc.ErrorInfo``
(e.g. ``"WORKFLOW_NOT_FOUND"``), its metadata, and the field violations of a
``google.rpc.BadRequest`` when the request was invalid. The class is chosen
by reason first and by status code when the reason is unknown or absent, so
``except kgw.NotFound`` catches every kind of missing thing while
``except kgw.WorkflowNotFound`` catches only unknown workflows.

A workflow that fails while running is not an exception: ``execute_workflow``
returns an execution with ``status == "failed"`` and an ``error``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import grpc
from google.protobuf.message import DecodeError
import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "ExecutionNotFound",
    "FailedPrecondition",
    "InvalidArgument",
    "InvalidWorkflow",
    "KailashError",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "ResourceNotFound",
    "SecretNotFound",
    "Unauthenticated",
    "Unavailable",
    "Violation",
    "WorkflowNotFound",
    "from_rpc_error",
]

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class Violation(NamedTuple):
    """One problem with a request: the field (e.g. ``nodes[query].code``) and what is wrong."""

    field: str
    description: str


class KailashError(Exception):
    """An RPC to the gateway failed.

    Attributes:
        code: the gRPC status code.
        reason: the ErrorInfo reason (UPPER_SNAKE_CASE), or "" when the server sent none.
        message: the status message.
        domain: the ErrorInfo domain ("kgw" for the gateway's own errors).
        metadata: the ErrorInfo metadata (e.g. the workflow name).
        violations: the BadRequest field violations, if any.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        *,
        domain: str = "",
        metadata: dict[str, str] | None = None,
        violations: Sequence[Violation] = (),
    ) -> None:
        self.code = code
        self.reason = reason
        self.message = message
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.violations: list[Violation] = list(violations)
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"{self.code.name}"
        if self.reason:
            text += f" ({self.reason})"
        text += f": {self.message}"
        for violation in self.violations:
            text += f"\n  {violation.field}: {violation.description}"
        return text


class InvalidArgument(KailashError):
    """The request was invalid (INVALID_ARGUMENT); see ``violations``."""


class InvalidWorkflow(InvalidArgument):
    """RegisterWorkflow rejected the definition; ``violations`` names each problem."""


class NotFound(KailashError):
    """Something the request named does not exist (NOT_FOUND)."""


class WorkflowNotFound(NotFound):
    """No workflow (or workflow version) has that name."""


class ExecutionNotFound(NotFound):
    """No execution has that id."""


class SecretNotFound(NotFound):
    """No secret has that name."""


class ResourceNotFound(NotFound):
    """No named resource has that name."""


class AlreadyExists(KailashError):
    """The thing to create exists already (ALREADY_EXISTS)."""


class PermissionDenied(KailashError):
    """The caller may not do this (PERMISSION_DENIED)."""


class Unauthenticated(KailashError):
    """The caller sent no valid credentials (UNAUTHENTICATED)."""


class FailedPrecondition(KailashError):
    """The system is not in a state that allows the request (FAILED_PRECONDITION)."""


class ResourceExhausted(KailashError):
    """A limit or quota was reached, e.g. the gateway is overloaded (RESOURCE_EXHAUSTED)."""


class Unavailable(KailashError):
    """The gateway cannot be reached or is shutting down (UNAVAILABLE); retrying may help."""


class DeadlineExceeded(KailashError):
    """The RPC deadline passed before the gateway answered (DEADLINE_EXCEEDED)."""


class Cancelled(KailashError):
    """The RPC was cancelled (CANCELLED)."""


_BY_REASON: dict[str, type[KailashError]] = {
    "WORKFLOW_NOT_FOUND": WorkflowNotFound,
    "WORKFLOW_VERSION_NOT_FOUND": WorkflowNotFound,
    "EXECUTION_NOT_FOUND": ExecutionNotFound,
    "SECRET_NOT_FOUND": SecretNotFound,
    "RESOURCE_NOT_FOUND": ResourceNotFound,
    "INVALID_WORKFLOW": InvalidWorkflow,
}

_BY_CODE: dict[grpc.StatusCode, type[KailashError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}


def error_class(code: grpc.StatusCode, reason: str) -> type[KailashError]:
    """Returns the exception class for a status code and ErrorInfo reason.

    The reason decides when it is known and agrees with the code's family
    (a NOT_FOUND reason maps to a NotFound subclass only under NOT_FOUND);
    otherwise the code decides.
    """
    by_code = _BY_CODE.get(code, KailashError)
    by_reason = _BY_REASON.get(reason)
    if by_reason is not None and issubclass(by_reason, by_code):
        return by_reason
    return by_code


def from_status(code: grpc.StatusCode, message: str, details: bytes | None) -> KailashError:
    """Builds the exception for a status and its serialized google.rpc.Status details."""
    reason = ""
    domain = ""
    metadata: dict[str, str] = {}
    violations: list[Violation] = []
    if details:
        status = status_pb2.Status()
        try:
            status.ParseFromString(details)
        except DecodeError:
            status.Clear()
        if status.message:
            message = message or status.message
        for any_detail in status.details:
            info = error_details_pb2.ErrorInfo()
            bad = error_details_pb2.BadRequest()
            if any_detail.Is(info.DESCRIPTOR) and any_detail.Unpack(info):
                reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif any_detail.Is(bad.DESCRIPTOR) and any_detail.Unpack(bad):
                violations.extend(Violation(v.field, v.description) for v in bad.field_violations)
    cls = error_class(code, reason)
    return cls(code, reason, message, domain=domain, metadata=metadata, violations=violations)


def from_rpc_error(error: grpc.RpcError) -> KailashError:
    """Converts an error raised by grpc (sync or grpc.aio) to a KailashError."""
    code = grpc.StatusCode.UNKNOWN
    message = str(error)
    details: bytes | None = None
    if isinstance(error, (grpc.Call, grpc.aio.AioRpcError)):
        code = error.code()
        message = error.details() or ""
        trailers = error.trailing_metadata()
        for key, value in trailers or ():
            if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
                details = value
    return from_status(code, message, details)


def unreachable_hint(error: KailashError, target: str) -> KailashError:
    """Adds the gateway's address and what to do to an UNAVAILABLE error that
    the transport raised (no ErrorInfo reason: the gateway was not reached)."""
    if error.code != grpc.StatusCode.UNAVAILABLE or error.reason or "kgw serve" in error.message:
        return error
    error.message = (
        f"cannot reach the gateway at {target}: {error.message} "
        "(is it running? start one with `kgw serve`, or pass its address as KailashClient(target))"
    )
    error.args = (error._describe(),)
    return error
