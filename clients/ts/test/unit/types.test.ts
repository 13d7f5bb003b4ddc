import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import {
  ExecutionEventSchema,
  ExecutionSchema,
  ExecutionStatus,
  LogLevel,
  NodeStatus,
} from "#gen/kgw/v1/execution_pb.js";
import { SecretSchema } from "#gen/kgw/v1/secret_pb.js";
import {
  eventFromProto,
  executionFromProto,
  executionStatusValue,
  secretFromProto,
} from "../../src/types.js";
import { durationFromMs } from "../../src/values.js";

function completed(id: string) {
  return create(ExecutionSchema, {
    id,
    workflow: "hello",
    version: 2,
    status: ExecutionStatus.COMPLETED,
    result: { query: { message: "Hello from kgw", rows: 2 } },
    nodes: [{ nodeId: "query", status: NodeStatus.COMPLETED, attempts: 1, duration: durationFromMs(1500) }],
    createTime: { seconds: 1893456000n, nanos: 0 },
  });
}

describe("executionFromProto", () => {
  it("gives plain values", () => {
    const ex = executionFromProto(completed("ex-1"));
    assert.deepEqual(ex, {
      executionId: "ex-1",
      workflow: "hello",
      version: 2,
      status: "completed",
      result: { query: { message: "Hello from kgw", rows: 2 } },
      nodes: [{ nodeId: "query", status: "completed", attempts: 1, durationMs: 1500 }],
      idempotencyKey: "",
      createTime: new Date("2030-01-01T00:00:00Z"),
    });
    assert.equal(ex.result.query?.message, "Hello from kgw");
  });

  it("carries the error of a failed execution", () => {
    const msg = completed("ex-2");
    msg.status = ExecutionStatus.FAILED;
    msg.error = { $typeName: "kgw.v1.ExecutionError", nodeId: "query", code: "NODE_ERROR", message: "boom", traceback: "" };
    const ex = executionFromProto(msg);
    assert.equal(ex.status, "failed");
    assert.deepEqual(ex.error, { nodeId: "query", code: "NODE_ERROR", message: "boom", traceback: "" });
  });

  it("names every status", () => {
    const names: Array<[ExecutionStatus, string]> = [
      [ExecutionStatus.PENDING, "pending"],
      [ExecutionStatus.RUNNING, "running"],
      [ExecutionStatus.CANCELLED, "cancelled"],
      [ExecutionStatus.TIMED_OUT, "timed_out"],
      [ExecutionStatus.UNSPECIFIED, "unspecified"],
      [99 as ExecutionStatus, "unspecified"],
    ];
    for (const [value, name] of names) {
      assert.equal(executionFromProto(create(ExecutionSchema, { status: value })).status, name);
    }
    assert.equal(executionStatusValue("timed_out"), ExecutionStatus.TIMED_OUT);
    assert.throws(() => executionStatusValue("done"), /unknown execution status "done"/);
    assert.throws(() => executionStatusValue("unspecified"), /unknown execution status/);
  });
});

describe("eventFromProto", () => {
  it("converts every kind of event", () => {
    const started = eventFromProto(
      create(ExecutionEventSchema, {
        executionId: "ex-1",
        seq: 1n,
        event: { case: "executionStarted", value: { workflow: "hello", version: 2 } },
      }),
    );
    assert.deepEqual(started, {
      executionId: "ex-1",
      seq: 1,
      type: "execution_started",
      terminal: false,
      workflow: "hello",
      version: 2,
      resumed: false,
    });

    const log = eventFromProto(
      create(ExecutionEventSchema, {
        seq: 2n,
        event: { case: "nodeLog", value: { nodeId: "q", attempt: 1, level: LogLevel.WARNING, message: "slow", fields: { ms: 12 } } },
      }),
    );
    assert.equal(log.type, "node_log");
    assert.equal(log.level, "warning");
    assert.deepEqual(log.fields, { ms: 12 });

    const retrying = eventFromProto(
      create(ExecutionEventSchema, {
        seq: 3n,
        event: { case: "nodeRetrying", value: { nodeId: "q", attempt: 1, error: { code: "NODE_ERROR" }, backoff: durationFromMs(2000) } },
      }),
    );
    assert.equal(retrying.type, "node_retrying");
    assert.equal(retrying.backoffMs, 2000);
    assert.equal(retrying.error?.code, "NODE_ERROR");

    const done = eventFromProto(
      create(ExecutionEventSchema, {
        seq: 4n,
        event: { case: "nodeCompleted", value: { nodeId: "q", attempt: 2, result: { message: "hi" } } },
      }),
    );
    assert.deepEqual([done.type, done.nodeId, done.attempt, done.result], ["node_completed", "q", 2, { message: "hi" }]);

    const failed = eventFromProto(
      create(ExecutionEventSchema, { seq: 4n, event: { case: "nodeFailed", value: { nodeId: "q", error: { message: "boom" } } } }),
    );
    assert.equal(failed.error?.message, "boom");

    for (const [kase, type] of [
      ["executionCompleted", "execution_completed"],
      ["executionFailed", "execution_failed"],
      ["executionCancelled", "execution_cancelled"],
      ["executionTimedOut", "execution_timed_out"],
    ] as const) {
      const ev = eventFromProto(create(ExecutionEventSchema, { seq: 5n, event: { case: kase, value: { execution: completed("ex-9") } } }));
      assert.equal(ev.type, type);
      assert.equal(ev.terminal, true);
      assert.equal(ev.execution?.result.query?.message, "Hello from kgw");
    }

    assert.equal(eventFromProto(create(ExecutionEventSchema, { seq: 6n })).type, "unknown");
  });
});

describe("secretFromProto", () => {
  it("gives metadata only", () => {
    const s = secretFromProto(create(SecretSchema, { name: "pg", version: 3, keys: ["password", "user"], allowedHosts: ["db"], allowedCallers: ["role:executor"], creator: "key:abc" }));
    assert.deepEqual(s, { name: "pg", version: 3, keys: ["password", "user"], description: "", allowedHosts: ["db"], allowedCallers: ["role:executor"], creator: "key:abc" });
  });
});
