// Every RPC of the kgw.v1 services has a method on the client. The RPC list
// comes from the generated descriptors in gen/, so an RPC added to the proto
// without a client method fails here.

import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { dirname } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { KailashClient } from "../../src/index.js";

/** RPC full name → method path on the client ("secrets.storeSecret" is client.secrets.storeSecret). */
const CLIENT_METHODS: Record<string, string> = {
  "kgw.v1.WorkflowService.RegisterWorkflow": "registerWorkflow",
  "kgw.v1.WorkflowService.GetWorkflow": "getWorkflow",
  "kgw.v1.WorkflowService.ListWorkflows": "listWorkflows",
  "kgw.v1.WorkflowService.DeleteWorkflow": "deleteWorkflow",
  "kgw.v1.ExecutionService.ExecuteWorkflow": "executeWorkflow",
  "kgw.v1.ExecutionService.StartExecution": "startExecution",
  "kgw.v1.ExecutionService.StreamExecution": "streamWorkflow",
  "kgw.v1.ExecutionService.WatchExecution": "watchExecution",
  "kgw.v1.ExecutionService.GetExecution": "getExecution",
  "kgw.v1.ExecutionService.ListExecutions": "listExecutions",
  "kgw.v1.ExecutionService.CancelExecution": "cancelExecution",
  "kgw.v1.SecretService.StoreSecret": "secrets.storeSecret",
  "kgw.v1.SecretService.GetSecret": "secrets.getSecret",
  "kgw.v1.SecretService.ListSecrets": "secrets.listSecrets",
  "kgw.v1.SecretService.DeleteSecret": "secrets.deleteSecret",
  "kgw.v1.SecretService.UpdateSecretAccess": "secrets.updateSecretAccess",
  "kgw.v1.ResourceService.PutResource": "putResource",
  "kgw.v1.ResourceService.GetResource": "getResource",
  "kgw.v1.ResourceService.ListResources": "listResources",
  "kgw.v1.ResourceService.DeleteResource": "deleteResource",
  "kgw.v1.ResourceService.ListPools": "listPools",
  "kgw.v1.ResourceService.CheckResource": "checkResource",
  "kgw.v1.AccessService.CreateApiKey": "access.createApiKey",
  "kgw.v1.AccessService.ListApiKeys": "access.listApiKeys",
  "kgw.v1.AccessService.RevokeApiKey": "access.revokeApiKey",
  "kgw.v1.AccessService.CreateRoleBinding": "access.createRoleBinding",
  "kgw.v1.AccessService.DeleteRoleBinding": "access.deleteRoleBinding",
  "kgw.v1.AccessService.ListRoleBindings": "access.listRoleBindings",
  "kgw.v1.AccessService.WhoAmI": "access.whoami",
};

/** Every List RPC also has an iterator over all pages. */
const ITERATORS: Record<string, string> = {
  "kgw.v1.WorkflowService.ListWorkflows": "iterWorkflows",
  "kgw.v1.ExecutionService.ListExecutions": "iterExecutions",
  "kgw.v1.SecretService.ListSecrets": "secrets.iterSecrets",
  "kgw.v1.ResourceService.ListResources": "iterResources",
  "kgw.v1.ResourceService.ListPools": "iterPools",
  "kgw.v1.AccessService.ListApiKeys": "access.iterApiKeys",
  "kgw.v1.AccessService.ListRoleBindings": "access.iterRoleBindings",
};

interface ServiceDesc {
  kind: string;
  typeName: string;
  methods: { name: string }[];
}

async function rpcs(): Promise<Set<string>> {
  const dir = dirname(fileURLToPath(import.meta.resolve("#gen/kgw/v1/workflow_pb.js")));
  const found = new Set<string>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith("_pb.js"))) {
    const mod = (await import(`#gen/kgw/v1/${file}`)) as Record<string, unknown>;
    for (const value of Object.values(mod)) {
      const desc = value as Partial<ServiceDesc> | null;
      if (desc !== null && typeof desc === "object" && desc.kind === "service" && desc.methods) {
        for (const m of desc.methods) {
          found.add(`${desc.typeName}.${m.name}`);
        }
      }
    }
  }
  return found;
}

function resolve(obj: unknown, path: string): unknown {
  let cur = obj;
  for (const part of path.split(".")) {
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

describe("API parity with the proto", () => {
  it("has a method for every RPC and an iterator for every List RPC", async () => {
    const all = await rpcs();
    assert.ok(all.size >= 20, `found only ${[...all].join(", ")}: is gen/ copied in?`);
    const missing = [...all].filter((r) => !(r in CLIENT_METHODS)).sort();
    assert.deepEqual(missing, [], "RPCs without a TypeScript client method (add one, then list it in CLIENT_METHODS)");
    const stale = Object.keys(CLIENT_METHODS).filter((r) => !all.has(r));
    assert.deepEqual(stale, [], "CLIENT_METHODS lists RPCs the proto lacks");
    const lists = [...all].filter((r) => r.split(".").pop()!.startsWith("List")).sort();
    assert.deepEqual(lists, Object.keys(ITERATORS).sort(), "every List RPC needs an iter* method");

    const client = new KailashClient("127.0.0.1:1");
    try {
      for (const [rpc, path] of [...Object.entries(CLIENT_METHODS), ...Object.entries(ITERATORS)]) {
        assert.equal(typeof resolve(client, path), "function", `client.${path} for ${rpc}`);
      }
    } finally {
      client.close();
    }
  });
});
