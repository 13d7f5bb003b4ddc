// One scenario of the external benchmark through the TypeScript client.
//
// Usage: KGW_TS_CLIENT=<clients/ts> node ts_bench.mjs TARGET WORKFLOW DB CALLERS WARMUP WINDOW
//
// Runs CALLERS concurrent callers on one client (one HTTP/2 session)
// calling executeWorkflow(WORKFLOW) (with the named resource bench_db as
// "db" when DB is 1) for WARMUP + WINDOW seconds. Prints "window-start"
// when the warm-up ends, "window-end" at the deadline, then one JSON line
// with the calls that started and ended inside the window and this
// process's CPU seconds between the two marks (see tools/loadgen). The client must be built (npm run build).
//
// With KGW_BENCH_BARE=1 in the environment the calls skip the client: one
// node:http2 session, a gRPC frame encoded once, one stream per call whose
// response message is decoded with protobuf-es, nothing more. That is the
// floor of any Node.js client on node:http2 (docs/performance.md, section
// Clients): `KGW_BENCH_BARE=1 make bench-external` reports it in place of
// the client.
import { connect } from "node:http2";
import { performance } from "node:perf_hooks";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [target, workflow, db, callersArg, warmupArg, windowArg] = process.argv.slice(2);
const dir = process.env.KGW_TS_CLIENT;
if (!dir) {
  throw new Error("KGW_TS_CLIENT must name the clients/ts directory");
}
const { KailashClient } = await import(pathToFileURL(join(dir, "dist", "src", "index.js")).href);

const client = new KailashClient(target);
const resources = db === "1" ? { db: client.ref("bench_db") } : undefined;
let call = async () => {
  const ex = await client.executeWorkflow(workflow, { resources });
  return ex.status === "completed" ? "" : `status ${ex.status}: ${JSON.stringify(ex.error)}`;
};
let session;
if (process.env.KGW_BENCH_BARE === "1") {
  const gen = (path) => import(pathToFileURL(join(dir, path)).href);
  const { create, fromBinary, toBinary } = await gen("node_modules/@bufbuild/protobuf/dist/esm/index.js");
  const pb = await gen("gen/kgw/v1/execution_pb.js");
  const body = toBinary(
    pb.ExecuteWorkflowRequestSchema,
    create(pb.ExecuteWorkflowRequestSchema, { workflow, resources: db === "1" ? { db: { ref: "bench_db" } } : {} }),
  );
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  const headers = {
    ":method": "POST",
    ":path": "/kgw.v1.ExecutionService/ExecuteWorkflow",
    "content-type": "application/grpc+proto",
    te: "trailers",
  };
  session = connect(`http://${target}`);
  call = () =>
    new Promise((resolve, reject) => {
      const stream = session.request(headers);
      const chunks = [];
      let status = "";
      stream.on("data", (chunk) => chunks.push(chunk));
      stream.on("trailers", (t) => {
        status = t["grpc-status"];
      });
      stream.on("error", reject);
      stream.on("close", () => {
        if (status !== "0") {
          resolve(`grpc-status ${status}`);
          return;
        }
        const res = fromBinary(pb.ExecuteWorkflowResponseSchema, Buffer.concat(chunks).subarray(5));
        resolve(res.execution?.status === pb.ExecutionStatus.COMPLETED ? "" : `status ${res.execution?.status}`);
      });
      stream.end(frame);
    });
}
const callers = Number(callersArg);
const start = performance.now();
const begin = start + Number(warmupArg) * 1000;
const end = begin + Number(windowArg) * 1000;
const latencies = [];
let errors = 0;
let firstError = "";

async function caller() {
  for (;;) {
    const t0 = performance.now();
    if (t0 >= end) {
      return;
    }
    let failure = "";
    try {
      failure = await call();
    } catch (e) {
      failure = String(e);
    }
    const t1 = performance.now();
    if (t0 < begin || t1 > end) {
      continue;
    }
    if (failure) {
      errors++;
      firstError ||= failure;
      continue;
    }
    latencies.push((t1 - t0) * 1000);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(ms, 0)));
let cpu = 0; // this process's CPU seconds in the window
async function marks() {
  await sleep(begin - performance.now());
  const c0 = process.cpuUsage();
  process.stdout.write("window-start\n");
  await sleep(end - performance.now());
  const c1 = process.cpuUsage(c0);
  cpu = (c1.user + c1.system) / 1e6;
  process.stdout.write("window-end\n");
}

await Promise.all([marks(), ...Array.from({ length: callers }, caller)]);
client.close();
session?.close();
process.stdout.write(JSON.stringify({ calls: latencies.length, errors, first_error: firstError, cpu_s: cpu, latencies_us: latencies }) + "\n");
