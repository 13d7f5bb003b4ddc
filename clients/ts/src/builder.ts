// Building workflow definitions in the shape of the Kailash Python SDK.

import { clone, create } from "@bufbuild/protobuf";
import {
  ConnectionSchema,
  NodeSchema,
  RetryPolicySchema,
  type RetryPolicy as RetryPolicyMsg,
  type Workflow,
  WorkflowSchema,
} from "#gen/kgw/v1/workflow_pb.js";
import { durationFromMs } from "./values.js";

/**
 * How often and how far apart a failing node is retried. `maxAttempts`
 * counts the first attempt; unset fields take the gateway's defaults
 * (1 s initial backoff, 60 s maximum, multiplier 2).
 */
export interface RetryPolicy {
  maxAttempts: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  multiplier?: number;
}

/** Options of addAsyncCode. */
export interface NodeOptions {
  /** Names of the request resources the node may open with get_resource(name). */
  requiredResources?: readonly string[];
  /** Limit for one attempt; the gateway's default is 30 s. */
  timeoutMs?: number;
  /** Total attempts as a number, or a RetryPolicy. */
  retry?: number | RetryPolicy;
  /** Human-readable description. */
  description?: string;
}

function retryToProto(retry: number | RetryPolicy): RetryPolicyMsg {
  const policy = typeof retry === "number" ? { maxAttempts: retry } : retry;
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) {
    throw new RangeError(`maxAttempts must be an integer of at least 1, got ${policy.maxAttempts}`);
  }
  const msg = create(RetryPolicySchema, { maxAttempts: policy.maxAttempts, multiplier: policy.multiplier ?? 0 });
  msg.initialBackoff = durationFromMs(policy.initialBackoffMs, "initialBackoffMs");
  msg.maxBackoff = durationFromMs(policy.maxBackoffMs, "maxBackoffMs");
  return msg;
}

/**
 * Builds a workflow: a DAG of Starlark code nodes and the connections
 * between them. Every method but build() returns the builder:
 *
 * ```ts
 * const workflow = new AsyncWorkflowBuilder("hello-database")
 *   .addAsyncCode("query", code, { requiredResources: ["db"] })
 *   .build();
 * ```
 *
 * The gateway validates the definition completely at registration; build()
 * only catches duplicate node ids and connections to unknown nodes.
 */
export class AsyncWorkflowBuilder {
  private readonly workflow: Workflow;
  private readonly ids = new Set<string>();

  constructor(name: string, description = "") {
    this.workflow = create(WorkflowSchema, { name, description });
  }

  /** Adds a code node; its top-level `result` dict is the node's output. */
  addAsyncCode(nodeId: string, code: string, options: NodeOptions = {}): this {
    if (this.ids.has(nodeId)) {
      throw new Error(`duplicate node id "${nodeId}"`);
    }
    const node = create(NodeSchema, {
      id: nodeId,
      code,
      requiredResources: [...(options.requiredResources ?? [])],
      description: options.description ?? "",
    });
    node.timeout = durationFromMs(options.timeoutMs, "timeoutMs");
    if (options.retry !== undefined) {
      node.retry = retryToProto(options.retry);
    }
    this.workflow.nodes.push(node);
    this.ids.add(nodeId);
    return this;
  }

  /** Same as addAsyncCode: every gateway node is the same kind. */
  addCode(nodeId: string, code: string, options: NodeOptions = {}): this {
    return this.addAsyncCode(nodeId, code, options);
  }

  /**
   * Connects an upstream node's result to a downstream node. With
   * `fromOutput = "x"` the upstream `result["x"]` becomes variable `toInput`
   * (or `x`). With `fromOutput = null` (the SDK's `None, None`) every key of
   * the upstream result becomes a variable of the same name ("pass all").
   */
  addConnection(fromNode: string, fromOutput: string | null, toNode: string, toInput: string | null = null): this {
    this.workflow.connections.push(
      create(ConnectionSchema, { fromNode, fromOutput: fromOutput ?? "", toNode, toInput: toInput ?? "" }),
    );
    return this;
  }

  /** Sets the workflow's description. */
  setDescription(description: string): this {
    this.workflow.description = description;
    return this;
  }

  /** Sets the limit for a whole execution (the gateway's default is 300 s). */
  setTimeout(timeoutMs: number): this {
    this.workflow.timeout = durationFromMs(timeoutMs, "timeoutMs");
    return this;
  }

  /** Replaces the workflow's labels. */
  setLabels(labels: Record<string, string>): this {
    this.workflow.labels = { ...labels };
    return this;
  }

  /** Returns the definition as a kgw.v1.Workflow message (a copy). */
  build(): Workflow {
    if (this.ids.size === 0) {
      throw new Error(`workflow "${this.workflow.name}" has no nodes`);
    }
    for (const c of this.workflow.connections) {
      for (const end of [c.fromNode, c.toNode]) {
        if (!this.ids.has(end)) {
          throw new Error(`connection "${c.fromNode}" -> "${c.toNode}" names unknown node "${end}"`);
        }
      }
    }
    return clone(WorkflowSchema, this.workflow);
  }
}

/** WorkflowBuilder is AsyncWorkflowBuilder under the SDK's other name. */
export { AsyncWorkflowBuilder as WorkflowBuilder };
