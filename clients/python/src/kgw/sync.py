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

from kgw import _calls, _channel, resources
from kgw.client import _expiry
from kgw._requests import ResourceArg, WorkflowRequest
from kgw._values import Seconds
from kgw.errors import from_rpc_error, unreachable_hint
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
from kgw.v1 import workflow_pb2

__all__ = ["Access", "KailashClient", "Secrets", "SyncKailashClient"]

_T = TypeVar("_T")


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
        address, tls = _channel.resolve_target(target, tls)
        creds = _channel.credentials(tls)
        opts = _channel.options([*_channel.tls_options(tls), *(options or ())])
        if creds is None:
            self._channel = grpc.insecure_channel(address, options=opts)
        else:
            self._channel = grpc.secure_channel(address, creds, options=opts)
        self._metadata = _channel.call_metadata(token, metadata)
        # The unary multi-callables by method path, made once per method.
        self._unary: dict[str, Any] = {}
        self.secrets = Secrets(self)
        self.access = Access(self)

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

    def _call(self, call: _calls.Unary[Any, _T]) -> _T:
        multi = self._unary.get(call.path)
        if multi is None:
            multi = self._unary[call.path] = call.bind(self._channel.unary_unary)
        try:
            response = multi(call.request, metadata=self._metadata)
        except grpc.RpcError as err:
            raise unreachable_hint(from_rpc_error(err), self.target) from None
        return call.convert(response)

    def _walk(self, call: _calls.PageCall[_T], page_size: int) -> Iterator[_T]:
        walk = _calls.PageWalk(call, page_size)
        while (next_call := walk.next_call()) is not None:
            page = self._call(next_call)
            walk.saw(page)
            yield from page.items

    def _events(self, call: _calls.Stream) -> Iterator[ExecutionEvent]:
        events = _calls.Events()
        while True:
            stream: Any = call.bind(self._channel.unary_stream)(call.request, metadata=self._metadata)
            try:
                for response in stream:
                    yield events.event(response)
                return
            except grpc.RpcError as err:
                # The gateway dropped a stream that fell behind: resume after the last event seen.
                call = events.resume(unreachable_hint(from_rpc_error(err), self.target))
            finally:
                stream.cancel()

    def register_workflow(self, name: str | None, workflow: workflow_pb2.Workflow) -> WorkflowInfo:
        """Registers a workflow; see :meth:`kgw.KailashClient.register_workflow`."""
        return self._call(_calls.register_workflow(name, workflow))

    def validate_workflow(self, name: str | None, workflow: workflow_pb2.Workflow) -> WorkflowInfo:
        """Checks a workflow as register_workflow would, without storing it."""
        return self._call(_calls.validate_workflow(name, workflow))

    def get_workflow(self, name: str, version: int = 0) -> WorkflowInfo:
        """Returns one version of a workflow (the latest for 0)."""
        return self._call(_calls.get_workflow(name, version))

    def list_workflows(self, page_size: int = 0, page_token: str = "") -> Page[WorkflowSummary]:
        """Returns one page of workflow summaries, ordered by name."""
        return self._call(_calls.list_workflows(page_size, page_token))

    def iter_workflows(self, *, page_size: int = 0) -> Iterator[WorkflowSummary]:
        """Yields every workflow summary, ordered by name, across pages."""
        return self._walk(_calls.list_workflows, page_size)

    def delete_workflow(self, name: str) -> None:
        """Deletes a workflow and all its versions."""
        self._call(_calls.delete_workflow(name))

    def execute_workflow(
        self,
        name: str,
        parameters: Mapping[str, Any] | WorkflowRequest | None = None,
        resources: Mapping[str, ResourceArg] | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        timeout: Seconds | None = None,
        idempotency_key: str | None = None,
        version: int = 0,
    ) -> Execution:
        """Runs a workflow and waits for it to end; see :meth:`kgw.KailashClient.execute_workflow`."""
        args = _calls.execution_args(name, parameters, resources, context, timeout, idempotency_key, version)
        return self._call(_calls.execute_workflow(args))

    def start_execution(
        self,
        name: str,
        parameters: Mapping[str, Any] | WorkflowRequest | None = None,
        resources: Mapping[str, ResourceArg] | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        timeout: Seconds | None = None,
        idempotency_key: str | None = None,
        version: int = 0,
    ) -> str:
        """Starts a workflow and returns the execution id at once."""
        args = _calls.execution_args(name, parameters, resources, context, timeout, idempotency_key, version)
        return self._call(_calls.start_execution(args))

    def stream_workflow(
        self,
        name: str,
        parameters: Mapping[str, Any] | WorkflowRequest | None = None,
        resources: Mapping[str, ResourceArg] | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        timeout: Seconds | None = None,
        idempotency_key: str | None = None,
        version: int = 0,
    ) -> Iterator[ExecutionEvent]:
        """Starts a workflow and yields its events up to the terminal one."""
        args = _calls.execution_args(name, parameters, resources, context, timeout, idempotency_key, version)
        return self._events(_calls.stream_workflow(args))

    def watch_execution(self, execution_id: str, after_seq: int = 0) -> Iterator[ExecutionEvent]:
        """Yields the events of an existing execution after ``after_seq``, live until it ends."""
        return self._events(_calls.watch_execution(execution_id, after_seq))

    def get_execution(self, execution_id: str) -> Execution:
        """Returns an execution's current state."""
        return self._call(_calls.get_execution(execution_id))

    def list_executions(
        self,
        workflow: str | None = None,
        status: str | None = None,
        *,
        page_size: int = 0,
        page_token: str = "",
        caller: str | None = None,
    ) -> Page[Execution]:
        """Returns one page of executions, newest first."""
        return self._call(_calls.list_executions(workflow, status, page_size, page_token, caller))

    def iter_executions(
        self,
        workflow: str | None = None,
        status: str | None = None,
        *,
        caller: str | None = None,
        page_size: int = 0,
    ) -> Iterator[Execution]:
        """Yields every execution selected by the filters, newest first, across pages."""
        return self._walk(lambda size, token: _calls.list_executions(workflow, status, size, token, caller), page_size)

    def cancel_execution(self, execution_id: str) -> Execution:
        """Cancels an execution and returns its state after cancellation."""
        return self._call(_calls.cancel_execution(execution_id))


    def put_resource(
        self, name: str, spec: ResourceArg, *, allowed_callers: Iterable[str] | None = None
    ) -> NamedResource:
        """Creates or replaces a named resource; see :meth:`kgw.KailashClient.put_resource`."""
        return self._call(_calls.put_resource(name, spec, allowed_callers))

    def get_resource(self, name: str) -> NamedResource:
        """Returns a named resource."""
        return self._call(_calls.get_resource(name))

    def list_resources(self, page_size: int = 0, page_token: str = "") -> Page[NamedResource]:
        """Returns one page of named resources, ordered by name."""
        return self._call(_calls.list_resources(page_size, page_token))

    def iter_resources(self, *, page_size: int = 0) -> Iterator[NamedResource]:
        """Yields every named resource, across pages."""
        return self._walk(_calls.list_resources, page_size)

    def delete_resource(self, name: str) -> None:
        """Deletes a named resource; its pools drain and close."""
        self._call(_calls.delete_resource(name))

    def list_pools(self, page_size: int = 0, page_token: str = "") -> Page[Pool]:
        """Returns one page of the live connection pools."""
        return self._call(_calls.list_pools(page_size, page_token))

    def iter_pools(self, *, page_size: int = 0) -> Iterator[Pool]:
        """Yields every live connection pool, across pages."""
        return self._walk(_calls.list_pools, page_size)

    def check_resource(self, target: str | ResourceArg) -> CheckResult:
        """Reports whether a named resource (by name) or a spec is healthy."""
        return self._call(_calls.check_resource(target))


class Access:
    """API keys, role bindings and the caller's identity of the sync client (``client.access``)."""

    def __init__(self, client: SyncKailashClient) -> None:
        self._client = client

    def create_api_key(
        self,
        name: str,
        roles: Iterable[str],
        *,
        expire_time: datetime.datetime | None = None,
        ttl: Seconds | None = None,
    ) -> CreatedApiKey:
        """Creates an API key; the result's ``key`` is the only copy."""
        return self._client._call(_calls.create_api_key(name, roles, _expiry(expire_time, ttl)))

    def list_api_keys(self, page_size: int = 0, page_token: str = "") -> Page[ApiKey]:
        """Returns one page of API keys that are not revoked."""
        return self._client._call(_calls.list_api_keys(page_size, page_token))

    def iter_api_keys(self, *, page_size: int = 0) -> Iterator[ApiKey]:
        """Yields every API key that is not revoked, across pages."""
        return self._client._walk(_calls.list_api_keys, page_size)

    def revoke_api_key(self, key_id: str) -> None:
        """Revokes an API key."""
        self._client._call(_calls.revoke_api_key(key_id))

    def create_role_binding(self, principal: str, roles: Iterable[str]) -> RoleBinding:
        """Gives roles to a principal or principal pattern."""
        return self._client._call(_calls.create_role_binding(principal, roles))

    def delete_role_binding(self, binding_id: str) -> None:
        """Deletes a role binding."""
        self._client._call(_calls.delete_role_binding(binding_id))

    def list_role_bindings(self, page_size: int = 0, page_token: str = "") -> Page[RoleBinding]:
        """Returns one page of role bindings."""
        return self._client._call(_calls.list_role_bindings(page_size, page_token))

    def iter_role_bindings(self, *, page_size: int = 0) -> Iterator[RoleBinding]:
        """Yields every role binding, across pages."""
        return self._client._walk(_calls.list_role_bindings, page_size)

    def whoami(self) -> Identity:
        """Returns the caller's principal, roles and authentication method."""
        return self._client._call(_calls.whoami())


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
        allowed_callers: Iterable[str] | None = None,
        encrypt: bool | None = None,
    ) -> Secret:
        """Stores ``value`` as the next version of secret ``name`` and returns its metadata;
        see :meth:`kgw.AsyncSecrets.store_secret`."""
        _calls.check_encrypt(encrypt)
        return self._client._call(
            _calls.store_secret(name, value, ttl, expire_time, allowed_hosts, description, allowed_callers)
        )

    def update_secret_access(self, name: str, allowed_callers: Iterable[str]) -> Secret:
        """Replaces the callers allowed to use a secret, without a new value or version."""
        return self._client._call(_calls.update_secret_access(name, allowed_callers))

    def iter_secrets(self, *, page_size: int = 0) -> Iterator[Secret]:
        """Yields the metadata of every secret, across pages."""
        return self._client._walk(_calls.list_secrets, page_size)

    def get_secret(self, name: str) -> Secret:
        """Returns the metadata of the latest version."""
        return self._client._call(_calls.get_secret(name))

    def list_secrets(self, page_size: int = 0, page_token: str = "") -> Page[Secret]:
        """Returns one page of secret metadata, ordered by name."""
        return self._client._call(_calls.list_secrets(page_size, page_token))

    def delete_secret(self, name: str) -> None:
        """Deletes every version of a secret."""
        self._client._call(_calls.delete_secret(name))


#: ``kgw.sync.KailashClient`` is the blocking client under the SDK's name.
KailashClient = SyncKailashClient
