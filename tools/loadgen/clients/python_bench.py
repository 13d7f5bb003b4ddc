"""One scenario of the external benchmark through the Python client.

Usage: python_bench.py TARGET WORKFLOW DB CALLERS WARMUP WINDOW

Runs CALLERS concurrent tasks on one client (one channel) calling
execute_workflow(WORKFLOW) (with the named resource bench_db as "db" when
DB is 1) for WARMUP + WINDOW seconds. Prints "window-start" when the
warm-up ends, "window-end" at the deadline, then one JSON line with the
calls that started and ended inside the window and this process's CPU
seconds (all threads) between the two marks (see tools/loadgen).
"""

import asyncio
import json
import sys
import time

import kgw


async def main() -> None:
    target, workflow, db = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    callers, warmup, window = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    resources = {"db": kgw.KailashClient.ref("bench_db")} if db else None
    latencies: list[float] = []
    errors = 0
    first_error = ""
    cpu = 0.0  # this process's CPU seconds (all threads) in the window
    async with kgw.KailashClient(target) as client:
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
                    ex = await client.execute_workflow(workflow, resources=resources)
                    if ex.status != "completed":
                        failure = f"status {ex.status}: {ex.error}"
                except kgw.KailashError as e:
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


asyncio.run(main())
