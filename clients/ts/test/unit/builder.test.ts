import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AsyncWorkflowBuilder, WorkflowBuilder } from "../../src/index.js";

const CODE = 'db = get_resource("db")\nresult = {"message": db.fetchval("SELECT 1")}\n';

describe("AsyncWorkflowBuilder", () => {
  it("builds the hello-database workflow", () => {
    const wf = new AsyncWorkflowBuilder("hello-database")
      .addAsyncCode("query", CODE, { requiredResources: ["db"], timeoutMs: 5000, retry: 3 })
      .setDescription("says hello")
      .setTimeout(60_000)
      .setLabels({ team: "core" })
      .build();
    assert.equal(wf.$typeName, "kgw.v1.Workflow");
    assert.equal(wf.name, "hello-database");
    assert.equal(wf.description, "says hello");
    assert.equal(wf.timeout?.seconds, 60n);
    assert.deepEqual(wf.labels, { team: "core" });
    assert.equal(wf.nodes.length, 1);
    const node = wf.nodes[0]!;
    assert.equal(node.id, "query");
    assert.equal(node.code, CODE);
    assert.deepEqual(node.requiredResources, ["db"]);
    assert.equal(node.timeout?.seconds, 5n);
    assert.equal(node.retry?.maxAttempts, 3);
    assert.equal(node.retry?.initialBackoff, undefined);
  });

  it("takes a retry policy", () => {
    const wf = new WorkflowBuilder("w")
      .addCode("a", "result = {}", { retry: { maxAttempts: 4, initialBackoffMs: 250, maxBackoffMs: 2000, multiplier: 3 } })
      .build();
    const retry = wf.nodes[0]!.retry!;
    assert.equal(retry.maxAttempts, 4);
    assert.equal(retry.initialBackoff?.nanos, 250_000_000);
    assert.equal(retry.maxBackoff?.seconds, 2n);
    assert.equal(retry.multiplier, 3);
  });

  it("encodes pass-all connections as empty strings", () => {
    const wf = new AsyncWorkflowBuilder("pipe")
      .addAsyncCode("a", "result = {'x': 1}")
      .addAsyncCode("b", "result = {'y': x}")
      .addConnection("a", null, "b", null)
      .addConnection("a", "x", "b", "x2")
      .addConnection("a", "x", "b")
      .build();
    assert.deepEqual(
      wf.connections.map((c) => [c.fromNode, c.fromOutput, c.toNode, c.toInput]),
      [
        ["a", "", "b", ""],
        ["a", "x", "b", "x2"],
        ["a", "x", "b", ""],
      ],
    );
  });

  it("returns a copy", () => {
    const builder = new AsyncWorkflowBuilder("w").addAsyncCode("a", "result = {}");
    const first = builder.build();
    builder.addAsyncCode("b", "result = {}");
    assert.equal(first.nodes.length, 1);
    assert.equal(builder.build().nodes.length, 2);
  });

  it("rejects what it can see is wrong", () => {
    const builder = new AsyncWorkflowBuilder("w").addAsyncCode("a", "result = {}");
    assert.throws(() => builder.addAsyncCode("a", "result = {}"), /duplicate node id "a"/);
    assert.throws(() => builder.addAsyncCode("b", "", { retry: 0 }), /maxAttempts must be an integer of at least 1/);
    assert.throws(() => new AsyncWorkflowBuilder("w").build(), /has no nodes/);
    assert.throws(
      () => new AsyncWorkflowBuilder("w").addAsyncCode("a", "").addConnection("a", "x", "nope").build(),
      /unknown node "nope"/,
    );
  });
});
