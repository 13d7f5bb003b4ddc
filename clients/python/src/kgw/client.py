"""The asyncio client (grpc.aio)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc

from kgw import _calls, _channel, resources
from kgw._requests import ResourceArg
from kgw._values import Seconds
from kgw.errors import from_rpc_error
from kgw.types import Execution, ExecutionEvent, Page, Secret, WorkflowInfo, WorkflowSummary
from kgw.v1 import workflow_pb2

__all__ = ["AsyncSecrets", "KailashClient"]

_T = TypeVar("_T")


class KailashClient:
    """Asynchronous client of a Kailash Gateway.

    Use it as an async context manager, which closes the channel on exit::

        async with KailashClient("127.0.0.1:50051") as client:
            response = await client.execute_workflow("hello-database", resources={...})
            print(response.result["query"]["message"])

    The channel opens on first use inside the running event loop and stays
    bound to it. A client is safe for concurrent use by tasks of that loop.
    Failed RPCs raise :class:`kgw.KailashError` subclasses; a workflow that
    fails is not an exception but an execution with ``status == "failed"``.

    Args:
        target: gateway address, ``host:port``.
        token: bearer token (API key or JWT) sent as ``authorization`` metadata.
        tls: None/False for plaintext, True for TLS with the system roots, or
            ``grpc.ChannelCredentials`` (e.g. for mTLS).
        options: extra gRPC channel options.
        metadata: extra metadata sent with every call.
    """

    # Resource helpers, also available as kgw.database(...) etc.
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
        self._credentials = _channel.credentials(tls)
        self._options = _channel.options(options)
        self._metadata = _channel.call_metadata(token, metadata)
        self._channel: grpc.aio.Channel | None = None
        self.secrets = AsyncSecrets(self)

    async def __aenter__(self) -> KailashClient:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled. The client can be reopened by using it again."""
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()

    async def wait_ready(self, timeout: Seconds | None = None) -> None:
        """Waits until the channel is connected (useful right after the gateway starts)."""
        channel = self._open()
        seconds = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else timeout
        try:
            await asyncio.wait_for(channel.channel_ready(), seconds)
        except asyncio.TimeoutError:
            raise TimeoutError(f"gateway at {self.target} not ready after {seconds} s") from None

    def _open(self) -> grpc.aio.Channel:
        if self._channel is None:
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self.target, options=self._options)
            else:
                self._channel = grpc.aio.secure_channel(self.target, self._credentials, options=self._options)
        return self._channel

    async def _call(self, call: _calls.Unary[Any, _T]) -> _T:
        multi = call.bind(self._open().unary_unary)
        try:
            response = await multi(call.request, metadata=self._metadata)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None
        return call.convert(response)

    async def _events(self, call: _calls.Stream) -> AsyncIterator[ExecutionEvent]:
        events = _calls.Events()
        while True:
            stream: Any = call.bind(self._open().unary_stream)(call.request, metadata=self._metadata)
            try:
                async for response in stream:
                    yield events.event(response)
                return
            except grpc.aio.AioRpcError as err:
                # The gateway dropped a stream that fell behind: resume after the last event seen.
                call = events.resume(from_rpc_error(err))
            finally:
                stream.cancel()

    # Workflows.

    async def register_workflow(self, name: str | None, workflow: workflow_pb2.Workflow) -> WorkflowInfo:
        """Registers a workflow (from ``AsyncWorkflowBuilder.build()``) under ``name``.

        Registering an existing name stores the next version. Raises
        :class:`kgw.InvalidWorkflow` with one violation per problem.
        """
        return await self._call(_calls.register_workflow(name, workflow))

    async def get_workflow(self, name: str, version: int = 0) -> WorkflowInfo:
        """Returns one version of a workflow (the latest for 0). Raises :class:`kgw.WorkflowNotFound`."""
        return await self._call(_calls.get_workflow(name, version))

    async def list_workflows(self, page_size: int = 0, page_token: str = "") -> Page[WorkflowSummary]:
        """Returns one page of workflow summaries, ordered by name."""
        return await self._call(_calls.list_workflows(page_size, page_token))

    async def delete_workflow(self, name: str) -> None:
        """Deletes a workflow and all its versions; running executions finish."""
        await self._call(_calls.delete_workflow(name))

    # Executions.

    async def execute_workflow(
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
        """Runs a workflow and waits for it to end.

        Args:
            name: the workflow.
            parameters: JSON-compatible values; each key becomes a variable of every node.
            resources: resource name → spec (``client.database(...)``, ``client.ref(...)``, or a dict).
            context: JSON-compatible values visible to nodes as ``context``.
            timeout: overrides the workflow's timeout (seconds or timedelta).
            idempotency_key: a repeated request with the same key returns the first execution.
            version: workflow version; 0 runs the latest.

        Returns the finished :class:`Execution`; check ``status`` and ``error``.
        """
        args = _calls.ExecutionArgs(name, parameters, resources, context, timeout, idempotency_key, version)
        return await self._call(_calls.execute_workflow(args))

    async def start_execution(
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
        """Starts a workflow and returns the execution id at once (see execute_workflow for the arguments)."""
        args = _calls.ExecutionArgs(name, parameters, resources, context, timeout, idempotency_key, version)
        return await self._call(_calls.start_execution(args))

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
    ) -> AsyncIterator[ExecutionEvent]:
        """Starts a workflow and yields its events, ending with the terminal event
        (``event.terminal``; ``event.execution`` is the final execution)::

            async for event in client.stream_workflow("etl", resources=...):
                print(event.seq, event.type, event.node_id)

        Leaving the loop early cancels the stream, not the execution.
        """
        args = _calls.ExecutionArgs(name, parameters, resources, context, timeout, idempotency_key, version)
        return self._events(_calls.stream_workflow(args))

    def watch_execution(self, execution_id: str, after_seq: int = 0) -> AsyncIterator[ExecutionEvent]:
        """Yields the events of an existing execution with seq greater than ``after_seq``,
        live until it ends. To resume after a broken stream, pass the last seq seen:
        nothing is missed and nothing is seen twice."""
        return self._events(_calls.watch_execution(execution_id, after_seq))

    async def get_execution(self, execution_id: str) -> Execution:
        """Returns an execution's current state. Raises :class:`kgw.ExecutionNotFound`."""
        return await self._call(_calls.get_execution(execution_id))

    async def list_executions(
        self,
        workflow: str | None = None,
        status: str | None = None,
        *,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[Execution]:
        """Returns one page of executions, newest first, optionally filtered by
        workflow and status (``"failed"``, ``"running"``, …)."""
        return await self._call(_calls.list_executions(workflow, status, page_size, page_token))

    async def cancel_execution(self, execution_id: str) -> Execution:
        """Cancels an execution and returns its state after cancellation."""
        return await self._call(_calls.cancel_execution(execution_id))


class AsyncSecrets:
    """Secret management (``client.secrets``). Values go in and never come back out."""

    def __init__(self, client: KailashClient) -> None:
        self._client = client

    async def store_secret(
        self,
        name: str,
        value: Mapping[str, Any],
        *,
        ttl: Seconds | None = None,
        expire_time: datetime.datetime | None = None,
        allowed_hosts: Iterable[str] | None = None,
        description: str = "",
    ) -> Secret:
        """Stores ``value`` (e.g. ``{"user": "app", "password": "…"}``) as the next version
        of secret ``name`` and returns its metadata.

        Args:
            ttl: expire after this long (seconds or timedelta).
            expire_time: expire at this time (instead of ttl).
            allowed_hosts: host patterns the credentials may be sent to; empty means any.
            description: human-readable description.
        """
        return await self._client._call(_calls.store_secret(name, value, ttl, expire_time, allowed_hosts, description))

    async def get_secret(self, name: str) -> Secret:
        """Returns the metadata of the latest version. Raises :class:`kgw.SecretNotFound`."""
        return await self._client._call(_calls.get_secret(name))

    async def list_secrets(self, page_size: int = 0, page_token: str = "") -> Page[Secret]:
        """Returns one page of secret metadata, ordered by name."""
        return await self._client._call(_calls.list_secrets(page_size, page_token))

    async def delete_secret(self, name: str) -> None:
        """Deletes every version of a secret."""
        await self._client._call(_calls.delete_secret(name))
