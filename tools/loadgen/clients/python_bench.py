"""One scenario of the external benchmark through the Python client.

Usage: python_bench.py TARGET WORKFLOW DB CALLERS WARMUP WINDOW

Runs CALLERS concurrent tasks on one client (one channel) calling
execute_workflow(WORKFLOW) (with the named resource bench_db as "db" when
DB is 1) for WARMUP + WINDOW seconds. Prints "window-start" when the
warm-up ends, "window-end" at the deadline, then one JSON line with the
calls that started and ended inside the window and this process's CPU
seconds (all threads) between the two marks (see tools/loadgen).

With KGW_BENCH_BARE=1 in the environment the calls skip the client: a bare
grpc.aio multi-callable on one channel sends a request built once and
decodes the ExecuteWorkflowResponse, nothing more. That is the floor of
any asyncio client on grpcio (docs/performance.md, section Clients):
`KGW_BENCH_BARE=1 make bench-external` reports it in place of the client.
"""

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable

import grpc

import kgw
from kgw.v1 import execution_pb2, resource_pb2


async def main() -> None:
    target, workflow, db = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    callers, warmup, window = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    resources = {"db": kgw.KailashClient.ref("bench_db")} if db else None
    latencies: list[float] = []
    errors = 0
    first_error = ""
    cpu = 0.0  # this process's CPU seconds (all threads) in the window
    async with kgw.KailashClient(target) as client:
        call = execute(client, workflow, resources)
        if os.environ.get("KGW_BENCH_BARE") == "1":
            call = bare(client, workflow, db)
        start = time.perf_counter()
        begin, end = start + warmup, start + warmup + window

        async def caller() -> None:
            nonlocal errors, first_error
            while True:
                t0 = time.perf_counter()
                if t0 >= end:
                    return
                failure = ""
                try:
                    failure = await call()
                except (kgw.KailashError, grpc.aio.AioRpcError) as e:
                    failure = str(e)
                t1 = time.perf_counter()
                if t0 < begin or t1 > end:
                    continue
                if failure:
                    errors += 1
                    first_error = first_error or failure
                    continue
                latencies.append((t1 - t0) * 1e6)

        async def marks() -> None:
            nonlocal cpu
            await asyncio.sleep(max(begin - time.perf_counter(), 0))
            cpu = time.process_time()
            print("window-start", flush=True)
            await asyncio.sleep(max(end - time.perf_counter(), 0))
            cpu = time.process_time() - cpu
            print("window-end", flush=True)

        await asyncio.gather(marks(), *(caller() for _ in range(callers)))
    print(json.dumps({"calls": len(latencies), "errors": errors, "first_error": first_error,
                      "cpu_s": cpu, "latencies_us": latencies}), flush=True)


def execute(client: kgw.KailashClient, workflow: str, resources: dict | None) -> Callable[[], Awaitable[str]]:
    """One call through the client; returns "" or what went wrong."""

    async def call() -> str:
        ex = await client.execute_workflow(workflow, resources=resources)
        return "" if ex.status == "completed" else f"status {ex.status}: {ex.error}"

    return call


def bare(client: kgw.KailashClient, workflow: str, db: bool) -> Callable[[], Awaitable[str]]:
    """One call on a bare grpc.aio multi-callable of the client's channel
    (same target and options), with a request built once."""
    request = execution_pb2.ExecuteWorkflowRequest(workflow=workflow)
    if db:
        request.resources["db"].CopyFrom(resource_pb2.ResourceSpec(ref="bench_db"))
    method = client._open().unary_unary(
        "/kgw.v1.ExecutionService/ExecuteWorkflow",
        request_serializer=execution_pb2.ExecuteWorkflowRequest.SerializeToString,
        response_deserializer=execution_pb2.ExecuteWorkflowResponse.FromString,
    )
    completed = execution_pb2.EXECUTION_STATUS_COMPLETED

    async def call() -> str:
        response = await method(request)
        status = response.execution.status
        return "" if status == completed else f"status {status}"

    return call


asyncio.run(main())
