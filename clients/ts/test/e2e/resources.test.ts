// Named resources, pools, checks and paging against a real `kgw serve` and PostgreSQL.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import {
  AsyncWorkflowBuilder,
  InvalidWorkflowError,
  KailashClient,
  ResourceNotFoundError,
  WorkflowNotFoundError,
  loadWorkflowFile,
} from "../../src/index.js";
import { type Gateway, type Postgres, REPO_ROOT, startGateway, startPostgres } from "./harness.js";

const HELLO_CODE = `db = get_resource("db")
msg = db.fetchval("SELECT 'Hello from kgw'")
result = {"message": msg}
`;

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) {
    out.push(x);
  }
  return out;
}

describe("named resources and paging", () => {
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

  it("puts, gets, lists, checks, uses and deletes a named resource", async () => {
    const secret = `pg-${randomUUID().slice(0, 8)}`;
    await client.secrets.storeSecret(secret, { user: pg.user, password: pg.password }, { allowedHosts: [pg.host] });
    const name = `orders_${randomUUID().slice(0, 8)}`;
    const spec = client.database({ host: pg.host, port: pg.port, database: pg.database, credentialsRef: secret });
    const stored = await client.putResource(name, spec);
    assert.equal(stored.name, name);
    assert.equal(stored.type, "database");
    assert.equal(stored.credentialsRef, secret);
    assert.equal(stored.config.host, pg.host);
    assert.ok(!JSON.stringify(stored, (_, v) => (typeof v === "bigint" ? String(v) : v)).includes(pg.password));

    assert.equal((await client.getResource(name)).credentialsRef, secret);
    assert.ok((await collect(client.iterResources({ pageSize: 1 }))).some((r) => r.name === name));

    for (const target of [name, spec, client.ref(name)]) {
      const check = await client.checkResource(target);
      assert.ok(check.healthy, check.message);
      assert.ok(check.latencyMs !== undefined);
    }
    const bad = await client.checkResource(client.database({ host: pg.host, port: pg.port, database: "no_such_db", credentialsRef: secret }));
    assert.equal(bad.healthy, false);
    assert.ok(bad.message && !bad.message.includes(pg.password));

    await client.registerWorkflow(
      "hello-named",
      new AsyncWorkflowBuilder("hello-named").addAsyncCode("query", HELLO_CODE, { requiredResources: ["db"] }).build(),
    );
    const run = await client.executeWorkflow("hello-named", { resources: { db: client.ref(name) } });
    assert.equal(run.status, "completed", run.error?.message);
    assert.deepEqual(run.result.query, { message: "Hello from kgw" });

    const pools = await collect(client.iterPools());
    assert.ok(pools.some((p) => p.type === "database" && p.secretName === secret), JSON.stringify(pools.map((p) => p.target)));

    await client.deleteResource(name);
    await assert.rejects(client.getResource(name), ResourceNotFoundError);
  });

  it("walks every page with for await", async () => {
    const prefix = `page-${randomUUID().slice(0, 6)}`;
    const names = [0, 1, 2, 3, 4].map((i) => `${prefix}-${i}`);
    for (const n of names) {
      await client.registerWorkflow(n, new AsyncWorkflowBuilder(n).addAsyncCode("a", "result = {'n': 1}").build());
      await client.secrets.storeSecret(n.replaceAll("-", "_"), { token: "t" });
    }
    const first = await client.listWorkflows({ pageSize: 2 });
    assert.equal(first.items.length, 2);
    assert.ok(first.nextPageToken, "one page should not hold every workflow");

    const listed = (await collect(client.iterWorkflows({ pageSize: 2 }))).map((w) => w.name);
    assert.deepEqual(listed.filter((n) => n.startsWith(prefix)), names);
    assert.equal(new Set(listed).size, listed.length, "an item came twice");
    const secrets = (await collect(client.secrets.iterSecrets({ pageSize: 2 }))).map((s) => s.name);
    assert.deepEqual(secrets.filter((s) => s.startsWith(prefix.replaceAll("-", "_"))), names.map((n) => n.replaceAll("-", "_")));

    for (const n of names) {
      await client.executeWorkflow(n);
    }
    const runs = await collect(client.iterExecutions({ pageSize: 2 }));
    assert.deepEqual(runs.filter((e) => e.workflow.startsWith(prefix)).map((e) => e.workflow).sort(), names);
    assert.equal(new Set(runs.map((e) => e.executionId)).size, runs.length);
    const only = await collect(client.iterExecutions({ workflow: names[3]!, status: "completed", pageSize: 1 }));
    assert.deepEqual(only.map((e) => e.workflow), [names[3]]);
    assert.throws(() => client.iterWorkflows({ pageSize: 1001 }), /pageSize/);
  });

  it("registers every example workflow file", async () => {
    const root = join(REPO_ROOT, "examples");
    let n = 0;
    for (const d of readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory())) {
      for (const f of readdirSync(join(root, d.name)).filter((x) => /^workflow.*\.yaml$/.test(x))) {
        const wf = await loadWorkflowFile(join(root, d.name, f));
        const stored = await client.registerWorkflow(undefined, wf);
        assert.equal(stored.name, wf.name, `${d.name}/${f}`);
        n++;
      }
    }
    assert.ok(n >= 10);
  });

  it("validates a workflow without storing it", async () => {
    const name = `validate-${randomUUID().slice(0, 6)}`;
    const good = new AsyncWorkflowBuilder(name).addAsyncCode("a", "result = {'a': 1}").build();
    const checked = await client.validateWorkflow(undefined, good);
    assert.equal(checked.name, name);
    assert.equal(checked.version, 0);
    await assert.rejects(client.getWorkflow(name), WorkflowNotFoundError);
    const bad = new AsyncWorkflowBuilder(name).addAsyncCode("a", "import json").build();
    await assert.rejects(client.validateWorkflow(undefined, bad), (err: unknown) => {
      assert.ok(err instanceof InvalidWorkflowError && err.violations.some((v) => v.description.includes("import")), String(err));
      return true;
    });
    assert.equal((await client.registerWorkflow(undefined, good)).version, 1);
  });
});
