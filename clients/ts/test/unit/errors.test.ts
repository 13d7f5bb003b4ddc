import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ExecutionNotFoundError,
  InvalidArgumentError,
  InvalidWorkflowError,
  KailashError,
  NotFoundError,
  PermissionDeniedError,
  SecretNotFoundError,
  UnavailableError,
  WorkflowNotFoundError,
} from "../../src/index.js";
import { ResumeTracker, errorClass, fromStatus, toKailashError } from "../../src/errors.js";
import { badRequest, errorInfo } from "./details.js";

describe("errorClass", () => {
  const cases: Array<[Code, string, unknown]> = [
    [Code.NotFound, "WORKFLOW_NOT_FOUND", WorkflowNotFoundError],
    [Code.NotFound, "EXECUTION_NOT_FOUND", ExecutionNotFoundError],
    [Code.NotFound, "SECRET_NOT_FOUND", SecretNotFoundError],
    [Code.NotFound, "OTHER", NotFoundError],
    [Code.NotFound, "", NotFoundError],
    [Code.InvalidArgument, "INVALID_WORKFLOW", InvalidWorkflowError],
    [Code.InvalidArgument, "", InvalidArgumentError],
    [Code.PermissionDenied, "", PermissionDeniedError],
    [Code.Unavailable, "", UnavailableError],
    [Code.Internal, "", KailashError],
    [Code.Unavailable, "WORKFLOW_NOT_FOUND", UnavailableError],
  ];
  for (const [code, reason, cls] of cases) {
    it(`${Code[code]} ${reason || "(no reason)"}`, () => {
      assert.equal(errorClass(code, reason), cls);
    });
  }
});

describe("fromStatus", () => {
  it("reads ErrorInfo and BadRequest", () => {
    const err = fromStatus(Code.InvalidArgument, "invalid workflow", [
      { type: "google.rpc.ErrorInfo", value: errorInfo("INVALID_WORKFLOW", "kgw", { workflow: "w" }) },
      { type: "google.rpc.BadRequest", value: badRequest([["nodes[query].code", "1:5: got illegal token"]]) },
    ]);
    assert.ok(err instanceof InvalidWorkflowError);
    assert.ok(err instanceof InvalidArgumentError);
    assert.ok(err instanceof KailashError);
    assert.ok(err instanceof Error);
    assert.equal(err.name, "InvalidWorkflowError");
    assert.equal(err.code, Code.InvalidArgument);
    assert.equal(err.reason, "INVALID_WORKFLOW");
    assert.equal(err.domain, "kgw");
    assert.deepEqual(err.metadata, { workflow: "w" });
    assert.deepEqual(err.violations, [{ field: "nodes[query].code", description: "1:5: got illegal token" }]);
    assert.match(err.message, /INVALID_WORKFLOW.*invalid workflow\n {2}nodes\[query\]\.code: 1:5/s);
  });

  it("ignores details it cannot decode", () => {
    const err = fromStatus(Code.NotFound, "m", [{ type: "google.rpc.ErrorInfo", value: new Uint8Array([0xff, 0xff]) }]);
    assert.equal(err.constructor, NotFoundError);
  });
});

describe("toKailashError", () => {
  it("converts ConnectErrors with incoming details", () => {
    const connectErr = new ConnectError("workflow 'x' not found", Code.NotFound);
    connectErr.details = [{ type: "google.rpc.ErrorInfo", value: errorInfo("WORKFLOW_NOT_FOUND") }];
    const err = toKailashError(connectErr);
    assert.ok(err instanceof WorkflowNotFoundError);
    assert.equal(err.rawMessage, "workflow 'x' not found");
    assert.equal(err.cause, connectErr);
  });
});

describe("ResumeTracker", () => {
  const lagging = (metadata: Record<string, string>) =>
    new KailashError(Code.ResourceExhausted, "WATCH_LAGGING", "behind", { metadata });

  it("resumes after the last event, once per progress", () => {
    const t = new ResumeTracker();
    assert.deepEqual(t.resumePoint(lagging({ execution_id: "ex", resume_after_seq: "4" })), { executionId: "ex", afterSeq: 4 });
    assert.equal(t.resumePoint(lagging({ execution_id: "ex" })), undefined);
    t.saw("ex", 7);
    assert.deepEqual(t.resumePoint(lagging({})), { executionId: "ex", afterSeq: 7 });
    t.saw("ex", 8);
    assert.equal(t.resumePoint(new NotFoundError(Code.NotFound, "EXECUTION_NOT_FOUND", "gone")), undefined);
    assert.equal(new ResumeTracker().resumePoint(lagging({})), undefined);
  });
});
