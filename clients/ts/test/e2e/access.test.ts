// API keys, role bindings, whoami and grants over mTLS, against a real
// `kgw serve --auth required` with TLS and required client certificates.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Code, KailashClient, KailashError, PermissionDeniedError, type TlsOptions, UnauthenticatedError } from "../../src/index.js";
import { CA } from "../unit/pki.js";
import { type Gateway, startGateway } from "./harness.js";

const SPIFFE_ID = "spiffe://mesh.example/ns/payments/sa/api";

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) {
    out.push(x);
  }
  return out;
}

describe("access control over mTLS", () => {
  let dir: string;
  let gw: Gateway;
  let adminKey = "";
  let tls: TlsOptions;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "kgw-ts-access-"));
    const ca = new CA(dir, "mesh-root");
    const server = ca.server();
    const client = ca.issue("client", "payments-api", true, `URI:${SPIFFE_ID}`);
    tls = { caFile: ca.cert, certFile: client.cert, keyFile: client.key };
    gw = await startGateway({
      args: ["--auth", "required", "--tls-cert-file", server.cert, "--tls-key-file", server.key, "--tls-client-ca-file", ca.cert],
      prepare: (binary, dataDir) => {
        adminKey = execFileSync(binary, ["auth", "create-key", "--data-dir", dataDir, "--role", "admin", "--name", "e2e"], {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"],
        }).trim();
      },
    });
    assert.match(adminKey, /^kgw_/);
  });

  after(async () => {
    const log = gw?.output() ?? "";
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
    assert.ok(!log.includes(adminKey), "the gateway logged the admin key");
  });

  it("manages keys and bindings, and authenticates keys and certificates", async () => {
    const admin = new KailashClient(gw.target, { token: adminKey, tls });
    try {
      const me = await admin.access.whoami();
      assert.match(me.principal, /^key:/);
      assert.deepEqual([me.method, me.roles], ["api_key", ["admin"]]);

      const created = await admin.access.createApiKey(`ci-${randomUUID().slice(0, 6)}`, ["executor"], { ttlMs: 3_600_000 });
      assert.ok(created.key.startsWith(`kgw_${created.apiKey.id}_`));
      assert.ok(created.apiKey.expireTime instanceof Date);
      const keys = await collect(admin.access.iterApiKeys({ pageSize: 1 }));
      assert.ok(keys.some((k) => k.id === created.apiKey.id));
      assert.ok(!JSON.stringify(keys).includes(created.key));

      const ci = new KailashClient(gw.target, { token: created.key, tls });
      try {
        assert.equal((await ci.access.whoami()).principal, `key:${created.apiKey.id}`);
        await assert.rejects(ci.access.listApiKeys(), PermissionDeniedError);
      } finally {
        ci.close();
      }

      const certOnly = new KailashClient(gw.target, { tls });
      try {
        assert.deepEqual(await certOnly.access.whoami(), { principal: SPIFFE_ID, roles: [], method: "mtls" });
        const binding = await admin.access.createRoleBinding("spiffe://mesh.example/ns/payments/*", ["viewer"]);
        assert.deepEqual(binding.roles, ["viewer"]);
        assert.deepEqual((await certOnly.access.whoami()).roles, ["viewer"]);
        assert.ok((await collect(admin.access.iterRoleBindings())).some((b) => b.id === binding.id));
        await admin.access.deleteRoleBinding(binding.id);
        assert.ok(!(await admin.access.listRoleBindings()).items.some((b) => b.id === binding.id));
      } finally {
        certOnly.close();
      }

      const name = `grant_${randomUUID().slice(0, 6)}`;
      const stored = await admin.secrets.storeSecret(name, { token: "t0p" }, { allowedCallers: [`key:${created.apiKey.id}`] });
      assert.deepEqual([stored.allowedCallers, stored.creator], [[`key:${created.apiKey.id}`], me.principal]);
      const updated = await admin.secrets.updateSecretAccess(name, ["role:executor"]);
      assert.deepEqual([updated.allowedCallers, updated.version], [["role:executor"], stored.version]);

      await admin.access.revokeApiKey(created.apiKey.id);
      const revoked = new KailashClient(gw.target, { token: created.key, tls });
      try {
        const deadline = Date.now() + 10_000;
        for (;;) {
          try {
            await revoked.access.whoami();
          } catch (err) {
            if (err instanceof UnauthenticatedError) {
              break;
            }
            throw err;
          }
          assert.ok(Date.now() < deadline, "a revoked key still works after 10 s");
          await new Promise((r) => setTimeout(r, 200));
        }
      } finally {
        revoked.close();
      }
    } finally {
      admin.close();
    }
  });

  it("refuses clients it cannot verify", async () => {
    for (const t of [{ caFile: tls.caFile! }, true] as (TlsOptions | boolean)[]) {
      const client = new KailashClient(gw.target, { token: adminKey, tls: t });
      try {
        await assert.rejects(client.access.whoami(), (err: unknown) => {
          assert.ok(err instanceof KailashError && [Code.Unavailable, Code.Canceled].includes(err.code), String(err));
          return true;
        });
      } finally {
        client.close();
      }
    }
    const bad = new KailashClient(gw.target, { token: "kgw_nope_nope", tls });
    try {
      await assert.rejects(bad.listWorkflows(), UnauthenticatedError);
    } finally {
      bad.close();
    }
  });
});
