"""The synchronous (blocking) client.

Same methods as :class:`kgw.KailashClient`, without ``await``; streams are
plain iterators. Use it where there is no event loop (scripts, WSGI apps,
threads)::

    from kgw.sync import KailashClient

    with KailashClient("127.0.0.1:50051") as client:
        response = client.execute_workflow("hello-database", resources={...})
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from kgw import _channel, _requests, resources
from kgw._requests import ResourceArg
from kgw._values import Seconds
from kgw.errors import from_rpc_error
from kgw.types import Execution, ExecutionEvent, Page, Secret, WorkflowInfo, WorkflowSummary
from kgw.v1 import execution_pb2, secret_pb2, workflow_pb2

__all__ = ["KailashClient", "Secrets", "SyncKailashClient"]

_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)
_EventResp = TypeVar(
    "_EventResp", execution_pb2.StreamExecutionResponse, execution_pb2.WatchExecutionResponse
)

_WF = _requests.WORKFLOW_SERVICE
_EX = _requests.EXECUTION_SERVICE
_SE = _requests.SECRET_SERVICE


class SyncKailashClient:
    """Blocking client of a Kailash Gateway; see :class:`kgw.KailashClient` for the arguments.

    Safe for concurrent use by several threads. Use it as a context manager
    or call :meth:`close`.
    """

    database = staticmethod(resources.database)
    cache = staticmethod(resources.cache)
    http_client = staticmethod(resources.http_client)
    ref = staticmethod(resources.ref)

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        token: str | None = None,
        tls: _channel.TLSArg = None,
        options: Sequence[tuple[str, Any]] | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        self.target = target
        creds = _channel.credentials(tls)
        opts = _channel.options(options)
        if creds is None:
            self._channel = grpc.insecure_channel(target, options=opts)
        else:
            self._channel = grpc.secure_channel(target, creds, options=opts)
        self._metadata = _channel.call_metadata(token, metadata)
        self.secrets = Secrets(self)

    def __enter__(self) -> SyncKailashClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def wait_ready(self, timeout: Seconds | None = None) -> None:
        """Blocks until the channel is connected."""
        seconds = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else timeout
        try:
            grpc.channel_ready_future(self._channel).result(timeout=seconds)
        except grpc.FutureTimeoutError:
            raise TimeoutError(f"gateway at {self.target} not ready after {seconds} s") from None

    def _unary(self, path: str, request: _Req, response_type: type[_Resp]) -> _Resp:
        call = self._channel.unary_unary(
            path,
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
        )
        try:
            return call(request, metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def _events(self, path: str, request: _Req, response_type: type[_EventResp]) -> Iterator[ExecutionEvent]:
        multi = self._channel.unary_stream(
            path,
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
        )
        call: Any = multi(request, metadata=self._metadata)
        tracker = _requests.ResumeTracker()
        try:
            while True:
                try:
                    for response in call:
                        event = ExecutionEvent.from_proto(response.event)
                        tracker.saw(event.execution_id, event.seq)
                        yield event
                    return
                except grpc.RpcError as err:
                    error = from_rpc_error(err)
                    resume = tracker.resume_point(error)
                    if resume is None:
                        raise error from None
                # The gateway dropped a stream that fell behind: resume after the last event seen.
                call.cancel()
                watch = self._channel.unary_stream(
                    _requests.method_path(_EX, "WatchExecution"),
                    request_serializer=execution_pb2.WatchExecutionRequest.SerializeToString,
                    response_deserializer=execution_pb2.WatchExecutionResponse.FromString,
                )
                call = watch(
                    execution_pb2.WatchExecutionRequest(execution_id=resume[0], after_seq=resume[1]),
                    metadata=self._metadata,
                )
        finally:
            call.cancel()

    def register_workflow(self, name: str | None, workflow: workflow_pb2.Workflow) -> WorkflowInfo:
        """Registers a workflow; see :meth:`kgw.KailashClient.register_workflow`."""
        request = _requests.register_request(name, workflow)
        response = self._unary(
            _requests.method_path(_WF, "RegisterWorkflow"), request, workflow_pb2.RegisterWorkflowResponse
        )
        return WorkflowInfo.from_proto(response.workflow)

    def get_workflow(self, name: str, version: int = 0) -> WorkflowInfo:
        """Returns one version of a workflow (the latest for 0)."""
        request = workflow_pb2.GetWorkflowRequest(name=name, version=version)
        response = self._unary(_requests.method_path(_WF, "GetWorkflow"), request, workflow_pb2.GetWorkflowResponse)
        return WorkflowInfo.from_proto(response.workflow)

    def list_workflows(self, page_size: int = 0, page_token: str = "") -> Page[WorkflowSummary]:
        """Returns one page of workflow summaries, ordered by name."""
        request = workflow_pb2.ListWorkflowsRequest(page_size=page_size, page_token=page_token)
        response = self._unary(
            _requests.method_path(_WF, "ListWorkflows"), request, workflow_pb2.ListWorkflowsResponse
        )
        return Page([WorkflowSummary.from_proto(w) for w in response.workflows], response.next_page_token)

    def delete_workflow(self, name: str) -> None:
        """Deletes a workflow and all its versions."""
        request = workflow_pb2.DeleteWorkflowRequest(name=name)
        self._unary(_requests.method_path(_WF, "DeleteWorkflow"), request, workflow_pb2.DeleteWorkflowResponse)

    def execute_workflow(
        self,
        name: str,
        parameters: Mapping[str, Any] | None = None,
        resources: Mapping[str, ResourceArg] | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        timeout: Seconds | None = None,
        idempotency_key: str | None = None,
        version: int = 0,
    ) -> Execution:
        """Runs a workflow and waits for it to end; see :meth:`kgw.KailashClient.execute_workflow`."""
        request = _requests.execution_request(
            execution_pb2.ExecuteWorkflowRequest(),
            name,
            parameters=parameters,
            resources=resources,
            context=context,
            timeout=timeout,
            idempotency_key=idempotency_key,
            version=version,
        )
        response = self._unary(
            _requests.method_path(_EX, "ExecuteWorkflow"), request, execution_pb2.ExecuteWorkflowResponse
        )
        return Execution.from_proto(response.execution)

    def start_execution(
        self,
        name: str,
        parameters: Mapping[str, Any] | None = None,
        resources: Mapping[str, ResourceArg] | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        timeout: Seconds | None = None,
        idempotency_key: str | None = None,
        version: int = 0,
    ) -> str:
        """Starts a workflow and returns the execution id at once."""
        request = _requests.execution_request(
            execution_pb2.StartExecutionRequest(),
            name,
            parameters=parameters,
            resources=resources,
            context=context,
            timeout=timeout,
            idempotency_key=idempotency_key,
            version=version,
        )
        response = self._unary(
            _requests.method_path(_EX, "StartExecution"), request, execution_pb2.StartExecutionResponse
        )
        return response.execution_id

    def stream_workflow(
        self,
        name: str,
        parameters: Mapping[str, Any] | None = None,
        resources: Mapping[str, ResourceArg] | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        timeout: Seconds | None = None,
        idempotency_key: str | None = None,
        version: int = 0,
    ) -> Iterator[ExecutionEvent]:
        """Starts a workflow and yields its events up to the terminal one."""
        request = _requests.execution_request(
            execution_pb2.StreamExecutionRequest(),
            name,
            parameters=parameters,
            resources=resources,
            context=context,
            timeout=timeout,
            idempotency_key=idempotency_key,
            version=version,
        )
        return self._events(
            _requests.method_path(_EX, "StreamExecution"), request, execution_pb2.StreamExecutionResponse
        )

    def watch_execution(self, execution_id: str, after_seq: int = 0) -> Iterator[ExecutionEvent]:
        """Yields the events of an existing execution after ``after_seq``, live until it ends."""
        request = execution_pb2.WatchExecutionRequest(execution_id=execution_id, after_seq=after_seq)
        return self._events(
            _requests.method_path(_EX, "WatchExecution"), request, execution_pb2.WatchExecutionResponse
        )

    def get_execution(self, execution_id: str) -> Execution:
        """Returns an execution's current state."""
        request = execution_pb2.GetExecutionRequest(execution_id=execution_id)
        response = self._unary(
            _requests.method_path(_EX, "GetExecution"), request, execution_pb2.GetExecutionResponse
        )
        return Execution.from_proto(response.execution)

    def list_executions(
        self,
        workflow: str | None = None,
        status: str | None = None,
        *,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[Execution]:
        """Returns one page of executions, newest first."""
        request = _requests.list_executions_request(workflow, status, page_size, page_token)
        response = self._unary(
            _requests.method_path(_EX, "ListExecutions"), request, execution_pb2.ListExecutionsResponse
        )
        return Page([Execution.from_proto(e) for e in response.executions], response.next_page_token)

    def cancel_execution(self, execution_id: str) -> Execution:
        """Cancels an execution and returns its state after cancellation."""
        request = execution_pb2.CancelExecutionRequest(execution_id=execution_id)
        response = self._unary(
            _requests.method_path(_EX, "CancelExecution"), request, execution_pb2.CancelExecutionResponse
        )
        return Execution.from_proto(response.execution)


class Secrets:
    """Secret management of the sync client (``client.secrets``)."""

    def __init__(self, client: SyncKailashClient) -> None:
        self._client = client

    def store_secret(
        self,
        name: str,
        value: Mapping[str, Any],
        *,
        ttl: Seconds | None = None,
        expire_time: datetime.datetime | None = None,
        allowed_hosts: Iterable[str] | None = None,
        description: str = "",
    ) -> Secret:
        """Stores ``value`` as the next version of secret ``name`` and returns its metadata."""
        request = _requests.store_secret_request(
            name, value, ttl=ttl, expire_time=expire_time, allowed_hosts=allowed_hosts, description=description
        )
        response = self._client._unary(
            _requests.method_path(_SE, "StoreSecret"), request, secret_pb2.StoreSecretResponse
        )
        return Secret.from_proto(response.secret)

    def get_secret(self, name: str) -> Secret:
        """Returns the metadata of the latest version."""
        request = secret_pb2.GetSecretRequest(name=name)
        response = self._client._unary(_requests.method_path(_SE, "GetSecret"), request, secret_pb2.GetSecretResponse)
        return Secret.from_proto(response.secret)

    def list_secrets(self, page_size: int = 0, page_token: str = "") -> Page[Secret]:
        """Returns one page of secret metadata, ordered by name."""
        request = secret_pb2.ListSecretsRequest(page_size=page_size, page_token=page_token)
        response = self._client._unary(
            _requests.method_path(_SE, "ListSecrets"), request, secret_pb2.ListSecretsResponse
        )
        return Page([Secret.from_proto(s) for s in response.secrets], response.next_page_token)

    def delete_secret(self, name: str) -> None:
        """Deletes every version of a secret."""
        request = secret_pb2.DeleteSecretRequest(name=name)
        self._client._unary(_requests.method_path(_SE, "DeleteSecret"), request, secret_pb2.DeleteSecretResponse)


#: ``kgw.sync.KailashClient`` is the blocking client under the SDK's name.
KailashClient = SyncKailashClient
