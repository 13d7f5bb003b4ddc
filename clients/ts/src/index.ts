// Public API of the TypeScript client for Kailash Gateway (kgw).

export { AsyncWorkflowBuilder, WorkflowBuilder, type NodeOptions, type RetryPolicy } from "./builder.js";
export {
  Access,
  KailashClient,
  Secrets,
  type ClientOptions,
  type CreateApiKeyOptions,
  type ExecuteOptions,
  type ExecutionFilter,
  type ListOptions,
  type PutResourceOptions,
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
  ApiKey,
  CheckResult,
  CreatedApiKey,
  EventType,
  Execution,
  ExecutionError,
  ExecutionEvent,
  ExecutionStatus,
  Identity,
  NamedResource,
  NodeExecution,
  NodeStatus,
  Page,
  Pool,
  RoleBinding,
  Secret,
  WorkflowInfo,
  WorkflowSummary,
} from "./types.js";
export { loadWorkflowFile, parseWorkflow, WorkflowFileError, type FileProblem } from "./workflowFile.js";
export { Code } from "@connectrpc/connect";
