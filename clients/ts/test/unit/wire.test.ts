// The client over a real HTTP/2 gRPC connection to a small in-process server
// with canned answers, to check what crosses the wire (metadata, status
// details, stream end and cancellation). test/e2e runs against real kgw.

import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  ExecutionEventSchema,
  ExecutionSchema,
  ExecutionService,
  ExecutionStatus,
} from "#gen/kgw/v1/execution_pb.js";
import { WorkflowService } from "#gen/kgw/v1/workflow_pb.js";
import {
  AsyncWorkflowBuilder,
  ExecutionNotFoundError,
  InvalidWorkflowError,
  KailashClient,
  UnavailableError,
  WorkflowNotFoundError,
} from "../../src/index.js";
import { badRequest, errorInfo } from "./details.js";

function completed(id: string, message: string) {
  return create(ExecutionSchema, {
    id,
    workflow: "hello",
    version: 1,
    status: ExecutionStatus.COMPLETED,
    result: { query: { message } },
  });
}

function notFound(message: string, reason: string): ConnectError {
  const err = new ConnectError(message, Code.NotFound);
  err.details = [{ type: "google.rpc.ErrorInfo", value: errorInfo(reason) }];
  return err;
}

const seen: { headers: Headers[]; watches: Array<[string, number]>; streamCancelled: Promise<void> } = {
  headers: [],
  watches: [],
  streamCancelled: Promise.resolve(),
};
let markCancelled: () => void = () => {};

function routes(router: ConnectRouter): void {
  router.service(ExecutionService, {
    executeWorkflow(req, ctx) {
      seen.headers.push(ctx.requestHeader);
      if (req.workflow !== "hello") {
        throw notFound(`workflow "${req.workflow}" not found`, "WORKFLOW_NOT_FOUND");
      }
      assert.equal(req.resources.db?.credentialsRef, "pg");
      return { execution: completed("ex-1", "Hello from kgw") };
    },
    async *streamExecution(req, ctx) {
      yield { event: create(ExecutionEventSchema, { executionId: "ex-2", seq: 1n, event: { case: "executionStarted", value: { workflow: req.workflow } } }) };
      yield { event: create(ExecutionEventSchema, { executionId: "ex-2", seq: 2n, event: { case: "nodeCompleted", value: { nodeId: "query", result: { message: "streamed" } } } }) };
      if (req.workflow === "lagging") {
        const err = new ConnectError("behind", Code.ResourceExhausted);
        err.details = [
          { type: "google.rpc.ErrorInfo", value: errorInfo("WATCH_LAGGING", "kgw", { execution_id: "ex-2", resume_after_seq: "2" }) },
        ];
        throw err;
      }
      if (req.workflow === "endless") {
        await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
        markCancelled();
        return;
      }
      yield { event: create(ExecutionEventSchema, { executionId: "ex-2", seq: 3n, event: { case: "executionCompleted", value: { execution: completed("ex-2", "streamed") } } }) };
    },
    async *watchExecution(req) {
      seen.watches.push([req.executionId, Number(req.afterSeq)]);
      if (req.executionId === "ex-2" && req.afterSeq === 2n) {
        yield { event: create(ExecutionEventSchema, { executionId: "ex-2", seq: 3n, event: { case: "executionCompleted", value: { execution: completed("ex-2", "streamed") } } }) };
        return;
      }
      throw notFound("execution not found", "EXECUTION_NOT_FOUND");
    },
  });
  router.service(WorkflowService, {
    registerWorkflow() {
      const err = new ConnectError("invalid workflow", Code.InvalidArgument);
      err.details = [
        { type: "google.rpc.ErrorInfo", value: errorInfo("INVALID_WORKFLOW") },
        { type: "google.rpc.BadRequest", value: badRequest([["nodes[a].code", "1:1: undefined: y"]]) },
      ];
      throw err;
    },
  });
}

describe("client over gRPC", () => {
  let server: http2.Http2Server;
  let target = "";

  before(async () => {
    server = http2.createServer(connectNodeAdapter({ routes, grpc: true, connect: false, grpcWeb: false }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    target = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("executes, sending the token, and returns plain results", async () => {
    using client = new KailashClient(target, { token: "tok-123", headers: { "x-team": "core" } });
    const res = await client.executeWorkflow("hello", {
      parameters: { n: 1 },
      resources: { db: client.database({ database: "app", credentialsRef: "pg" }) },
    });
    assert.equal(res.status, "completed");
    assert.equal(res.result.query?.message, "Hello from kgw");
    const headers = seen.headers.at(-1);
    assert.equal(headers?.get("authorization"), "Bearer tok-123");
    assert.equal(headers?.get("x-team"), "core");
  });

  it("rejects an unknown workflow with WorkflowNotFoundError", async () => {
    using client = new KailashClient(target);
    await assert.rejects(client.executeWorkflow("nope"), (err: unknown) => {
      assert.ok(err instanceof WorkflowNotFoundError);
      assert.equal(err.code, Code.NotFound);
      assert.equal(err.reason, "WORKFLOW_NOT_FOUND");
      return true;
    });
  });

  it("reports the violations of an invalid workflow", async () => {
    using client = new KailashClient(target);
    const wf = new AsyncWorkflowBuilder("w").addAsyncCode("a", "result = {'x': y}").build();
    await assert.rejects(client.registerWorkflow("w", wf), (err: unknown) => {
      assert.ok(err instanceof InvalidWorkflowError);
      assert.deepEqual(err.violations, [{ field: "nodes[a].code", description: "1:1: undefined: y" }]);
      return true;
    });
  });

  it("streams events to the terminal one", async () => {
    using client = new KailashClient(target);
    const events = [];
    for await (const ev of client.streamWorkflow("hello")) {
      events.push(ev);
    }
    assert.deepEqual(
      events.map((e) => [e.seq, e.type]),
      [
        [1, "execution_started"],
        [2, "node_completed"],
        [3, "execution_completed"],
      ],
    );
    assert.equal(events.at(-1)?.execution?.result.query?.message, "streamed");
  });

  it("resumes a lagging stream with WatchExecution", async () => {
    using client = new KailashClient(target);
    const events = [];
    for await (const ev of client.streamWorkflow("lagging")) {
      events.push([ev.seq, ev.type]);
    }
    assert.deepEqual(events, [
      [1, "execution_started"],
      [2, "node_completed"],
      [3, "execution_completed"],
    ]);
    assert.deepEqual(seen.watches.at(-1), ["ex-2", 2]);
  });

  it("cancels the call when the consumer stops early", async () => {
    using client = new KailashClient(target);
    seen.streamCancelled = new Promise<void>((resolve) => {
      markCancelled = resolve;
    });
    const seqs: number[] = [];
    for await (const ev of client.streamWorkflow("endless")) {
      seqs.push(ev.seq);
      if (ev.seq === 2) {
        break;
      }
    }
    await seen.streamCancelled;
    assert.deepEqual(seqs, [1, 2]);
  });

  it("types stream errors", async () => {
    using client = new KailashClient(target);
    await assert.rejects(async () => {
      for await (const _ of client.watchExecution("missing")) {
        // no events expected
      }
    }, ExecutionNotFoundError);
  });

  it("reports an unreachable gateway as UnavailableError", async () => {
    using client = new KailashClient("127.0.0.1:1");
    await assert.rejects(client.getExecution("x"), UnavailableError);
  });
});
