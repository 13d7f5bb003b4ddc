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
      const ex = await client.executeWorkflow(workflow, { resources });
      if (ex.status !== "completed") {
        failure = `status ${ex.status}: ${JSON.stringify(ex.error)}`;
      }
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
process.stdout.write(JSON.stringify({ calls: latencies.length, errors, first_error: firstError, cpu_s: cpu, latencies_us: latencies }) + "\n");
