"""The clients over a real gRPC connection.

A small in-process gRPC server answers with canned messages so that these
tests can check what crosses the wire (metadata, status details, stream
ending and cancellation) without the gateway; tests/e2e runs the clients
against a real `kgw serve`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence

import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2
import grpc
import pytest
from google.protobuf import struct_pb2

import kgw
from kgw.v1 import execution_pb2, secret_pb2, workflow_pb2



def _status_details(code: grpc.StatusCode, message: str, reason: str, violations: Sequence[tuple[str, str]] = ()) -> bytes:
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain="kgw"))
    if violations:
        bad = error_details_pb2.BadRequest()
        for field, description in violations:
            bad.field_violations.add(field=field, description=description)
        status.details.add().Pack(bad)
    return status.SerializeToString()


def _completed(execution_id: str, message: str) -> execution_pb2.Execution:
    ex = execution_pb2.Execution(id=execution_id, workflow="hello", version=1, status=execution_pb2.EXECUTION_STATUS_COMPLETED)
    result = struct_pb2.Struct()
    result.update({"message": message})
    ex.result["query"].CopyFrom(result)
    return ex


class _Gateway:
    """Canned answers; records the metadata and requests it saw."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []
        self.requests: list[object] = []
        self.stream_cancelled = asyncio.Event()

    def _record(self, request: object, context: grpc.aio.ServicerContext[object, object]) -> None:
        self.requests.append(request)
        self.metadata.append({k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)})

    async def execute(
        self, request: execution_pb2.ExecuteWorkflowRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> execution_pb2.ExecuteWorkflowResponse:
        self._record(request, context)
        if request.workflow != "hello":
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"workflow {request.workflow!r} not found",
                trailing_metadata=(
                    ("grpc-status-details-bin", _status_details(grpc.StatusCode.NOT_FOUND, "nf", "WORKFLOW_NOT_FOUND")),
                ),
            )
        return execution_pb2.ExecuteWorkflowResponse(execution=_completed("ex-1", "Hello from kgw"))

    async def register(
        self, request: workflow_pb2.RegisterWorkflowRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> workflow_pb2.RegisterWorkflowResponse:
        self._record(request, context)
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid workflow",
            trailing_metadata=(
                (
                    "grpc-status-details-bin",
                    _status_details(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "invalid workflow",
                        "INVALID_WORKFLOW",
                        [("nodes[a].code", "1:1: undefined: y")],
                    ),
                ),
            ),
        )
        raise AssertionError("abort returned")

    async def store_secret(
        self, request: secret_pb2.StoreSecretRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> secret_pb2.StoreSecretResponse:
        self._record(request, context)
        keys = sorted(request.value.fields)
        return secret_pb2.StoreSecretResponse(secret=secret_pb2.Secret(name=request.name, version=1, keys=keys))

    async def stream(
        self, request: execution_pb2.StreamExecutionRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[execution_pb2.StreamExecutionResponse]:
        self._record(request, context)
        first = execution_pb2.ExecutionEvent(execution_id="ex-2", seq=1)
        first.execution_started.workflow = request.workflow
        yield execution_pb2.StreamExecutionResponse(event=first)
        node = execution_pb2.ExecutionEvent(execution_id="ex-2", seq=2)
        node.node_completed.node_id = "query"
        node.node_completed.result.update({"message": "streamed"})
        yield execution_pb2.StreamExecutionResponse(event=node)
        if request.workflow == "lagging":
            info = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message="behind")
            info.details.add().Pack(
                error_details_pb2.ErrorInfo(
                    reason="WATCH_LAGGING", domain="kgw", metadata={"execution_id": "ex-2", "resume_after_seq": "2"}
                )
            )
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "behind",
                trailing_metadata=(("grpc-status-details-bin", info.SerializeToString()),),
            )
        if request.workflow == "endless":
            try:
                await asyncio.Event().wait()
            finally:
                self.stream_cancelled.set()
        last = execution_pb2.ExecutionEvent(execution_id="ex-2", seq=3)
        last.execution_completed.execution.CopyFrom(_completed("ex-2", "streamed"))
        yield execution_pb2.StreamExecutionResponse(event=last)

    async def watch(
        self, request: execution_pb2.WatchExecutionRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[execution_pb2.WatchExecutionResponse]:
        self._record(request, context)
        if request.execution_id == "ex-2" and request.after_seq == 2:
            last = execution_pb2.ExecutionEvent(execution_id="ex-2", seq=3)
            last.execution_completed.execution.CopyFrom(_completed("ex-2", "streamed"))
            yield execution_pb2.WatchExecutionResponse(event=last)
            return
        await context.abort(
            grpc.StatusCode.NOT_FOUND,
            "execution not found",
            trailing_metadata=(
                ("grpc-status-details-bin", _status_details(grpc.StatusCode.NOT_FOUND, "nf", "EXECUTION_NOT_FOUND")),
            ),
        )
        yield execution_pb2.WatchExecutionResponse()  # unreachable; makes this an async generator


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[_Gateway, str]]:
    gw = _Gateway()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "kgw.v1.ExecutionService",
                {
                    "ExecuteWorkflow": grpc.unary_unary_rpc_method_handler(
                        gw.execute,
                        request_deserializer=execution_pb2.ExecuteWorkflowRequest.FromString,
                        response_serializer=execution_pb2.ExecuteWorkflowResponse.SerializeToString,
                    ),
                    "StreamExecution": grpc.unary_stream_rpc_method_handler(
                        gw.stream,
                        request_deserializer=execution_pb2.StreamExecutionRequest.FromString,
                        response_serializer=execution_pb2.StreamExecutionResponse.SerializeToString,
                    ),
                    "WatchExecution": grpc.unary_stream_rpc_method_handler(
                        gw.watch,
                        request_deserializer=execution_pb2.WatchExecutionRequest.FromString,
                        response_serializer=execution_pb2.WatchExecutionResponse.SerializeToString,
                    ),
                },
            ),
            grpc.method_handlers_generic_handler(
                "kgw.v1.WorkflowService",
                {
                    "RegisterWorkflow": grpc.unary_unary_rpc_method_handler(
                        gw.register,
                        request_deserializer=workflow_pb2.RegisterWorkflowRequest.FromString,
                        response_serializer=workflow_pb2.RegisterWorkflowResponse.SerializeToString,
                    ),
                },
            ),
            grpc.method_handlers_generic_handler(
                "kgw.v1.SecretService",
                {
                    "StoreSecret": grpc.unary_unary_rpc_method_handler(
                        gw.store_secret,
                        request_deserializer=secret_pb2.StoreSecretRequest.FromString,
                        response_serializer=secret_pb2.StoreSecretResponse.SerializeToString,
                    ),
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield gw, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_execute_sends_token_and_returns_plain_result(gateway: tuple[_Gateway, str]) -> None:
    gw, target = gateway
    async with kgw.KailashClient(target, token="tok-123", metadata=[("x-team", "core")]) as client:
        response = await client.execute_workflow(
            "hello", parameters={"n": 1}, resources={"db": client.database(database="app", credentials_ref="pg")}
        )
    assert response.status == "completed"
    assert response.result["query"]["message"] == "Hello from kgw"
    assert gw.metadata[0]["authorization"] == "Bearer tok-123"
    assert gw.metadata[0]["x-team"] == "core"
    sent = gw.requests[0]
    assert isinstance(sent, execution_pb2.ExecuteWorkflowRequest)
    assert sent.resources["db"].credentials_ref == "pg"


async def test_not_found_is_typed(gateway: tuple[_Gateway, str]) -> None:
    _, target = gateway
    async with kgw.KailashClient(target) as client:
        with pytest.raises(kgw.WorkflowNotFound) as info:
            await client.execute_workflow("nope")
    assert info.value.code is grpc.StatusCode.NOT_FOUND
    assert info.value.reason == "WORKFLOW_NOT_FOUND"
    assert "nope" in info.value.message


async def test_invalid_workflow_carries_violations(gateway: tuple[_Gateway, str]) -> None:
    _, target = gateway
    wf = kgw.AsyncWorkflowBuilder("w").add_async_code("a", "result = {'x': y}").build()
    async with kgw.KailashClient(target) as client:
        with pytest.raises(kgw.InvalidWorkflow) as info:
            await client.register_workflow("w", wf)
    assert info.value.violations == [("nodes[a].code", "1:1: undefined: y")]


async def test_stream_yields_events_to_the_terminal_one(gateway: tuple[_Gateway, str]) -> None:
    _, target = gateway
    async with kgw.KailashClient(target) as client:
        events = [e async for e in client.stream_workflow("hello")]
    assert [(e.seq, e.type) for e in events] == [
        (1, "execution_started"),
        (2, "node_completed"),
        (3, "execution_completed"),
    ]
    assert events[1].result == {"message": "streamed"}
    assert events[-1].terminal
    assert events[-1].execution is not None
    assert events[-1].execution.result["query"]["message"] == "streamed"


async def test_lagging_stream_resumes_with_watch(gateway: tuple[_Gateway, str]) -> None:
    gw, target = gateway
    async with kgw.KailashClient(target) as client:
        events = [e async for e in client.stream_workflow("lagging")]
    assert [(e.seq, e.type) for e in events] == [
        (1, "execution_started"),
        (2, "node_completed"),
        (3, "execution_completed"),
    ]
    resumed = gw.requests[-1]
    assert isinstance(resumed, execution_pb2.WatchExecutionRequest)
    assert (resumed.execution_id, resumed.after_seq) == ("ex-2", 2)


async def test_leaving_a_stream_early_cancels_the_call(gateway: tuple[_Gateway, str]) -> None:
    gw, target = gateway
    async with kgw.KailashClient(target) as client:
        stream = client.stream_workflow("endless")
        seen = []
        async for event in stream:
            seen.append(event.seq)
            if event.seq == 2:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.wait_for(gw.stream_cancelled.wait(), 30)
    assert seen == [1, 2]


async def test_stream_errors_are_typed(gateway: tuple[_Gateway, str]) -> None:
    _, target = gateway
    async with kgw.KailashClient(target) as client:
        with pytest.raises(kgw.ExecutionNotFound):
            async for _ in client.watch_execution("missing"):
                pass


async def test_secret_value_goes_in_metadata_comes_out(gateway: tuple[_Gateway, str]) -> None:
    _, target = gateway
    async with kgw.KailashClient(target) as client:
        secret = await client.secrets.store_secret("pg", {"user": "app", "password": "pw"}, ttl=60)
    assert (secret.name, secret.version, secret.keys) == ("pg", 1, ["password", "user"])


async def test_unreachable_gateway_is_unavailable() -> None:
    async with kgw.KailashClient("127.0.0.1:1") as client:
        with pytest.raises(kgw.Unavailable):
            await client.get_execution("x")


def _sync_calls(target: str) -> tuple[kgw.Execution, list[kgw.ExecutionEvent], kgw.KailashError]:
    with kgw.SyncKailashClient(target, token="t") as client:
        response = client.execute_workflow("hello")
        events: Iterator[kgw.ExecutionEvent] = client.stream_workflow("hello")
        listed = list(events)
        resumed = [e.seq for e in client.stream_workflow("lagging")]
        assert resumed == [1, 2, 3]
        try:
            client.execute_workflow("nope")
        except kgw.KailashError as err:
            return response, listed, err
    raise AssertionError("execute_workflow('nope') did not raise")


async def test_sync_client(gateway: tuple[_Gateway, str]) -> None:
    gw, target = gateway
    response, events, err = await asyncio.to_thread(_sync_calls, target)
    assert response.result["query"]["message"] == "Hello from kgw"
    assert [e.type for e in events] == ["execution_started", "node_completed", "execution_completed"]
    assert isinstance(err, kgw.WorkflowNotFound)
    assert gw.metadata[0]["authorization"] == "Bearer t"
