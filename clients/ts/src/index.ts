// Public API of the TypeScript client for Kailash Gateway (kgw).

export { AsyncWorkflowBuilder, WorkflowBuilder, type NodeOptions, type RetryPolicy } from "./builder.js";
export {
  KailashClient,
  Secrets,
  type ClientOptions,
  type ExecuteOptions,
  type ListOptions,
  type StoreSecretOptions,
  type TlsOptions,
} from "./client.js";
export {
  AlreadyExistsError,
  CancelledError,
  DeadlineExceededError,
  ExecutionNotFoundError,
  FailedPreconditionError,
  InvalidArgumentError,
  InvalidWorkflowError,
  KailashError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  ResourceNotFoundError,
  SecretNotFoundError,
  UnauthenticatedError,
  UnavailableError,
  WorkflowNotFoundError,
  type Violation,
} from "./errors.js";
export {
  cache,
  database,
  httpClient,
  ref,
  type CacheOptions,
  type DatabaseOptions,
  type HttpClientOptions,
  type ResourceSpec,
} from "./resources.js";
export type {
  EventType,
  Execution,
  ExecutionError,
  ExecutionEvent,
  ExecutionStatus,
  NodeExecution,
  NodeStatus,
  Page,
  Secret,
  WorkflowInfo,
  WorkflowSummary,
} from "./types.js";
export { Code } from "@connectrpc/connect";
