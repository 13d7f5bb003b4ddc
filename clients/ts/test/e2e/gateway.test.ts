// The TypeScript client against a real `kgw serve` and a real PostgreSQL.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import ts from "typescript";
import {
  AsyncWorkflowBuilder,
  type ExecutionEvent,
  InvalidWorkflowError,
  KailashClient,
  NotFoundError,
  WorkflowNotFoundError,
} from "../../src/index.js";
import { type Gateway, type Postgres, REPO_ROOT, startGateway, startPostgres } from "./harness.js";

const HELLO_CODE = `db = get_resource("db")
msg = db.fetchval("SELECT 'Hello from kgw'")
result = {"message": msg}
`;

const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

function helloWorkflow() {
  return new AsyncWorkflowBuilder("hello-database")
    .addAsyncCode("query", HELLO_CODE, { requiredResources: ["db"] })
    .setDescription("reads a greeting from PostgreSQL")
    .build();
}

describe("kgw end to end", () => {
  let pg: Postgres;
  let gw: Gateway;
  let client: KailashClient;

  before(async () => {
    pg = await startPostgres();
    gw = await startGateway();
    client = new KailashClient(gw.target);
  });

  after(async () => {
    client?.close();
    await gw?.stop();
    await pg?.stop();
  });

  async function storeDbSecret(): Promise<string> {
    const name = `pg-${randomUUID().slice(0, 8)}`;
    const meta = await client.secrets.storeSecret(
      name,
      { user: pg.user, password: pg.password },
      { allowedHosts: [pg.host], description: "e2e database login" },
    );
    assert.equal(meta.name, name);
    assert.equal(meta.version, 1);
    assert.deepEqual(meta.keys, ["password", "user"]);
    assert.ok(!JSON.stringify(meta).includes(pg.password));
    return name;
  }

  function db(secret: string) {
    return client.database({ host: pg.host, port: pg.port, database: pg.database, credentialsRef: secret });
  }

  it("runs hello-database with a secret-backed database resource", async () => {
    const secret = await storeDbSecret();
    const stored = await client.registerWorkflow("hello-database", helloWorkflow());
    assert.equal(stored.name, "hello-database");
    assert.ok(stored.version >= 1);
    const res = await client.executeWorkflow("hello-database", { resources: { db: db(secret) } });
    assert.equal(res.status, "completed", JSON.stringify(res.error));
    assert.equal(res.result.query?.message, "Hello from kgw");
    assert.deepEqual(res.nodes.map((n) => [n.nodeId, n.status]), [["query", "completed"]]);
    const again = await client.getExecution(res.executionId);
    assert.deepEqual(again.result, res.result);
  });

  it("streams a second execution to its terminal event", async () => {
    const secret = await storeDbSecret();
    await client.registerWorkflow("hello-database", helloWorkflow());
    const first = await client.executeWorkflow("hello-database", { resources: { db: db(secret) } });
    assert.equal(first.status, "completed", JSON.stringify(first.error));

    const events: ExecutionEvent[] = [];
    for await (const ev of client.streamWorkflow("hello-database", { resources: { db: db(secret) } })) {
      events.push(ev);
    }
    assert.ok(events.length > 0, "stream ended without events");
    assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1));
    assert.equal(events[0]?.type, "execution_started");
    assert.equal(events.filter((e) => e.terminal).length, 1);
    const last = events.at(-1)!;
    assert.equal(last.type, "execution_completed");
    assert.notEqual(last.execution?.executionId, first.executionId);
    assert.equal(last.execution?.result.query?.message, "Hello from kgw");
    assert.deepEqual(
      events.filter((e) => e.type === "node_completed").map((e) => [e.nodeId, e.result]),
      [["query", { message: "Hello from kgw" }]],
    );

    const replay: ExecutionEvent[] = [];
    for await (const ev of client.watchExecution(last.executionId, 1)) {
      replay.push(ev);
    }
    assert.deepEqual(replay.map((e) => [e.seq, e.type]), events.slice(1).map((e) => [e.seq, e.type]));
  });

  it("reports a failing node in the response", async () => {
    await client.registerWorkflow("always-fails", new AsyncWorkflowBuilder("always-fails").addAsyncCode("boom", 'fail("no luck")').build());
    const res = await client.executeWorkflow("always-fails");
    assert.equal(res.status, "failed");
    assert.equal(res.error?.nodeId, "boom");
    assert.match(res.error?.message ?? "", /no luck/);
  });

  it("rejects an unknown workflow with WorkflowNotFoundError", async () => {
    await assert.rejects(client.executeWorkflow(`no-such-workflow-${randomUUID().slice(0, 8)}`), (err: unknown) => {
      assert.ok(err instanceof WorkflowNotFoundError);
      assert.ok(err instanceof NotFoundError);
      assert.equal(err.reason, "WORKFLOW_NOT_FOUND");
      return true;
    });
  });

  it("lists the violations of an invalid workflow", async () => {
    const wf = new AsyncWorkflowBuilder("broken").addAsyncCode("bad", "result = {'a': }").build();
    await assert.rejects(client.registerWorkflow("broken", wf), (err: unknown) => {
      assert.ok(err instanceof InvalidWorkflowError);
      assert.ok(err.violations.length > 0);
      assert.ok(err.violations.some((v) => v.field.includes("bad") || v.description.includes("bad")));
      return true;
    });
  });

  const QUICKSTART = /<!-- quickstart:ts -->\s*```ts\n([\s\S]*?)```/;
  const docs = ["docs/clients.md", "README.md"].filter(
    (p) => existsSync(join(REPO_ROOT, p)) && readFileSync(join(REPO_ROOT, p), "utf8").includes("<!-- quickstart:ts -->"),
  );

  it("documents the TypeScript quick start in docs/clients.md", () => {
    assert.ok(docs.includes("docs/clients.md"));
  });

  for (const doc of docs) {
    it(`runs the quick start of ${doc} as documented`, async () => {
      const match = QUICKSTART.exec(readFileSync(join(REPO_ROOT, doc), "utf8"));
      assert.ok(match, `${doc}: no \`\`\`ts block after <!-- quickstart:ts -->`);
      let code = match[1]!;
      for (const [placeholder, actual] of [
        ['"127.0.0.1:50051"', JSON.stringify(gw.target)],
        ["port: 5432", `port: ${pg.port}`],
        ['user: "postgres"', `user: ${JSON.stringify(pg.user)}`],
        ['password: "change-me"', `password: ${JSON.stringify(pg.password)}`],
        ['database: "postgres"', `database: ${JSON.stringify(pg.database)}`],
      ] as const) {
        assert.ok(code.includes(placeholder), `${doc}: quick start no longer contains ${placeholder}`);
        code = code.replace(placeholder, actual);
      }
      const js = ts.transpileModule(code, {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      }).outputText;
      // Inside the package so that "@kailash-gateway/kgw" resolves to this build.
      const file = join(PACKAGE_DIR, `quickstart-${randomUUID().slice(0, 8)}.mjs`);
      writeFileSync(file, js);
      try {
        // Twice: the second run gives the same output, stores no new secret version and closes no pool.
        for (let run = 0; run < 2; run++) {
          const { stdout } = await promisify(execFile)(process.execPath, [file], { timeout: 120_000 });
          assert.equal(stdout, "Hello from kgw\n");
        }
      } finally {
        rmSync(file, { force: true });
      }
      assert.equal((await client.secrets.getSecret("app-db")).version, 1);
      const pools = [];
      for await (const p of client.iterPools()) {
        if (p.secretName === "app-db") pools.push(p);
      }
      assert.equal(pools.length, 1);
      assert.ok(!pools[0]!.draining && pools[0]!.secretVersion === 1);
    });
  }
});
