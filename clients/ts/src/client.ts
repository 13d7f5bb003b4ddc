// The client: a KailashClient over Connect's gRPC transport for Node.js.

import { create } from "@bufbuild/protobuf";
import { type CallOptions, type Client, type Interceptor, type Transport, createClient } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";
import type { SecureClientSessionOptions } from "node:http2";
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
  type Execution,
  type ExecutionEvent,
  type Page,
  type Secret,
  type WorkflowInfo,
  type WorkflowSummary,
  eventFromProto,
  executionFromProto,
  executionStatusValue,
  secretFromProto,
  workflowInfoFromProto,
  workflowSummaryFromProto,
} from "./types.js";
import { dateToTimestamp, durationFromMs, toJsonObject } from "./values.js";

/** TLS settings: true for TLS with the system roots, or PEM material for private CAs and mTLS. */
export interface TlsOptions {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  servername?: string;
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

/** Options of storeSecret. */
export interface StoreSecretOptions {
  /** Expire after this many milliseconds. */
  ttlMs?: number;
  /** Expire at this time (instead of ttlMs). */
  expireTime?: Date;
  /** Host patterns the credentials may be sent to; empty means any. */
  allowedHosts?: string[];
  description?: string;
  signal?: AbortSignal;
}

function baseUrl(target: string, tls: boolean): string {
  if (/^https?:\/\//.test(target)) {
    return target;
  }
  return `${tls ? "https" : "http"}://${target}`;
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

  constructor(target = "127.0.0.1:50051", options: ClientOptions = {}) {
    this.target = target;
    let transport = options.transport;
    if (transport === undefined) {
      const tls = options.tls ?? false;
      const url = baseUrl(target, tls !== false);
      const nodeOptions: SecureClientSessionOptions = typeof tls === "object" ? { ...tls } : {};
      this.session = new Http2SessionManager(url, {}, nodeOptions);
      const metadata: Record<string, string> = { ...(options.headers ?? {}) };
      if (options.token) {
        metadata.authorization = `Bearer ${options.token}`;
      }
      const addMetadata: Interceptor = (next) => async (req) => {
        for (const [k, v] of Object.entries(metadata)) {
          req.header.set(k, v);
        }
        return next(req);
      };
      transport = createGrpcTransport({
        baseUrl: url,
        sessionManager: this.session,
        interceptors: [addMetadata, ...(options.interceptors ?? [])],
      });
    }
    this.workflows = createClient(WorkflowService, transport);
    this.executions = createClient(ExecutionService, transport);
    this.secretService = createClient(SecretService, transport);
    this.secrets = new Secrets(this);
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

  /** Returns one page of executions, newest first, optionally filtered by workflow and status ("failed", …). */
  async listExecutions(
    options: ListOptions & { workflow?: string; status?: string } = {},
  ): Promise<Page<Execution>> {
    const res = await rethrow(
      this.executions.listExecutions(
        {
          workflow: options.workflow ?? "",
          status: options.status ? executionStatusValue(options.status) : 0,
          pageSize: options.pageSize ?? 0,
          pageToken: options.pageToken ?? "",
        },
        callOptions(options.signal),
      ),
    );
    return { items: res.executions.map(executionFromProto), nextPageToken: res.nextPageToken };
  }

  /** Cancels an execution and resolves with its state after cancellation. */
  async cancelExecution(executionId: string, signal?: AbortSignal): Promise<Execution> {
    const res = await rethrow(this.executions.cancelExecution({ executionId }, callOptions(signal)));
    if (res.execution === undefined) {
      throw new Error("CancelExecution returned no execution");
    }
    return executionFromProto(res.execution);
  }
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

  /** Deletes every version of a secret. */
  async deleteSecret(name: string, signal?: AbortSignal): Promise<void> {
    await rethrow(this.client.secretService.deleteSecret({ name }, callOptions(signal)));
  }
}
