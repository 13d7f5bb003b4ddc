"""Request construction shared by the async and sync clients."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, Union

from google.protobuf import descriptor

from kgw._values import Seconds, to_duration, to_struct, to_timestamp
from kgw.errors import KailashError
from kgw.resources import ResourceSpec, resource_spec
from kgw.types import execution_status_value
from kgw.v1 import access_pb2, execution_pb2, resource_pb2, secret_pb2, workflow_pb2

#: What ``resources=`` accepts for each resource name.
ResourceArg = Union[ResourceSpec, resource_pb2.ResourceSpec, Mapping[str, Any]]


_R = TypeVar(
    "_R",
    execution_pb2.ExecuteWorkflowRequest,
    execution_pb2.StartExecutionRequest,
    execution_pb2.StreamExecutionRequest,
)


@dataclass(frozen=True)
class WorkflowRequest:
    """The inputs of one execution, as the Kailash Python SDK groups them::

        request = kgw.WorkflowRequest(parameters={"id": 7}, resources={"db": kgw.ref("orders_db")})
        response = await client.execute_workflow("orders", request)

    ``execute_workflow``, ``start_execution`` and ``stream_workflow`` accept it
    in place of the ``parameters``/``resources``/``context`` arguments.
    """

    parameters: Mapping[str, Any] | None = None
    resources: Mapping[str, ResourceArg] | None = None
    context: Mapping[str, Any] | None = None


_PATHS: dict[tuple[str, str], str] = {}


def method_path(service: descriptor.ServiceDescriptor, method: str) -> str:
    """Returns the gRPC path of a method, e.g. /kgw.v1.ExecutionService/ExecuteWorkflow."""
    key = (service.full_name, method)
    path = _PATHS.get(key)
    if path is None:
        path = _PATHS[key] = f"/{service.full_name}/{service.methods_by_name[method].name}"
    return path


WORKFLOW_SERVICE = workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"]
EXECUTION_SERVICE = execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"]
SECRET_SERVICE = secret_pb2.DESCRIPTOR.services_by_name["SecretService"]
RESOURCE_SERVICE = resource_pb2.DESCRIPTOR.services_by_name["ResourceService"]
ACCESS_SERVICE = access_pb2.DESCRIPTOR.services_by_name["AccessService"]


def execution_request(
    request: _R,
    name: str,
    *,
    parameters: Mapping[str, Any] | None,
    resources: Mapping[str, ResourceArg] | None,
    context: Mapping[str, Any] | None,
    timeout: Seconds | None,
    idempotency_key: str | None,
    version: int,
) -> _R:
    """Fills the fields shared by ExecuteWorkflow, StartExecution and StreamExecution."""
    if not name:
        raise ValueError("workflow name is empty")
    request.workflow = name
    request.version = version
    # Each optional argument is converted only when given: a call with the
    # workflow name alone (the common case) converts nothing.
    if parameters is not None:
        request.parameters.CopyFrom(to_struct(parameters))
    if context is not None:
        request.context.CopyFrom(to_struct(context))
    if timeout is not None:
        request.timeout.CopyFrom(to_duration(timeout))
    if idempotency_key:
        request.idempotency_key = idempotency_key
    if resources:
        for res_name, spec in resources.items():
            request.resources[res_name].CopyFrom(resource_spec(spec))
    return request


def register_request(
    name: str | None, workflow: workflow_pb2.Workflow, validate_only: bool = False
) -> workflow_pb2.RegisterWorkflowRequest:
    """Builds a RegisterWorkflowRequest; a non-empty name overrides the workflow's."""
    if not isinstance(workflow, workflow_pb2.Workflow):
        raise TypeError(
            f"expected a kgw.v1.Workflow (from AsyncWorkflowBuilder.build()), got {type(workflow).__name__}"
        )
    request = workflow_pb2.RegisterWorkflowRequest(validate_only=validate_only)
    request.workflow.CopyFrom(workflow)
    if name:
        request.workflow.name = name
    if not request.workflow.name:
        raise ValueError("workflow name is empty")
    return request


def list_executions_request(
    workflow: str | None, status: str | None, page_size: int, page_token: str, caller: str | None = None
) -> execution_pb2.ListExecutionsRequest:
    """Builds a ListExecutionsRequest; status is a lower-case name such as "failed"."""
    request = execution_pb2.ListExecutionsRequest(
        workflow=workflow or "", page_size=page_size, page_token=page_token, caller=caller or ""
    )
    if status:
        request.status = execution_status_value(status)  # type: ignore[assignment]
    return request


def store_secret_request(
    name: str,
    value: Mapping[str, Any],
    *,
    ttl: Seconds | None,
    expire_time: datetime.datetime | None,
    allowed_hosts: Iterable[str] | None,
    description: str,
    allowed_callers: Iterable[str] | None = None,
) -> secret_pb2.StoreSecretRequest:
    """Builds a StoreSecretRequest."""
    if ttl is not None and expire_time is not None:
        raise ValueError("give ttl or expire_time, not both")
    struct = to_struct(value)
    if struct is None or not struct.fields:
        raise ValueError("secret value must be a non-empty dict, e.g. {'user': ..., 'password': ...}")
    request = secret_pb2.StoreSecretRequest(name=name, description=description)
    request.value.CopyFrom(struct)
    request.allowed_hosts.extend(strings(allowed_hosts, "allowed_hosts"))
    request.allowed_callers.extend(strings(allowed_callers, "allowed_callers"))
    duration = to_duration(ttl)
    if duration is not None:
        request.ttl.CopyFrom(duration)
    if expire_time is not None:
        request.expire_time.CopyFrom(to_timestamp(expire_time))
    return request


def strings(values: Iterable[str] | None, what: str) -> list[str]:
    """Returns values as a list of strings; a lone string is refused (it would be split into letters)."""
    if values is None:
        return []
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{what} must be a list of strings, not a single string")
    return [str(v) for v in values]


class ResumeTracker:
    """Decides whether an event stream that failed can be resumed with WatchExecution.

    The gateway ends a stream that falls too far behind its execution with
    RESOURCE_EXHAUSTED / WATCH_LAGGING (metadata ``execution_id`` and
    ``resume_after_seq``). The clients then resume transparently after the
    last event they delivered, so the caller misses nothing and sees nothing
    twice. A resumed stream that lags again before delivering any event is
    not resumed again (the error is raised).
    """

    def __init__(self) -> None:
        self.execution_id = ""
        self.last_seq = 0
        self._progressed = True

    def saw(self, execution_id: str, seq: int) -> None:
        """Records a delivered event."""
        self.execution_id = execution_id or self.execution_id
        self.last_seq = seq
        self._progressed = True

    def resume_point(self, error: KailashError) -> tuple[str, int] | None:
        """Returns (execution_id, after_seq) to resume from, or None to raise ``error``."""
        if error.reason != "WATCH_LAGGING" or not self._progressed:
            return None
        execution_id = self.execution_id or error.metadata.get("execution_id", "")
        if not execution_id:
            return None
        after = self.last_seq
        if not after:
            try:
                after = int(error.metadata.get("resume_after_seq", "0"))
            except ValueError:
                after = 0
        self._progressed = False
        return execution_id, after
