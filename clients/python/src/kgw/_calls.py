"""The RPCs of the clients, described once for the async and the sync client.

Each function here takes the arguments of a public client method, checks
them and returns the call to make: the method's path, its request, and how
the response becomes the value the method returns. :class:`kgw.KailashClient`
awaits the call and :class:`kgw.SyncKailashClient` blocks on it; nothing
else differs between them.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar, Union

from google.protobuf import descriptor
from google.protobuf.message import Message

from kgw import _requests
from kgw._requests import ResourceArg
from kgw._values import Seconds
from kgw.errors import KailashError
from kgw.types import Execution, ExecutionEvent, Page, Secret, WorkflowInfo, WorkflowSummary
from kgw.v1 import execution_pb2, secret_pb2, workflow_pb2

_Resp = TypeVar("_Resp", bound=Message)
_T = TypeVar("_T")
_M = TypeVar("_M")
_R = TypeVar(
    "_R",
    execution_pb2.ExecuteWorkflowRequest,
    execution_pb2.StartExecutionRequest,
    execution_pb2.StreamExecutionRequest,
)

#: The response messages of the streaming RPCs; each carries one ``event``.
EventResponse = Union[execution_pb2.StreamExecutionResponse, execution_pb2.WatchExecutionResponse]


@dataclass(frozen=True)
class _Call(Generic[_Resp]):
    """A gRPC method, its request and the type of its responses."""

    path: str
    request: Message
    response_type: type[_Resp]

    def bind(self, factory: Callable[..., _M]) -> _M:
        """Returns the multi-callable of the method from a channel's
        ``unary_unary`` or ``unary_stream`` (``factory``)."""
        return factory(
            self.path,
            request_serializer=type(self.request).SerializeToString,
            response_deserializer=self.response_type.FromString,
        )


@dataclass(frozen=True)
class Unary(_Call[_Resp], Generic[_Resp, _T]):
    """A unary call and the conversion of its response into what the client method returns."""

    convert: Callable[[_Resp], _T]


@dataclass(frozen=True)
class Stream(_Call[EventResponse]):
    """A call of StreamExecution or WatchExecution (each response carries one event)."""


def _unary(
    service: descriptor.ServiceDescriptor,
    method: str,
    request: Message,
    response_type: type[_Resp],
    convert: Callable[[_Resp], _T],
) -> Unary[_Resp, _T]:
    return Unary(_requests.method_path(service, method), request, response_type, convert)


_WF = _requests.WORKFLOW_SERVICE
_EX = _requests.EXECUTION_SERVICE
_SE = _requests.SECRET_SERVICE


class Events:
    """Converts the responses of one event stream and resumes it when the
    gateway drops it for lagging (see :class:`kgw._requests.ResumeTracker`)."""

    def __init__(self) -> None:
        self._tracker = _requests.ResumeTracker()

    def event(self, response: EventResponse) -> ExecutionEvent:
        """Returns the event of a response and records it as delivered."""
        event = ExecutionEvent.from_proto(response.event)
        self._tracker.saw(event.execution_id, event.seq)
        return event

    def resume(self, error: KailashError) -> Stream:
        """Returns the WatchExecution call that continues after the last event
        delivered, or raises ``error`` when the stream cannot be resumed."""
        point = self._tracker.resume_point(error)
        if point is None:
            raise error from None
        return watch_execution(*point)


# Workflows.


def register_workflow(name: str | None, workflow: workflow_pb2.Workflow) -> Unary[Any, WorkflowInfo]:
    """RegisterWorkflow; a non-empty name overrides the workflow's."""
    return _unary(
        _WF,
        "RegisterWorkflow",
        _requests.register_request(name, workflow),
        workflow_pb2.RegisterWorkflowResponse,
        lambda r: WorkflowInfo.from_proto(r.workflow),
    )


def get_workflow(name: str, version: int) -> Unary[Any, WorkflowInfo]:
    """GetWorkflow."""
    return _unary(
        _WF,
        "GetWorkflow",
        workflow_pb2.GetWorkflowRequest(name=name, version=version),
        workflow_pb2.GetWorkflowResponse,
        lambda r: WorkflowInfo.from_proto(r.workflow),
    )


def list_workflows(page_size: int, page_token: str) -> Unary[Any, Page[WorkflowSummary]]:
    """ListWorkflows."""
    return _unary(
        _WF,
        "ListWorkflows",
        workflow_pb2.ListWorkflowsRequest(page_size=page_size, page_token=page_token),
        workflow_pb2.ListWorkflowsResponse,
        lambda r: Page([WorkflowSummary.from_proto(w) for w in r.workflows], r.next_page_token),
    )


def delete_workflow(name: str) -> Unary[Any, None]:
    """DeleteWorkflow."""
    return _unary(
        _WF, "DeleteWorkflow", workflow_pb2.DeleteWorkflowRequest(name=name), workflow_pb2.DeleteWorkflowResponse, _none
    )


# Executions.


class ExecutionArgs(NamedTuple):
    """The arguments of execute_workflow, start_execution and stream_workflow."""

    name: str
    parameters: Mapping[str, Any] | None
    resources: Mapping[str, ResourceArg] | None
    context: Mapping[str, Any] | None
    timeout: Seconds | None
    idempotency_key: str | None
    version: int

    def fill(self, request: _R) -> _R:
        """Fills ``request`` with the arguments (checking them)."""
        return _requests.execution_request(
            request,
            self.name,
            parameters=self.parameters,
            resources=self.resources,
            context=self.context,
            timeout=self.timeout,
            idempotency_key=self.idempotency_key,
            version=self.version,
        )


def execute_workflow(args: ExecutionArgs) -> Unary[Any, Execution]:
    """ExecuteWorkflow."""
    return _unary(
        _EX,
        "ExecuteWorkflow",
        args.fill(execution_pb2.ExecuteWorkflowRequest()),
        execution_pb2.ExecuteWorkflowResponse,
        lambda r: Execution.from_proto(r.execution),
    )


def start_execution(args: ExecutionArgs) -> Unary[Any, str]:
    """StartExecution; the call returns the execution id."""
    return _unary(
        _EX,
        "StartExecution",
        args.fill(execution_pb2.StartExecutionRequest()),
        execution_pb2.StartExecutionResponse,
        lambda r: r.execution_id,
    )


def stream_workflow(args: ExecutionArgs) -> Stream:
    """StreamExecution."""
    request = args.fill(execution_pb2.StreamExecutionRequest())
    return Stream(_requests.method_path(_EX, "StreamExecution"), request, execution_pb2.StreamExecutionResponse)


def watch_execution(execution_id: str, after_seq: int) -> Stream:
    """WatchExecution."""
    request = execution_pb2.WatchExecutionRequest(execution_id=execution_id, after_seq=after_seq)
    return Stream(_requests.method_path(_EX, "WatchExecution"), request, execution_pb2.WatchExecutionResponse)


def get_execution(execution_id: str) -> Unary[Any, Execution]:
    """GetExecution."""
    return _unary(
        _EX,
        "GetExecution",
        execution_pb2.GetExecutionRequest(execution_id=execution_id),
        execution_pb2.GetExecutionResponse,
        lambda r: Execution.from_proto(r.execution),
    )


def list_executions(
    workflow: str | None, status: str | None, page_size: int, page_token: str
) -> Unary[Any, Page[Execution]]:
    """ListExecutions."""
    return _unary(
        _EX,
        "ListExecutions",
        _requests.list_executions_request(workflow, status, page_size, page_token),
        execution_pb2.ListExecutionsResponse,
        lambda r: Page([Execution.from_proto(e) for e in r.executions], r.next_page_token),
    )


def cancel_execution(execution_id: str) -> Unary[Any, Execution]:
    """CancelExecution."""
    return _unary(
        _EX,
        "CancelExecution",
        execution_pb2.CancelExecutionRequest(execution_id=execution_id),
        execution_pb2.CancelExecutionResponse,
        lambda r: Execution.from_proto(r.execution),
    )


# Secrets.


def store_secret(
    name: str,
    value: Mapping[str, Any],
    ttl: Seconds | None,
    expire_time: datetime.datetime | None,
    allowed_hosts: Iterable[str] | None,
    description: str,
) -> Unary[Any, Secret]:
    """StoreSecret."""
    request = _requests.store_secret_request(
        name, value, ttl=ttl, expire_time=expire_time, allowed_hosts=allowed_hosts, description=description
    )
    return _unary(_SE, "StoreSecret", request, secret_pb2.StoreSecretResponse, lambda r: Secret.from_proto(r.secret))


def get_secret(name: str) -> Unary[Any, Secret]:
    """GetSecret."""
    return _unary(
        _SE,
        "GetSecret",
        secret_pb2.GetSecretRequest(name=name),
        secret_pb2.GetSecretResponse,
        lambda r: Secret.from_proto(r.secret),
    )


def list_secrets(page_size: int, page_token: str) -> Unary[Any, Page[Secret]]:
    """ListSecrets."""
    return _unary(
        _SE,
        "ListSecrets",
        secret_pb2.ListSecretsRequest(page_size=page_size, page_token=page_token),
        secret_pb2.ListSecretsResponse,
        lambda r: Page([Secret.from_proto(s) for s in r.secrets], r.next_page_token),
    )


def delete_secret(name: str) -> Unary[Any, None]:
    """DeleteSecret."""
    return _unary(_SE, "DeleteSecret", secret_pb2.DeleteSecretRequest(name=name), secret_pb2.DeleteSecretResponse, _none)


def _none(_: Message) -> None:
    return None
