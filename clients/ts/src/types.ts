// Plain JavaScript views of the gateway's messages.

import type { JsonObject } from "@bufbuild/protobuf";
import {
  type Execution as ExecutionMsg,
  type ExecutionError as ExecutionErrorMsg,
  type ExecutionEvent as ExecutionEventMsg,
  ExecutionStatus as ExecutionStatusEnum,
  LogLevel,
  type NodeExecution as NodeExecutionMsg,
  NodeStatus as NodeStatusEnum,
} from "#gen/kgw/v1/execution_pb.js";
import type {
  ApiKey as ApiKeyMsg,
  RoleBinding as RoleBindingMsg,
  WhoAmIResponse as WhoAmIResponseMsg,
} from "#gen/kgw/v1/access_pb.js";
import type {
  CheckResourceResponse as CheckResourceResponseMsg,
  Pool as PoolMsg,
  Resource as ResourceMsg,
  ResourceSpec as ResourceSpecMsg,
} from "#gen/kgw/v1/resource_pb.js";
import type { Secret as SecretMsg } from "#gen/kgw/v1/secret_pb.js";
import type { Workflow as WorkflowMsg, WorkflowSummary as WorkflowSummaryMsg } from "#gen/kgw/v1/workflow_pb.js";
import { durationToMs, timestampToDate } from "./values.js";

/** The status of an execution. */
export type ExecutionStatus =
  | "pending"
  | "running"
  | "completed"
  | "failed"
  | "cancelled"
  | "timed_out"
  | "unspecified";

/** The status of one node of an execution. */
export type NodeStatus =
  | "pending"
  | "running"
  | "retrying"
  | "completed"
  | "failed"
  | "skipped"
  | "cancelled"
  | "timed_out"
  | "unspecified";

/** The kind of an execution event. */
export type EventType =
  | "execution_started"
  | "node_started"
  | "node_log"
  | "node_retrying"
  | "node_completed"
  | "node_failed"
  | "execution_completed"
  | "execution_failed"
  | "execution_cancelled"
  | "execution_timed_out"
  | "unknown";

/** Why a node or an execution failed. */
export interface ExecutionError {
  nodeId: string;
  code: string;
  message: string;
  traceback: string;
}

/** The state of one node within an execution. */
export interface NodeExecution {
  nodeId: string;
  status: NodeStatus;
  attempts: number;
  startTime?: Date;
  endTime?: Date;
  durationMs?: number;
  error?: ExecutionError;
}

/**
 * One run of one workflow version, as executeWorkflow resolves it.
 * `result` maps node id to that node's `result` object, so
 * `execution.result.query.message` reads node `query`'s `message`.
 */
export interface Execution {
  executionId: string;
  workflow: string;
  version: number;
  status: ExecutionStatus;
  result: Record<string, JsonObject>;
  error?: ExecutionError;
  nodes: NodeExecution[];
  createTime?: Date;
  startTime?: Date;
  endTime?: Date;
  idempotencyKey: string;
}

/**
 * One step of an execution, as streamWorkflow and watchExecution yield it.
 * The fields that apply to `type` are set: node events carry `nodeId` and
 * `attempt`; node_log `level`, `message`, `fields`; node_retrying `error`,
 * `backoffMs`; node_completed `result`, `durationMs`; node_failed `error`;
 * execution_started `workflow`, `version`, `resumed`; the terminal events
 * (`terminal === true`) the final `execution`.
 */
export interface ExecutionEvent {
  executionId: string;
  seq: number;
  time?: Date;
  type: EventType;
  terminal: boolean;
  nodeId?: string;
  attempt?: number;
  workflow?: string;
  version?: number;
  resumed?: boolean;
  level?: "debug" | "info" | "warning" | "error" | "unspecified";
  message?: string;
  fields?: JsonObject;
  result?: JsonObject;
  error?: ExecutionError;
  backoffMs?: number;
  durationMs?: number;
  execution?: Execution;
}

/** Metadata of one secret version; the value is never returned. */
export interface Secret {
  name: string;
  version: number;
  keys: string[];
  description: string;
  createTime?: Date;
  expireTime?: Date;
  allowedHosts: string[];
  /** Callers that may use the secret besides its creator and admins. */
  allowedCallers: string[];
  /** Principal that first stored it; empty for secrets older than access control. */
  creator: string;
}

/** A stored workflow version, as registerWorkflow and getWorkflow resolve it. */
export interface WorkflowInfo {
  name: string;
  version: number;
  description: string;
  nodeIds: string[];
  timeoutMs?: number;
  labels: Record<string, string>;
  createTime?: Date;
}

/** One entry of listWorkflows. */
export interface WorkflowSummary {
  name: string;
  latestVersion: number;
  description: string;
  nodeCount: number;
  requiredResources: string[];
  labels: Record<string, string>;
  createTime?: Date;
}

/** One page of a list call; pass `nextPageToken` as `pageToken` for the next ("" = last page). */
export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

const TERMINAL = new Set<EventType>([
  "execution_completed",
  "execution_failed",
  "execution_cancelled",
  "execution_timed_out",
]);

function enumName<E extends Record<number, string>>(e: E, prefix: string, value: number): string {
  const name = e[value];
  if (name === undefined || name.endsWith("UNSPECIFIED")) {
    return "unspecified";
  }
  return (name.startsWith(prefix) ? name.slice(prefix.length) : name).toLowerCase();
}

/** Returns the lower-case name of an ExecutionStatus value, e.g. "completed". */
export function executionStatusName(value: ExecutionStatusEnum): ExecutionStatus {
  return enumName(ExecutionStatusEnum, "", value) as ExecutionStatus;
}

/** Returns the ExecutionStatus value of a lower-case name such as "failed". */
export function executionStatusValue(name: string): ExecutionStatusEnum {
  const key = name.toUpperCase();
  const value = (ExecutionStatusEnum as unknown as Record<string, number>)[key];
  if (value === undefined || key === "UNSPECIFIED") {
    throw new RangeError(
      `unknown execution status "${name}"; use one of pending, running, completed, failed, cancelled, timed_out`,
    );
  }
  return value;
}

/** Converts an ExecutionError message. */
export function executionErrorFromProto(msg: ExecutionErrorMsg): ExecutionError {
  return { nodeId: msg.nodeId, code: msg.code, message: msg.message, traceback: msg.traceback };
}

function nodeFromProto(msg: NodeExecutionMsg): NodeExecution {
  const out: NodeExecution = {
    nodeId: msg.nodeId,
    status: enumName(NodeStatusEnum, "", msg.status) as NodeStatus,
    attempts: msg.attempts,
  };
  assign(out, "startTime", timestampToDate(msg.startTime));
  assign(out, "endTime", timestampToDate(msg.endTime));
  assign(out, "durationMs", durationToMs(msg.duration));
  assign(out, "error", msg.error && executionErrorFromProto(msg.error));
  return out;
}

/** Converts an Execution message. */
export function executionFromProto(msg: ExecutionMsg): Execution {
  const out: Execution = {
    executionId: msg.id,
    workflow: msg.workflow,
    version: msg.version,
    status: executionStatusName(msg.status),
    result: { ...msg.result },
    nodes: msg.nodes.map(nodeFromProto),
    idempotencyKey: msg.idempotencyKey,
  };
  assign(out, "error", msg.error && executionErrorFromProto(msg.error));
  assign(out, "createTime", timestampToDate(msg.createTime));
  assign(out, "startTime", timestampToDate(msg.startTime));
  assign(out, "endTime", timestampToDate(msg.endTime));
  return out;
}

/** Converts an ExecutionEvent message. */
export function eventFromProto(msg: ExecutionEventMsg): ExecutionEvent {
  const ev = msg.event;
  const type: EventType = ev.case === undefined ? "unknown" : (snake(ev.case) as EventType);
  const out: ExecutionEvent = {
    executionId: msg.executionId,
    seq: Number(msg.seq),
    type,
    terminal: TERMINAL.has(type),
  };
  assign(out, "time", timestampToDate(msg.time));
  switch (ev.case) {
    case "executionStarted":
      out.workflow = ev.value.workflow;
      out.version = ev.value.version;
      out.resumed = ev.value.resumed;
      break;
    case "nodeStarted":
      out.nodeId = ev.value.nodeId;
      out.attempt = ev.value.attempt;
      break;
    case "nodeLog":
      out.nodeId = ev.value.nodeId;
      out.attempt = ev.value.attempt;
      out.level = enumName(LogLevel, "", ev.value.level) as ExecutionEvent["level"];
      out.message = ev.value.message;
      out.fields = ev.value.fields ?? {};
      break;
    case "nodeRetrying":
      out.nodeId = ev.value.nodeId;
      out.attempt = ev.value.attempt;
      assign(out, "error", ev.value.error && executionErrorFromProto(ev.value.error));
      assign(out, "backoffMs", durationToMs(ev.value.backoff));
      break;
    case "nodeCompleted":
      out.nodeId = ev.value.nodeId;
      out.attempt = ev.value.attempt;
      out.result = ev.value.result ?? {};
      assign(out, "durationMs", durationToMs(ev.value.duration));
      break;
    case "nodeFailed":
      out.nodeId = ev.value.nodeId;
      out.attempt = ev.value.attempt;
      assign(out, "error", ev.value.error && executionErrorFromProto(ev.value.error));
      break;
    case "executionCompleted":
    case "executionFailed":
    case "executionCancelled":
    case "executionTimedOut":
      assign(out, "execution", ev.value.execution && executionFromProto(ev.value.execution));
      break;
    default:
      break;
  }
  return out;
}

/** Converts a Secret message. */
export function secretFromProto(msg: SecretMsg): Secret {
  const out: Secret = {
    name: msg.name,
    version: msg.version,
    keys: [...msg.keys],
    description: msg.description,
    allowedHosts: [...msg.allowedHosts],
    allowedCallers: [...msg.allowedCallers],
    creator: msg.creator,
  };
  assign(out, "createTime", timestampToDate(msg.createTime));
  assign(out, "expireTime", timestampToDate(msg.expireTime));
  return out;
}

/** Converts a Workflow message. */
export function workflowInfoFromProto(msg: WorkflowMsg): WorkflowInfo {
  const out: WorkflowInfo = {
    name: msg.name,
    version: msg.version,
    description: msg.description,
    nodeIds: msg.nodes.map((n) => n.id),
    labels: { ...msg.labels },
  };
  assign(out, "timeoutMs", durationToMs(msg.timeout));
  assign(out, "createTime", timestampToDate(msg.createTime));
  return out;
}

/** Converts a WorkflowSummary message. */
export function workflowSummaryFromProto(msg: WorkflowSummaryMsg): WorkflowSummary {
  const out: WorkflowSummary = {
    name: msg.name,
    latestVersion: msg.latestVersion,
    description: msg.description,
    nodeCount: msg.nodeCount,
    requiredResources: [...msg.requiredResources],
    labels: { ...msg.labels },
  };
  assign(out, "createTime", timestampToDate(msg.createTime));
  return out;
}

// Sets an optional property only when the value is defined, so that objects
// have no keys whose value is undefined (deepStrictEqual-friendly).
function assign<T extends object, K extends keyof T>(obj: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) {
    obj[key] = value;
  }
}

function snake(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** A server-side named resource; requests use it with `client.ref(name)`. */
export interface NamedResource {
  name: string;
  type: string;
  config: JsonObject;
  credentialsRef: string;
  credentialsKey: string;
  /** The stored spec as the gateway returned it. */
  spec?: ResourceSpecMsg;
  createTime?: Date;
  updateTime?: Date;
  allowedCallers: string[];
  creator: string;
}

/** The live state of one connection pool (never credentials). */
export interface Pool {
  key: string;
  type: string;
  target: string;
  secretName: string;
  secretVersion: number;
  size: number;
  idle: number;
  inUse: number;
  maxSize: number;
  acquireCount: bigint;
  acquireWaitMs?: number;
  errorCount: bigint;
  lastError: string;
  draining: boolean;
}

/** The outcome of checkResource: unhealthy is a result, not an error. */
export interface CheckResult {
  healthy: boolean;
  message: string;
  latencyMs?: number;
}

/** Metadata of an API key; never the key itself. */
export interface ApiKey {
  id: string;
  name: string;
  roles: string[];
  createTime?: Date;
  expireTime?: Date;
  lastUsedTime?: Date;
  creator: string;
}

/** What createApiKey resolves with: the metadata, and the key, which the gateway never shows again. */
export interface CreatedApiKey {
  apiKey: ApiKey;
  key: string;
}

/** Roles given to a principal or a principal pattern ending in `*`. */
export interface RoleBinding {
  id: string;
  principal: string;
  roles: string[];
  createTime?: Date;
  creator: string;
}

/** Who the gateway thinks the caller is. */
export interface Identity {
  principal: string;
  roles: string[];
  method: string;
}

/** Converts a Resource message. */
export function namedResourceFromProto(msg: ResourceMsg): NamedResource {
  const out: NamedResource = {
    name: msg.name,
    type: msg.spec?.type ?? "",
    config: (msg.spec?.config ?? {}) as JsonObject,
    credentialsRef: msg.spec?.credentialsRef ?? "",
    credentialsKey: msg.spec?.credentialsKey ?? "",
    allowedCallers: [...msg.allowedCallers],
    creator: msg.creator,
  };
  assign(out, "spec", msg.spec);
  assign(out, "createTime", timestampToDate(msg.createTime));
  assign(out, "updateTime", timestampToDate(msg.updateTime));
  return out;
}

/** Converts a Pool message. */
export function poolFromProto(msg: PoolMsg): Pool {
  const out: Pool = {
    key: msg.key,
    type: msg.type,
    target: msg.target,
    secretName: msg.secretName,
    secretVersion: msg.secretVersion,
    size: msg.size,
    idle: msg.idle,
    inUse: msg.inUse,
    maxSize: msg.maxSize,
    acquireCount: msg.acquireCount,
    errorCount: msg.errorCount,
    lastError: msg.lastError,
    draining: msg.draining,
  };
  assign(out, "acquireWaitMs", durationToMs(msg.acquireWait));
  return out;
}

/** Converts a CheckResourceResponse. */
export function checkResultFromProto(msg: CheckResourceResponseMsg): CheckResult {
  const out: CheckResult = { healthy: msg.healthy, message: msg.message };
  assign(out, "latencyMs", durationToMs(msg.latency));
  return out;
}

/** Converts an ApiKey message. */
export function apiKeyFromProto(msg: ApiKeyMsg): ApiKey {
  const out: ApiKey = { id: msg.id, name: msg.name, roles: [...msg.roles], creator: msg.creator };
  assign(out, "createTime", timestampToDate(msg.createTime));
  assign(out, "expireTime", timestampToDate(msg.expireTime));
  assign(out, "lastUsedTime", timestampToDate(msg.lastUsedTime));
  return out;
}

/** Converts a RoleBinding message. */
export function roleBindingFromProto(msg: RoleBindingMsg): RoleBinding {
  const out: RoleBinding = { id: msg.id, principal: msg.principal, roles: [...msg.roles], creator: msg.creator };
  assign(out, "createTime", timestampToDate(msg.createTime));
  return out;
}

/** Converts a WhoAmIResponse. */
export function identityFromProto(msg: WhoAmIResponseMsg): Identity {
  return { principal: msg.principal, roles: [...msg.roles], method: msg.method };
}
