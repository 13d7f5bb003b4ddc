"""The RPCs of the clients, described once for the async and the sync client.

Each function here takes the arguments of a public client method, checks
them and returns the call to make: the method's path, its request, and how
the response becomes the value the method returns. :class:`kgw.KailashClient`
awaits the call and :class:`kgw.SyncKailashClient` blocks on it; nothing
else differs between them.
"""

from __future__ import annotations

import datetime
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar, Union

from google.protobuf import descriptor
from google.protobuf.message import Message

from kgw import _requests
from kgw._requests import ResourceArg
from kgw._values import Seconds, to_timestamp
from kgw.errors import KailashError
from kgw.resources import resource_spec
from kgw.types import (
    ApiKey,
    CheckResult,
    CreatedApiKey,
    Execution,
    ExecutionEvent,
    Identity,
    NamedResource,
    Page,
    Pool,
    RoleBinding,
    Secret,
    WorkflowInfo,
    WorkflowSummary,
)
from kgw.v1 import access_pb2, execution_pb2, resource_pb2, secret_pb2, workflow_pb2

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


@dataclass(slots=True)
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


@dataclass(slots=True)
class Unary(_Call[_Resp], Generic[_Resp, _T]):
    """A unary call and the conversion of its response into what the client method returns."""

    convert: Callable[[_Resp], _T]


@dataclass(slots=True)
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
_RS = _requests.RESOURCE_SERVICE
_AC = _requests.ACCESS_SERVICE


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


def validate_workflow(name: str | None, workflow: workflow_pb2.Workflow) -> Unary[Any, WorkflowInfo]:
    """RegisterWorkflow with validate_only: every check, nothing stored."""
    return _unary(
        _WF,
        "RegisterWorkflow",
        _requests.register_request(name, workflow, validate_only=True),
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


def execution_args(
    name: str,
    parameters: Mapping[str, Any] | _requests.WorkflowRequest | None,
    resources: Mapping[str, ResourceArg] | None,
    context: Mapping[str, Any] | None,
    timeout: Seconds | None,
    idempotency_key: str | None,
    version: int,
) -> ExecutionArgs:
    """Returns the ExecutionArgs of a call; ``parameters`` may be a :class:`kgw.WorkflowRequest`."""
    if isinstance(parameters, _requests.WorkflowRequest):
        if resources is not None or context is not None:
            raise TypeError("give a WorkflowRequest or parameters/resources/context, not both")
        request = parameters
        return ExecutionArgs(
            name, request.parameters, request.resources, request.context, timeout, idempotency_key, version
        )
    return ExecutionArgs(name, parameters, resources, context, timeout, idempotency_key, version)


def _execution_of(response: Any) -> Execution:
    """The Execution of a response that carries one (ExecuteWorkflow, GetExecution, CancelExecution)."""
    return Execution.from_proto(response.execution)


_EXECUTE_WORKFLOW = _requests.method_path(_EX, "ExecuteWorkflow")


def execute_workflow(args: ExecutionArgs) -> Unary[Any, Execution]:
    """ExecuteWorkflow."""
    request = args.fill(execution_pb2.ExecuteWorkflowRequest())
    return Unary(_EXECUTE_WORKFLOW, request, execution_pb2.ExecuteWorkflowResponse, _execution_of)


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
        _execution_of,
    )


def list_executions(
    workflow: str | None, status: str | None, page_size: int, page_token: str, caller: str | None = None
) -> Unary[Any, Page[Execution]]:
    """ListExecutions."""
    return _unary(
        _EX,
        "ListExecutions",
        _requests.list_executions_request(workflow, status, page_size, page_token, caller),
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
        _execution_of,
    )


# Secrets.


def store_secret(
    name: str,
    value: Mapping[str, Any],
    ttl: Seconds | None,
    expire_time: datetime.datetime | None,
    allowed_hosts: Iterable[str] | None,
    description: str,
    allowed_callers: Iterable[str] | None = None,
) -> Unary[Any, Secret]:
    """StoreSecret."""
    request = _requests.store_secret_request(
        name,
        value,
        ttl=ttl,
        expire_time=expire_time,
        allowed_hosts=allowed_hosts,
        description=description,
        allowed_callers=allowed_callers,
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


def check_encrypt(encrypt: bool | None) -> None:
    """Handles the Kailash Python SDK's ``encrypt=`` argument of store_secret."""
    if encrypt is None:
        return
    if not encrypt:
        raise ValueError("encrypt=False is not supported: the gateway encrypts every secret")
    warnings.warn(
        "store_secret(encrypt=True) is deprecated: the gateway encrypts every secret; drop the argument",
        DeprecationWarning,
        stacklevel=3,
    )


def update_secret_access(name: str, allowed_callers: Iterable[str]) -> Unary[Any, Secret]:
    """UpdateSecretAccess."""
    request = secret_pb2.UpdateSecretAccessRequest(
        name=name, allowed_callers=_requests.strings(allowed_callers, "allowed_callers")
    )
    return _unary(
        _SE, "UpdateSecretAccess", request, secret_pb2.UpdateSecretAccessResponse, lambda r: Secret.from_proto(r.secret)
    )


# Named resources and pools.


def put_resource(name: str, spec: ResourceArg, allowed_callers: Iterable[str] | None) -> Unary[Any, NamedResource]:
    """PutResource."""
    if not name:
        raise ValueError("resource name is empty")
    request = resource_pb2.PutResourceRequest(
        name=name, allowed_callers=_requests.strings(allowed_callers, "allowed_callers")
    )
    request.spec.CopyFrom(resource_spec(spec))
    return _unary(
        _RS, "PutResource", request, resource_pb2.PutResourceResponse, lambda r: NamedResource.from_proto(r.resource)
    )


def get_resource(name: str) -> Unary[Any, NamedResource]:
    """GetResource."""
    return _unary(
        _RS,
        "GetResource",
        resource_pb2.GetResourceRequest(name=name),
        resource_pb2.GetResourceResponse,
        lambda r: NamedResource.from_proto(r.resource),
    )


def list_resources(page_size: int, page_token: str) -> Unary[Any, Page[NamedResource]]:
    """ListResources."""
    return _unary(
        _RS,
        "ListResources",
        resource_pb2.ListResourcesRequest(page_size=page_size, page_token=page_token),
        resource_pb2.ListResourcesResponse,
        lambda r: Page([NamedResource.from_proto(x) for x in r.resources], r.next_page_token),
    )


def delete_resource(name: str) -> Unary[Any, None]:
    """DeleteResource."""
    return _unary(
        _RS, "DeleteResource", resource_pb2.DeleteResourceRequest(name=name), resource_pb2.DeleteResourceResponse, _none
    )


def list_pools(page_size: int, page_token: str) -> Unary[Any, Page[Pool]]:
    """ListPools."""
    return _unary(
        _RS,
        "ListPools",
        resource_pb2.ListPoolsRequest(page_size=page_size, page_token=page_token),
        resource_pb2.ListPoolsResponse,
        lambda r: Page([Pool.from_proto(p) for p in r.pools], r.next_page_token),
    )


def check_resource(target: str | ResourceArg) -> Unary[Any, CheckResult]:
    """CheckResource: a string names a named resource, anything else is a spec."""
    request = resource_pb2.CheckResourceRequest()
    if isinstance(target, str):
        if not target:
            raise ValueError("resource name is empty")
        request.name = target
    else:
        spec = resource_spec(target)
        if spec.ref and not spec.type:
            request.name = spec.ref
        else:
            request.spec.CopyFrom(spec)
    return _unary(_RS, "CheckResource", request, resource_pb2.CheckResourceResponse, CheckResult.from_proto)


# Access: API keys, role bindings, WhoAmI.


def create_api_key(
    name: str, roles: Iterable[str], expire_time: datetime.datetime | None
) -> Unary[Any, CreatedApiKey]:
    """CreateApiKey."""
    request = access_pb2.CreateApiKeyRequest(name=name, roles=_requests.strings(roles, "roles"))
    if expire_time is not None:
        request.expire_time.CopyFrom(to_timestamp(expire_time))
    return _unary(
        _AC,
        "CreateApiKey",
        request,
        access_pb2.CreateApiKeyResponse,
        lambda r: CreatedApiKey(ApiKey.from_proto(r.api_key), r.key),
    )


def list_api_keys(page_size: int, page_token: str) -> Unary[Any, Page[ApiKey]]:
    """ListApiKeys."""
    return _unary(
        _AC,
        "ListApiKeys",
        access_pb2.ListApiKeysRequest(page_size=page_size, page_token=page_token),
        access_pb2.ListApiKeysResponse,
        lambda r: Page([ApiKey.from_proto(k) for k in r.api_keys], r.next_page_token),
    )


def revoke_api_key(key_id: str) -> Unary[Any, None]:
    """RevokeApiKey."""
    return _unary(_AC, "RevokeApiKey", access_pb2.RevokeApiKeyRequest(id=key_id), access_pb2.RevokeApiKeyResponse, _none)


def create_role_binding(principal: str, roles: Iterable[str]) -> Unary[Any, RoleBinding]:
    """CreateRoleBinding."""
    return _unary(
        _AC,
        "CreateRoleBinding",
        access_pb2.CreateRoleBindingRequest(principal=principal, roles=_requests.strings(roles, "roles")),
        access_pb2.CreateRoleBindingResponse,
        lambda r: RoleBinding.from_proto(r.role_binding),
    )


def delete_role_binding(binding_id: str) -> Unary[Any, None]:
    """DeleteRoleBinding."""
    return _unary(
        _AC,
        "DeleteRoleBinding",
        access_pb2.DeleteRoleBindingRequest(id=binding_id),
        access_pb2.DeleteRoleBindingResponse,
        _none,
    )


def list_role_bindings(page_size: int, page_token: str) -> Unary[Any, Page[RoleBinding]]:
    """ListRoleBindings."""
    return _unary(
        _AC,
        "ListRoleBindings",
        access_pb2.ListRoleBindingsRequest(page_size=page_size, page_token=page_token),
        access_pb2.ListRoleBindingsResponse,
        lambda r: Page([RoleBinding.from_proto(b) for b in r.role_bindings], r.next_page_token),
    )


def whoami() -> Unary[Any, Identity]:
    """WhoAmI."""
    return _unary(_AC, "WhoAmI", access_pb2.WhoAmIRequest(), access_pb2.WhoAmIResponse, Identity.from_proto)


#: A list call builder: (page_size, page_token) -> the call of one page.
PageCall = Callable[[int, str], Unary[Any, Page[_T]]]

#: Bound on the pages one iteration fetches, so that a gateway that keeps
#: returning tokens cannot loop a client forever.
MAX_PAGES = 1 << 20


class PageWalk(Generic[_T]):
    """Follows next_page_token through every page of a list call; both
    clients drive it (the async one with ``await``)."""

    def __init__(self, call: PageCall[_T], page_size: int) -> None:
        if page_size < 0 or page_size > 1000:
            raise ValueError("page_size must be between 0 (the gateway's default) and 1000")
        self._call = call
        self._page_size = page_size
        self._token: str | None = ""
        self._pages = 0

    def next_call(self) -> Unary[Any, Page[_T]] | None:
        """Returns the call of the next page, or None after the last page."""
        if self._token is None:
            return None
        self._pages += 1
        if self._pages > MAX_PAGES:
            raise RuntimeError(f"more than {MAX_PAGES} pages")
        return self._call(self._page_size, self._token)

    def saw(self, page: Page[_T]) -> None:
        """Records a fetched page."""
        if page.next_page_token and page.next_page_token == self._token:
            raise RuntimeError("the gateway returned the same page token twice")
        self._token = page.next_page_token or None


def _none(_: Message) -> None:
    return None
