import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KailashClient, cache, database, httpClient, ref } from "../../src/index.js";
import { resourceSpecToProto } from "../../src/resources.js";

describe("resource helpers", () => {
  it("describes a database", () => {
    const spec = database({ host: "127.0.0.1", port: 5433, database: "app", credentialsRef: "pg", max_size: 5 });
    assert.deepEqual(spec, {
      type: "database",
      config: { host: "127.0.0.1", port: 5433, database: "app", max_size: 5 },
      credentialsRef: "pg",
    });
    const msg = resourceSpecToProto(spec);
    assert.equal(msg.type, "database");
    assert.equal(msg.credentialsRef, "pg");
    assert.deepEqual(msg.config, { host: "127.0.0.1", port: 5433, database: "app", max_size: 5 });
  });

  it("describes caches, HTTP APIs and named resources", () => {
    assert.deepEqual(cache({ port: 6380 }).config, { host: "localhost", port: 6380, db: 0 });
    const http = httpClient({ baseUrl: "https://api.example.com", credentialsRef: "keys", credentialsKey: "example", timeout: 5 });
    assert.equal(http.type, "http_client");
    assert.deepEqual(http.config, { base_url: "https://api.example.com", timeout: 5 });
    assert.equal(http.credentialsKey, "example");
    const named = resourceSpecToProto(ref("orders_db"));
    assert.equal(named.ref, "orders_db");
    assert.equal(named.config, undefined);
  });

  it("is available on the client", () => {
    const client = new KailashClient("127.0.0.1:1");
    try {
      assert.deepEqual(client.database({ database: "x" }), database({ database: "x" }));
      assert.deepEqual(client.ref("r"), { ref: "r" });
    } finally {
      client.close();
    }
  });

  for (const key of ["password", "token", "api_key"]) {
    it(`refuses ${key} in config`, () => {
      assert.throws(() => database({ database: "app", [key]: "x" }), /credentialsRef/);
    });
  }

  it("refuses config that JSON cannot carry", () => {
    assert.throws(() => resourceSpecToProto(database({ bad: 1n }), "resources.db"), /resources\.db\.config\.bad: bigint/);
  });
});
