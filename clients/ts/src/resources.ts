// Resource specifications: what a node may reach through get_resource(name).

import { create } from "@bufbuild/protobuf";
import { type ResourceSpec as ResourceSpecMsg, ResourceSpecSchema } from "#gen/kgw/v1/resource_pb.js";
import { toJsonObject } from "./values.js";

/**
 * One resource of a request: either `type` + `config` inline, or `ref`
 * naming a resource stored on the server. Credentials never travel in a
 * spec: `credentialsRef` names a secret stored in the gateway.
 */
export interface ResourceSpec {
  type?: "database" | "cache" | "http_client" | (string & {});
  config?: Record<string, unknown>;
  credentialsRef?: string;
  credentialsKey?: string;
  ref?: string;
}

const CREDENTIAL_KEYS = ["password", "token", "api_key", "apiKey"];

function config(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  for (const key of CREDENTIAL_KEYS) {
    if (key in extra) {
      throw new Error(`"${key}" is a credential: store it with secrets.storeSecret and pass credentialsRef`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(base)) {
    if (v !== undefined) {
      out[k] = v;
    }
  }
  return { ...out, ...extra };
}

/** Options of database(). Extra keys (sslmode, min_size, max_size, timeout, command_timeout, server_settings) go into config. */
export interface DatabaseOptions {
  host?: string;
  port?: number;
  database?: string;
  credentialsRef?: string;
  [key: string]: unknown;
}

/** A PostgreSQL database. */
export function database(options: DatabaseOptions = {}): ResourceSpec {
  const { host = "localhost", port = 5432, database: db, credentialsRef, ...rest } = options;
  return { type: "database", config: config({ host, port, database: db }, rest), credentialsRef: credentialsRef ?? "" };
}

/** Options of cache(). Extra keys (tls, decode_responses) go into config. */
export interface CacheOptions {
  host?: string;
  port?: number;
  db?: number;
  credentialsRef?: string;
  [key: string]: unknown;
}

/** A Redis cache. */
export function cache(options: CacheOptions = {}): ResourceSpec {
  const { host = "localhost", port = 6379, db = 0, credentialsRef, ...rest } = options;
  return { type: "cache", config: config({ host, port, db }, rest), credentialsRef: credentialsRef ?? "" };
}

/** Options of httpClient(). Extra keys (timeout, headers, connection_limit, keepalive_timeout, max_response_bytes) go into config. */
export interface HttpClientOptions {
  baseUrl: string;
  credentialsRef?: string;
  credentialsKey?: string;
  [key: string]: unknown;
}

/** An HTTP API; credentials go only to the origin of baseUrl. */
export function httpClient(options: HttpClientOptions): ResourceSpec {
  const { baseUrl, credentialsRef, credentialsKey, ...rest } = options;
  return {
    type: "http_client",
    config: config({ base_url: baseUrl }, rest),
    credentialsRef: credentialsRef ?? "",
    credentialsKey: credentialsKey ?? "",
  };
}

/** A server-side named resource, stored by an operator with PutResource. */
export function ref(name: string): ResourceSpec {
  return { ref: name };
}

/** Converts a ResourceSpec to its message. */
export function resourceSpecToProto(spec: ResourceSpec, path = "resource"): ResourceSpecMsg {
  const msg = create(ResourceSpecSchema, {
    type: spec.type ?? "",
    credentialsRef: spec.credentialsRef ?? "",
    credentialsKey: spec.credentialsKey ?? "",
    ref: spec.ref ?? "",
  });
  if (spec.config !== undefined && Object.keys(spec.config).length > 0) {
    msg.config = toJsonObject(spec.config, `${path}.config`);
  }
  return msg;
}
