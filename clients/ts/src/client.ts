// The client: a KailashClient over Connect's gRPC transport for Node.js.

import { create } from "@bufbuild/protobuf";
import { type CallOptions, type Client, Code, ConnectError, type Interceptor, type Transport, createClient } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";
import { readFileSync } from "node:fs";
import type { SecureClientSessionOptions } from "node:http2";
import { AccessService, CreateApiKeyRequestSchema } from "#gen/kgw/v1/access_pb.js";
import { CheckResourceRequestSchema, ResourceService } from "#gen/kgw/v1/resource_pb.js";
import {
  ExecuteWorkflowRequestSchema,
  ExecutionService,
  StartExecutionRequestSchema,
  StreamExecutionRequestSchema,
} from "#gen/kgw/v1/execution_pb.js";
import { SecretService, StoreSecretRequestSchema } from "#gen/kgw/v1/secret_pb.js";
import { type Workflow, WorkflowService } from "#gen/kgw/v1/workflow_pb.js";
import { KailashError, ResumeTracker, toKailashError } from "./errors.js";
import {
  type ResourceSpec,
  cache,
  database,
  httpClient,
  ref,
  resourceSpecToProto,
} from "./resources.js";
import {
  type ApiKey,
  type CheckResult,
  type CreatedApiKey,
  type Execution,
  type ExecutionEvent,
  type Identity,
  type NamedResource,
  type Page,
  type Pool,
  type RoleBinding,
  type Secret,
  type WorkflowInfo,
  type WorkflowSummary,
  apiKeyFromProto,
  checkResultFromProto,
  identityFromProto,
  namedResourceFromProto,
  poolFromProto,
  roleBindingFromProto,
  eventFromProto,
  executionFromProto,
  executionStatusValue,
  secretFromProto,
  workflowInfoFromProto,
  workflowSummaryFromProto,
} from "./types.js";
import { createUnaryTransport } from "./unary.js";
import { dateToTimestamp, durationFromMs, toJsonObject } from "./values.js";

/**
 * TLS settings for a private CA or mTLS: PEM content (`ca`, `cert`, `key`) or
 * files to read when the client is created (`caFile`, `certFile`, `keyFile`).
 * TLS 1.2 is the minimum.
 */
export interface TlsOptions {
  /** CA certificate(s) the gateway's certificate must chain to, instead of the system roots. */
  ca?: string | Buffer;
  /** Client certificate (chain) for mTLS; needs `key`. */
  cert?: string | Buffer;
  /** Private key of `cert`. */
  key?: string | Buffer;
  /** Like `ca`, read from this file. */
  caFile?: string;
  /** Like `cert`, read from this file. */
  certFile?: string;
  /** Like `key`, read from this file. */
  keyFile?: string;
  /** Name the gateway's certificate must be valid for, when it differs from the target's host. */
  servername?: string;
}

function readPem(file: string, what: string): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    throw new Error(`TLS ${what}: cannot read ${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (!data.includes("-----BEGIN ")) {
    throw new Error(`TLS ${what}: ${JSON.stringify(file)} is not PEM (no -----BEGIN line)`);
  }
  return data;
}

/** Returns the Node.js TLS session options of `tls`. */
export function tlsSessionOptions(tls: TlsOptions): SecureClientSessionOptions {
  const out: SecureClientSessionOptions = { minVersion: "TLSv1.2" };
  for (const [field, file] of [
    ["ca", "caFile"],
    ["cert", "certFile"],
    ["key", "keyFile"],
  ] as const) {
    const inline = tls[field];
    const path = tls[file];
    if (inline !== undefined && path !== undefined) {
      throw new Error(`TLS: give ${field} or ${file}, not both`);
    }
    const value = path !== undefined ? readPem(path, field) : inline;
    if (value !== undefined) {
      out[field] = value;
    }
  }
  if ((out.cert === undefined) !== (out.key === undefined)) {
    throw new Error("TLS: a client certificate needs both cert and key");
  }
  if (tls.servername !== undefined) {
    out.servername = tls.servername;
  }
  return out;
}

/** Options of the KailashClient constructor. */
export interface ClientOptions {
  /** Bearer token (API key or JWT) sent as `authorization` metadata. */
  token?: string;
  /** TLS: false/undefined for plaintext, true for the system roots, or TlsOptions. */
  tls?: boolean | TlsOptions;
  /** Extra metadata sent with every call. */
  headers?: Record<string, string>;
  /** More interceptors, run after the one that adds the token. */
  interceptors?: Interceptor[];
  /** Use this transport instead of creating one (token/tls/headers are then ignored). */
  transport?: Transport;
}

/** Options of executeWorkflow, startExecution and streamWorkflow. */
export interface ExecuteOptions {
  /** JSON-compatible values; each key becomes a variable of every node. */
  parameters?: Record<string, unknown>;
  /** Resource name → spec (client.database(...), client.ref(...)). */
  resources?: Record<string, ResourceSpec>;
  /** JSON-compatible values visible to nodes as `context`. */
  context?: Record<string, unknown>;
  /** Overrides the workflow's timeout, in milliseconds. */
  timeoutMs?: number;
  /** A repeated request with the same key returns the first execution. */
  idempotencyKey?: string;
  /** Workflow version; 0 or undefined runs the latest. */
  version?: number;
  /** Aborts the call (for streams: stops the stream, not the execution). */
  signal?: AbortSignal;
}

/** Options of the list calls. */
export interface ListOptions {
  pageSize?: number;
  pageToken?: string;
  signal?: AbortSignal;
}

/** Options of putResource. */
export interface PutResourceOptions {
  /** Callers that may use the resource besides its creator and admins (principal patterns or `role:<name>`). */
  allowedCallers?: string[];
  signal?: AbortSignal;
}

/** Options of createApiKey. */
export interface CreateApiKeyOptions {
  /** Expire at this time. */
  expireTime?: Date;
  /** Expire after this many milliseconds (instead of expireTime). */
  ttlMs?: number;
  signal?: AbortSignal;
}

/** Options of storeSecret. */
export interface StoreSecretOptions {
  /** Expire after this many milliseconds. */
  ttlMs?: number;
  /** Expire at this time (instead of ttlMs). */
  expireTime?: Date;
  /** Host patterns the credentials may be sent to; empty means any. */
  allowedHosts?: string[];
  /** Callers that may use the secret besides its creator and admins (principal patterns or `role:<name>`). */
  allowedCallers?: string[];
  description?: string;
  signal?: AbortSignal;
}

function baseUrl(target: string, tls: boolean): string {
  const scheme = /^(https?):\/\//i.exec(target)?.[1]?.toLowerCase();
  if (scheme === "http" && tls) {
    throw new Error(`target ${target} is http (plaintext) but tls asks for TLS: use https://`);
  }
  if (scheme !== undefined) {
    return target;
  }
  return `${tls ? "https" : "http"}://${target}`;
}

/**
 * Adds the gateway's address and what to do to an UNAVAILABLE error raised
 * by the transport (no details: the gateway was not reached).
 */
function unreachableHint(err: unknown, target: string): unknown {
  const ce = ConnectError.from(err);
  if (ce.code !== Code.Unavailable || ce.details.length > 0 || ce.rawMessage.includes("kgw serve")) {
    return err;
  }
  return new ConnectError(
    `cannot reach the gateway at ${target}: ${ce.rawMessage} (is it running? start one with \`kgw serve\`, or pass its address to new KailashClient(target))`,
    Code.Unavailable,
    ce.metadata,
    undefined,
    err,
  );
}

/** Walks every page of a list call: fetch(token) returns one page. */
async function* walk<T>(fetch: (pageToken: string) => Promise<Page<T>>): AsyncGenerator<T, void, undefined> {
  let token = "";
  for (let pages = 0; pages < 1 << 20; pages++) {
    const page = await fetch(token);
    yield* page.items;
    if (page.nextPageToken === "") {
      return;
    }
    if (page.nextPageToken === token) {
      throw new Error("the gateway returned the same page token twice");
    }
    token = page.nextPageToken;
  }
  throw new Error("more than 2^20 pages");
}

function checkPageSize(size: number | undefined): number {
  const n = size ?? 0;
  if (!Number.isInteger(n) || n < 0 || n > 1000) {
    throw new Error("pageSize must be an integer between 0 (the gateway's default) and 1000");
  }
  return n;
}

function callOptions(signal: AbortSignal | undefined): CallOptions {
  return signal === undefined ? {} : { signal };
}

async function rethrow<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw toKailashError(err);
  }
}

function executionRequest(name: string, options: ExecuteOptions) {
  if (!name) {
    throw new Error("workflow name is empty");
  }
  const resources: Record<string, ReturnType<typeof resourceSpecToProto>> = {};
  for (const [key, spec] of Object.entries(options.resources ?? {})) {
    resources[key] = resourceSpecToProto(spec, `resources.${key}`);
  }
  return {
    workflow: name,
    version: options.version ?? 0,
    parameters: toJsonObject(options.parameters, "parameters"),
    resources,
    context: toJsonObject(options.context, "context"),
    timeout: durationFromMs(options.timeoutMs, "timeoutMs"),
    idempotencyKey: options.idempotencyKey ?? "",
  };
}

/**
 * Client of a Kailash Gateway, over gRPC (HTTP/2).
 *
 * ```ts
 * const client = new KailashClient("127.0.0.1:50051");
 * const response = await client.executeWorkflow("hello-database", { resources: { db: client.database({...}) } });
 * console.log(response.result.query?.message);
 * client.close();
 * ```
 *
 * Failed RPCs reject with KailashError subclasses; a workflow that fails
 * resolves with `status === "failed"`. Call close() (or use `using` with
 * Symbol.dispose) to release the HTTP/2 connection so the process can exit.
 */
export class KailashClient {
  /** The gateway address as given. */
  readonly target: string;
  /** Secret management; values go in and never come back out. */
  readonly secrets: Secrets;
  /** API keys, role bindings and whoami. */
  readonly access: Access;

  /** A PostgreSQL database resource. */
  readonly database = database;
  /** A Redis cache resource. */
  readonly cache = cache;
  /** An HTTP API resource. */
  readonly httpClient = httpClient;
  /** A server-side named resource. */
  readonly ref = ref;

  private readonly session: Http2SessionManager | undefined;
  /** @internal */ readonly workflows: Client<typeof WorkflowService>;
  /** @internal */ readonly executions: Client<typeof ExecutionService>;
  /** @internal */ readonly secretService: Client<typeof SecretService>;
  /** @internal */ readonly resourceService: Client<typeof ResourceService>;
  /** @internal */ readonly accessService: Client<typeof AccessService>;

  constructor(target = "127.0.0.1:50051", options: ClientOptions = {}) {
    this.target = target;
    let transport = options.transport;
    if (transport === undefined) {
      const tls = options.tls ?? /^https:\/\//i.test(target);
      const url = baseUrl(target, tls !== false);
      const nodeOptions: SecureClientSessionOptions =
        typeof tls === "object" ? tlsSessionOptions(tls) : tls ? { minVersion: "TLSv1.2" } : {};
      this.session = new Http2SessionManager(url, {}, nodeOptions);
      const metadata: Record<string, string> = { ...(options.headers ?? {}) };
      if (options.token) {
        metadata.authorization = `Bearer ${options.token}`;
      }
      const addMetadata: Interceptor = (next) => async (req) => {
        for (const [k, v] of Object.entries(metadata)) {
          req.header.set(k, v);
        }
        try {
          return await next(req);
        } catch (err) {
          throw unreachableHint(err, target);
        }
      };
      const grpc = createGrpcTransport({
        baseUrl: url,
        sessionManager: this.session,
        interceptors: [addMetadata, ...(options.interceptors ?? [])],
      });
      // Unary calls take the direct path (src/unary.ts) unless the caller
      // adds interceptors, which need Connect's request objects.
      transport =
        (options.interceptors ?? []).length === 0
          ? createUnaryTransport({
              session: this.session,
              metadata,
              fallback: grpc,
              mapError: (err) => unreachableHint(err, target),
            })
          : grpc;
    }
    this.workflows = createClient(WorkflowService, transport);
    this.executions = createClient(ExecutionService, transport);
    this.secretService = createClient(SecretService, transport);
    this.resourceService = createClient(ResourceService, transport);
    this.accessService = createClient(AccessService, transport);
    this.secrets = new Secrets(this);
    this.access = new Access(this);
  }

  /** Closes the HTTP/2 connection; calls in flight fail. A new call reconnects. */
  close(): void {
    this.session?.abort();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Registers a workflow (from builder.build()); `name` overrides the built name. Rejects with InvalidWorkflowError. */
  async registerWorkflow(name: string | undefined, workflow: Workflow, signal?: AbortSignal): Promise<WorkflowInfo> {
    const wf = { ...workflow };
    if (name) {
      wf.name = name;
    }
    if (!wf.name) {
      throw new Error("workflow name is empty");
    }
    const res = await rethrow(this.workflows.registerWorkflow({ workflow: wf }, callOptions(signal)));
    if (res.workflow === undefined) {
      throw new Error("RegisterWorkflow returned no workflow");
    }
    return workflowInfoFromProto(res.workflow);
  }

  /**
   * Checks a workflow exactly as registerWorkflow would, without storing it;
   * resolves with the definition as it would be stored (version 0). Rejects
   * with InvalidWorkflowError.
   */
  async validateWorkflow(name: string | undefined, workflow: Workflow, signal?: AbortSignal): Promise<WorkflowInfo> {
    const wf = { ...workflow };
    if (name) {
      wf.name = name;
    }
    if (!wf.name) {
      throw new Error("workflow name is empty");
    }
    const res = await rethrow(this.workflows.registerWorkflow({ workflow: wf, validateOnly: true }, callOptions(signal)));
    if (res.workflow === undefined) {
      throw new Error("RegisterWorkflow returned no workflow");
    }
    return workflowInfoFromProto(res.workflow);
  }

  /** Returns one version of a workflow (the latest for 0). Rejects with WorkflowNotFoundError. */
  async getWorkflow(name: string, version = 0, signal?: AbortSignal): Promise<WorkflowInfo> {
    const res = await rethrow(this.workflows.getWorkflow({ name, version }, callOptions(signal)));
    if (res.workflow === undefined) {
      throw new Error("GetWorkflow returned no workflow");
    }
    return workflowInfoFromProto(res.workflow);
  }

  /** Returns one page of workflow summaries, ordered by name. */
  async listWorkflows(options: ListOptions = {}): Promise<Page<WorkflowSummary>> {
    const res = await rethrow(
      this.workflows.listWorkflows(
        { pageSize: options.pageSize ?? 0, pageToken: options.pageToken ?? "" },
        callOptions(options.signal),
      ),
    );
    return { items: res.workflows.map(workflowSummaryFromProto), nextPageToken: res.nextPageToken };
  }

  /** Yields every workflow summary, ordered by name, fetching pages as the loop advances. */
  iterWorkflows(options: Omit<ListOptions, "pageToken"> = {}): AsyncGenerator<WorkflowSummary, void, undefined> {
    const pageSize = checkPageSize(options.pageSize);
    return walk((pageToken) => this.listWorkflows({ ...options, pageSize, pageToken }));
  }

  /** Deletes a workflow and all its versions; running executions finish. */
  async deleteWorkflow(name: string, signal?: AbortSignal): Promise<void> {
    await rethrow(this.workflows.deleteWorkflow({ name }, callOptions(signal)));
  }

  /** Runs a workflow and waits for it to end; check `status` and `error` of the result. */
  async executeWorkflow(name: string, options: ExecuteOptions = {}): Promise<Execution> {
    const req = create(ExecuteWorkflowRequestSchema, executionRequest(name, options));
    const res = await rethrow(this.executions.executeWorkflow(req, callOptions(options.signal)));
    if (res.execution === undefined) {
      throw new Error("ExecuteWorkflow returned no execution");
    }
    return executionFromProto(res.execution);
  }

  /** Starts a workflow and resolves with the execution id at once. */
  async startExecution(name: string, options: ExecuteOptions = {}): Promise<string> {
    const req = create(StartExecutionRequestSchema, executionRequest(name, options));
    const res = await rethrow(this.executions.startExecution(req, callOptions(options.signal)));
    return res.executionId;
  }

  /**
   * Starts a workflow and yields its events, ending with the terminal event
   * (`event.terminal`, carrying `event.execution`). Breaking out of the loop
   * cancels the stream, not the execution.
   */
  async *streamWorkflow(name: string, options: ExecuteOptions = {}): AsyncGenerator<ExecutionEvent, void, undefined> {
    const req = create(StreamExecutionRequestSchema, executionRequest(name, options));
    yield* this.events((signal) => this.executions.streamExecution(req, { signal }), options.signal);
  }

  /**
   * Yields the events of an existing execution with seq greater than
   * `afterSeq`, live until it ends. To resume after a broken stream, pass the
   * last seq seen: nothing is missed and nothing is seen twice.
   */
  async *watchExecution(
    executionId: string,
    afterSeq: number | bigint = 0,
    signal?: AbortSignal,
  ): AsyncGenerator<ExecutionEvent, void, undefined> {
    const req = { executionId, afterSeq: BigInt(afterSeq) };
    yield* this.events((s) => this.executions.watchExecution(req, { signal: s }), signal);
  }

  private async *events(
    open: (signal: AbortSignal) => AsyncIterable<{ event?: Parameters<typeof eventFromProto>[0] }>,
    outer: AbortSignal | undefined,
  ): AsyncGenerator<ExecutionEvent, void, undefined> {
    // Our own controller cancels the call when the consumer stops early.
    let controller = new AbortController();
    const onAbort = () => controller.abort(outer?.reason);
    outer?.addEventListener("abort", onAbort, { once: true });
    const tracker = new ResumeTracker();
    let stream = open(controller.signal);
    try {
      for (;;) {
        try {
          for await (const res of stream) {
            if (res.event !== undefined) {
              const event = eventFromProto(res.event);
              tracker.saw(event.executionId, event.seq);
              yield event;
            }
          }
          return;
        } catch (err) {
          const error = toKailashError(err);
          const resume = error instanceof KailashError ? tracker.resumePoint(error) : undefined;
          if (resume === undefined || outer?.aborted) {
            throw error;
          }
          // The gateway dropped a stream that fell behind: resume after the last event seen.
          controller.abort();
          controller = new AbortController();
          stream = this.executions.watchExecution(
            { executionId: resume.executionId, afterSeq: BigInt(resume.afterSeq) },
            { signal: controller.signal },
          );
        }
      }
    } finally {
      outer?.removeEventListener("abort", onAbort);
      controller.abort();
    }
  }

  /** Returns an execution's current state. Rejects with ExecutionNotFoundError. */
  async getExecution(executionId: string, signal?: AbortSignal): Promise<Execution> {
    const res = await rethrow(this.executions.getExecution({ executionId }, callOptions(signal)));
    if (res.execution === undefined) {
      throw new Error("GetExecution returned no execution");
    }
    return executionFromProto(res.execution);
  }

  /**
   * Returns one page of executions, newest first, optionally filtered by
   * workflow, status ("failed", …) and the principal that started them.
   */
  async listExecutions(options: ListOptions & ExecutionFilter = {}): Promise<Page<Execution>> {
    const res = await rethrow(
      this.executions.listExecutions(
        {
          workflow: options.workflow ?? "",
          status: options.status ? executionStatusValue(options.status) : 0,
          caller: options.caller ?? "",
          pageSize: options.pageSize ?? 0,
          pageToken: options.pageToken ?? "",
        },
        callOptions(options.signal),
      ),
    );
    return { items: res.executions.map(executionFromProto), nextPageToken: res.nextPageToken };
  }

  /** Yields every execution selected by the filters, newest first, across pages. */
  iterExecutions(
    options: Omit<ListOptions, "pageToken"> & ExecutionFilter = {},
  ): AsyncGenerator<Execution, void, undefined> {
    const pageSize = checkPageSize(options.pageSize);
    return walk((pageToken) => this.listExecutions({ ...options, pageSize, pageToken }));
  }

  /** Cancels an execution and resolves with its state after cancellation. */
  async cancelExecution(executionId: string, signal?: AbortSignal): Promise<Execution> {
    const res = await rethrow(this.executions.cancelExecution({ executionId }, callOptions(signal)));
    if (res.execution === undefined) {
      throw new Error("CancelExecution returned no execution");
    }
    return executionFromProto(res.execution);
  }

  // Named resources and pools.

  /**
   * Creates or replaces the named resource `name` (an operator's job), so
   * that requests say `client.ref(name)` instead of choosing hosts and secrets.
   */
  async putResource(name: string, spec: ResourceSpec, options: PutResourceOptions = {}): Promise<NamedResource> {
    if (!name) {
      throw new Error("resource name is empty");
    }
    const res = await rethrow(
      this.resourceService.putResource(
        { name, spec: resourceSpecToProto(spec, "spec"), allowedCallers: [...(options.allowedCallers ?? [])] },
        callOptions(options.signal),
      ),
    );
    if (res.resource === undefined) {
      throw new Error("PutResource returned no resource");
    }
    return namedResourceFromProto(res.resource);
  }

  /** Returns a named resource. Rejects with ResourceNotFoundError. */
  async getResource(name: string, signal?: AbortSignal): Promise<NamedResource> {
    const res = await rethrow(this.resourceService.getResource({ name }, callOptions(signal)));
    if (res.resource === undefined) {
      throw new Error("GetResource returned no resource");
    }
    return namedResourceFromProto(res.resource);
  }

  /** Returns one page of named resources, ordered by name. */
  async listResources(options: ListOptions = {}): Promise<Page<NamedResource>> {
    const res = await rethrow(
      this.resourceService.listResources(
        { pageSize: options.pageSize ?? 0, pageToken: options.pageToken ?? "" },
        callOptions(options.signal),
      ),
    );
    return { items: res.resources.map(namedResourceFromProto), nextPageToken: res.nextPageToken };
  }

  /** Yields every named resource, across pages. */
  iterResources(options: Omit<ListOptions, "pageToken"> = {}): AsyncGenerator<NamedResource, void, undefined> {
    const pageSize = checkPageSize(options.pageSize);
    return walk((pageToken) => this.listResources({ ...options, pageSize, pageToken }));
  }

  /** Deletes a named resource; its pools drain and close. */
  async deleteResource(name: string, signal?: AbortSignal): Promise<void> {
    await rethrow(this.resourceService.deleteResource({ name }, callOptions(signal)));
  }

  /** Returns one page of the live connection pools (never credentials). */
  async listPools(options: ListOptions = {}): Promise<Page<Pool>> {
    const res = await rethrow(
      this.resourceService.listPools(
        { pageSize: options.pageSize ?? 0, pageToken: options.pageToken ?? "" },
        callOptions(options.signal),
      ),
    );
    return { items: res.pools.map(poolFromProto), nextPageToken: res.nextPageToken };
  }

  /** Yields every live connection pool, across pages. */
  iterPools(options: Omit<ListOptions, "pageToken"> = {}): AsyncGenerator<Pool, void, undefined> {
    const pageSize = checkPageSize(options.pageSize);
    return walk((pageToken) => this.listPools({ ...options, pageSize, pageToken }));
  }

  /**
   * Connects to a resource and reports whether it is healthy: `target` is
   * the name of a named resource or a spec (`client.database({...})`,
   * `client.ref(name)`). Unhealthy is a result, not a rejection.
   */
  async checkResource(target: string | ResourceSpec, signal?: AbortSignal): Promise<CheckResult> {
    const req = create(CheckResourceRequestSchema, {});
    if (typeof target === "string") {
      if (!target) {
        throw new Error("resource name is empty");
      }
      req.target = { case: "name", value: target };
    } else {
      const spec = resourceSpecToProto(target, "target");
      req.target = spec.ref && !spec.type ? { case: "name", value: spec.ref } : { case: "spec", value: spec };
    }
    return checkResultFromProto(await rethrow(this.resourceService.checkResource(req, callOptions(signal))));
  }
}

/** API keys, role bindings and the caller's identity (`client.access`); all but whoami need the admin role. */
export class Access {
  constructor(private readonly client: KailashClient) {}

  /**
   * Creates an API key granting `roles` (admin, developer, operator, executor,
   * viewer, secrets-admin). The result's `key` is the only copy: the gateway
   * keeps a keyed hash.
   */
  async createApiKey(name: string, roles: string[], options: CreateApiKeyOptions = {}): Promise<CreatedApiKey> {
    if (options.ttlMs !== undefined && options.expireTime !== undefined) {
      throw new Error("give ttlMs or expireTime, not both");
    }
    if (options.ttlMs !== undefined && !(options.ttlMs > 0)) {
      throw new Error("ttlMs must be positive");
    }
    const req = create(CreateApiKeyRequestSchema, { name, roles: [...roles] });
    const expire = options.ttlMs !== undefined ? new Date(Date.now() + options.ttlMs) : options.expireTime;
    if (expire !== undefined) {
      req.expireTime = dateToTimestamp(expire);
    }
    const res = await rethrow(this.client.accessService.createApiKey(req, callOptions(options.signal)));
    if (res.apiKey === undefined) {
      throw new Error("CreateApiKey returned no key");
    }
    return { apiKey: apiKeyFromProto(res.apiKey), key: res.key };
  }

  /** Returns one page of API keys that are not revoked (metadata only), ordered by id. */
  async listApiKeys(options: ListOptions = {}): Promise<Page<ApiKey>> {
    const res = await rethrow(
      this.client.accessService.listApiKeys(
        { pageSize: options.pageSize ?? 0, pageToken: options.pageToken ?? "" },
        callOptions(options.signal),
      ),
    );
    return { items: res.apiKeys.map(apiKeyFromProto), nextPageToken: res.nextPageToken };
  }

  /** Yields every API key that is not revoked, across pages. */
  iterApiKeys(options: Omit<ListOptions, "pageToken"> = {}): AsyncGenerator<ApiKey, void, undefined> {
    const pageSize = checkPageSize(options.pageSize);
    return walk((pageToken) => this.listApiKeys({ ...options, pageSize, pageToken }));
  }

  /** Revokes the API key with this id (the `<id>` of `kgw_<id>_<secret>`). */
  async revokeApiKey(id: string, signal?: AbortSignal): Promise<void> {
    await rethrow(this.client.accessService.revokeApiKey({ id }, callOptions(signal)));
  }

  /** Gives roles to a principal (`jwt:<sub>`, `spiffe://…`, `cert:<CN>`, `key:<id>`) or a pattern ending in `*`. */
  async createRoleBinding(principal: string, roles: string[], signal?: AbortSignal): Promise<RoleBinding> {
    const res = await rethrow(
      this.client.accessService.createRoleBinding({ principal, roles: [...roles] }, callOptions(signal)),
    );
    if (res.roleBinding === undefined) {
      throw new Error("CreateRoleBinding returned no binding");
    }
    return roleBindingFromProto(res.roleBinding);
  }

  /** Deletes a role binding. */
  async deleteRoleBinding(id: string, signal?: AbortSignal): Promise<void> {
    await rethrow(this.client.accessService.deleteRoleBinding({ id }, callOptions(signal)));
  }

  /** Returns one page of role bindings, ordered by id. */
  async listRoleBindings(options: ListOptions = {}): Promise<Page<RoleBinding>> {
    const res = await rethrow(
      this.client.accessService.listRoleBindings(
        { pageSize: options.pageSize ?? 0, pageToken: options.pageToken ?? "" },
        callOptions(options.signal),
      ),
    );
    return { items: res.roleBindings.map(roleBindingFromProto), nextPageToken: res.nextPageToken };
  }

  /** Yields every role binding, across pages. */
  iterRoleBindings(options: Omit<ListOptions, "pageToken"> = {}): AsyncGenerator<RoleBinding, void, undefined> {
    const pageSize = checkPageSize(options.pageSize);
    return walk((pageToken) => this.listRoleBindings({ ...options, pageSize, pageToken }));
  }

  /** Resolves with the caller's principal, roles and authentication method. */
  async whoami(signal?: AbortSignal): Promise<Identity> {
    return identityFromProto(await rethrow(this.client.accessService.whoAmI({}, callOptions(signal))));
  }
}

/** Filters of listExecutions and iterExecutions. */
export interface ExecutionFilter {
  workflow?: string;
  /** "pending", "running", "completed", "failed", "cancelled" or "timed_out". */
  status?: string;
  /** Only executions started by this principal. */
  caller?: string;
}

/** Secret management (`client.secrets`). */
export class Secrets {
  constructor(private readonly client: KailashClient) {}

  /** Stores `value` (e.g. `{ user: "app", password: "…" }`) as the next version of `name`; resolves with its metadata. */
  async storeSecret(name: string, value: Record<string, unknown>, options: StoreSecretOptions = {}): Promise<Secret> {
    if (options.ttlMs !== undefined && options.expireTime !== undefined) {
      throw new Error("give ttlMs or expireTime, not both");
    }
    const json = toJsonObject(value, "value");
    if (json === undefined || Object.keys(json).length === 0) {
      throw new Error("secret value must be a non-empty object, e.g. { user, password }");
    }
    const req = create(StoreSecretRequestSchema, {
      name,
      value: json,
      description: options.description ?? "",
      allowedHosts: [...(options.allowedHosts ?? [])],
      allowedCallers: [...(options.allowedCallers ?? [])],
    });
    if (options.ttlMs !== undefined) {
      req.expiration = { case: "ttl", value: durationFromMs(options.ttlMs, "ttlMs")! };
    } else if (options.expireTime !== undefined) {
      req.expiration = { case: "expireTime", value: dateToTimestamp(options.expireTime) };
    }
    const res = await rethrow(this.client.secretService.storeSecret(req, callOptions(options.signal)));
    if (res.secret === undefined) {
      throw new Error("StoreSecret returned no secret");
    }
    return secretFromProto(res.secret);
  }

  /** Returns the metadata of the latest version. Rejects with SecretNotFoundError. */
  async getSecret(name: string, signal?: AbortSignal): Promise<Secret> {
    const res = await rethrow(this.client.secretService.getSecret({ name }, callOptions(signal)));
    if (res.secret === undefined) {
      throw new Error("GetSecret returned no secret");
    }
    return secretFromProto(res.secret);
  }

  /** Returns one page of secret metadata, ordered by name. */
  async listSecrets(options: ListOptions = {}): Promise<Page<Secret>> {
    const res = await rethrow(
      this.client.secretService.listSecrets(
        { pageSize: options.pageSize ?? 0, pageToken: options.pageToken ?? "" },
        callOptions(options.signal),
      ),
    );
    return { items: res.secrets.map(secretFromProto), nextPageToken: res.nextPageToken };
  }

  /** Yields the metadata of every secret, across pages. */
  iterSecrets(options: Omit<ListOptions, "pageToken"> = {}): AsyncGenerator<Secret, void, undefined> {
    const pageSize = checkPageSize(options.pageSize);
    return walk((pageToken) => this.listSecrets({ ...options, pageSize, pageToken }));
  }

  /** Replaces the callers allowed to use a secret, without storing a new value or version. */
  async updateSecretAccess(name: string, allowedCallers: string[], signal?: AbortSignal): Promise<Secret> {
    const res = await rethrow(
      this.client.secretService.updateSecretAccess({ name, allowedCallers: [...allowedCallers] }, callOptions(signal)),
    );
    if (res.secret === undefined) {
      throw new Error("UpdateSecretAccess returned no secret");
    }
    return secretFromProto(res.secret);
  }

  /** Deletes every version of a secret. */
  async deleteSecret(name: string, signal?: AbortSignal): Promise<void> {
    await rethrow(this.client.secretService.deleteSecret({ name }, callOptions(signal)));
  }
}
