// Workflow files (YAML/JSON with code_file), as the Go client and the CLI read them.

import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { equals } from "@bufbuild/protobuf";
import { WorkflowSchema } from "#gen/kgw/v1/workflow_pb.js";
import { WorkflowFileError, loadWorkflowFile, parseWorkflow } from "../../src/index.js";

// This file is clients/ts/dist/test/unit/workflowFile.test.js once built.
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..", "..");
const HELLO = join(REPO, "clients", "go", "testdata", "hello");

async function problems(text: string, format: "yaml" | "json" = "yaml", base?: string): Promise<{ field: string; message: string }[]> {
  try {
    await parseWorkflow(text, format, base);
  } catch (err) {
    assert.ok(err instanceof WorkflowFileError, String(err));
    return err.problems;
  }
  assert.fail("parsed without problems");
}

describe("workflow files", () => {
  it("reads hello.yaml and hello.json as the same workflow", async () => {
    const y = await loadWorkflowFile(join(HELLO, "hello.yaml"));
    const j = await loadWorkflowFile(join(HELLO, "hello.json"));
    assert.ok(equals(WorkflowSchema, y, j), "YAML and JSON differ");
    assert.equal(y.name, "hello_db");
    assert.equal(y.timeout?.seconds, 60n);
    assert.deepEqual({ ...y.labels }, { team: "docs", tier: "1" });
    const [query, shout] = y.nodes;
    assert.equal(query?.code, readFileSync(join(HELLO, "query.star"), "utf8"));
    assert.deepEqual(query?.requiredResources, ["db"]);
    assert.equal(query?.retry?.maxAttempts, 3);
    assert.equal(query?.retry?.initialBackoff?.nanos, 500_000_000);
    assert.equal(query?.retry?.maxBackoff?.seconds, 5n);
    assert.equal(shout?.code, 'result = {"loud": message.upper()}\n');
    assert.deepEqual(
      y.connections.map((c) => [c.fromNode, c.fromOutput, c.toNode, c.toInput]),
      [["query", "message", "shout", "message"]],
    );
  });

  it("loads every example file", async () => {
    const dirs = readdirSync(join(REPO, "examples"), { withFileTypes: true }).filter((d) => d.isDirectory());
    let n = 0;
    for (const d of dirs) {
      for (const f of readdirSync(join(REPO, "examples", d.name)).filter((f) => /^workflow.*\.yaml$/.test(f))) {
        const wf = await loadWorkflowFile(join(REPO, "examples", d.name, f));
        assert.ok(wf.name && wf.nodes.length > 0 && wf.nodes.every((x) => x.code), `${d.name}/${f}`);
        n++;
      }
    }
    assert.ok(n >= 10, `only ${n} example files`);
  });

  it("reports each problem by field", async () => {
    const base = mkdtempSync(join(tmpdir(), "kgw-wf-"));
    const cases: [string, string, string][] = [
      ["name: w\nnodes: [{id: a, code: x, requires: [db]}]", "nodes[0].requires", 'unknown field "requires" in a node'],
      ["name: w\nnodes: [{id: a}]", "nodes[0]", "exactly one of code or code_file"],
      ["name: 3\nnodes: [{id: a, code: x}]", "name", "want a string, got a number"],
      ["name: w\nnodes: []", "nodes", "at least one node"],
      ["name: w\ntimeout: 5 minutes\nnodes: [{id: a, code: x}]", "timeout", "bad duration"],
      ["name: w\ntimeout: -5\nnodes: [{id: a, code: x}]", "timeout", "must not be negative"],
      ["name: w\nnodes: [{id: a, code: x, retry: {max_attempts: 0}}]", "nodes[0].retry.max_attempts", ">= 1"],
      ["name: w\nnodes: [{id: a, code: x}, {id: a, code: y}]", "nodes[1].id", 'duplicate node id "a"'],
      ["name: w\nnodes: [{id: a, code: x}]\nconnections: [{from: a.x, to: c}]", "connections[0].to_node", 'unknown node "c"'],
      ["name: w\nnodes: [{id: a, code: x}]\nconnections: [{from: a.x, to_node: a}]", "connections[0]", "not both"],
      ["name: w\nnodes: [{id: a, code_file: missing.star}]", "nodes[0].code_file", "not a regular file"],
    ];
    for (const [text, field, message] of cases) {
      const got = await problems(text, "yaml", base);
      assert.ok(got.some((p) => p.field === field && p.message.includes(message)), `${text}: ${JSON.stringify(got)}`);
    }
    const all = (await problems("name: 3\ntimeout: x\nnodes: [{id: a, cod: x}]")).map((p) => p.field);
    for (const f of ["name", "timeout", "nodes[0].cod", "nodes[0]"]) {
      assert.ok(all.includes(f), `${f} missing from ${JSON.stringify(all)}`);
    }
  });

  it("refuses duplicate fields, several documents and bad syntax", async () => {
    assert.match((await problems("name: a\nname: b\nnodes: [{id: a, code: x}]"))[0]!.message, /not valid YAML|unique|given twice/i);
    assert.match((await problems('{"name": "a", "name": "b"}', "json"))[0]!.message, /given twice/);
    // Keys repeated inside a string value are text, not fields.
    const ok = await parseWorkflow('{"name": "a", "nodes": [{"id": "a", "code": "d = {\\"x\\": 1, \\"x\\": 2}"}]}', "json");
    assert.equal(ok.nodes[0]?.code, 'd = {"x": 1, "x": 2}');
    assert.match((await problems("name: a\n---\nname: b\n"))[0]!.message, /exactly one YAML document/);
    assert.match((await problems('{"name": ', "json"))[0]!.message, /not valid JSON/);
  });

  it("reads durations and code files relative to the file", async () => {
    const wf = await parseWorkflow("name: w\ntimeout: 1m30s\nnodes: [{id: a, code: x, timeout: 0.25}]");
    assert.equal(wf.timeout?.seconds, 90n);
    assert.equal(wf.nodes[0]?.timeout?.nanos, 250_000_000);
    const dir = mkdtempSync(join(tmpdir(), "kgw-wf-"));
    mkdirSync(join(dir, "sub"));
    writeFileSync(join(dir, "sub", "a.star"), "result = {'a': 1}\n");
    writeFileSync(join(dir, "wf.json"), JSON.stringify({ name: "w", nodes: [{ id: "a", code_file: "sub/a.star" }] }));
    assert.equal((await loadWorkflowFile(join(dir, "wf.json"))).nodes[0]?.code, "result = {'a': 1}\n");
    await assert.rejects(loadWorkflowFile(join(dir, "sub", "a.star")), /want a .yaml/);
  });
});
