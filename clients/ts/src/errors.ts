// Typed errors built from gRPC status details (google.rpc.ErrorInfo, BadRequest).

import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

/** One problem with a request: the field (e.g. `nodes[query].code`) and what is wrong. */
export interface Violation {
  readonly field: string;
  readonly description: string;
}

/** Options of the KailashError constructor. */
export interface KailashErrorOptions {
  domain?: string;
  metadata?: Record<string, string>;
  violations?: readonly Violation[];
  cause?: unknown;
}

/**
 * An RPC to the gateway failed. `code` is the gRPC status code (Connect's
 * `Code`, numerically equal to gRPC's), `reason` the stable ErrorInfo reason
 * (e.g. "WORKFLOW_NOT_FOUND"; "" when the server sent none), `violations` the
 * BadRequest field violations of an invalid request.
 *
 * A workflow that fails while running is not an error: executeWorkflow
 * resolves with `status === "failed"` and an `error`.
 */
export class KailashError extends Error {
  readonly code: Code;
  readonly reason: string;
  readonly rawMessage: string;
  readonly domain: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly violations: readonly Violation[];

  constructor(code: Code, reason: string, message: string, options: KailashErrorOptions = {}) {
    const head = `${Code[code] ?? code}${reason ? ` (${reason})` : ""}: ${message}`;
    const lines = (options.violations ?? []).map((v) => `\n  ${v.field}: ${v.description}`);
    super(head + lines.join(""), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.reason = reason;
    this.rawMessage = message;
    this.domain = options.domain ?? "";
    this.metadata = { ...(options.metadata ?? {}) };
    this.violations = [...(options.violations ?? [])];
  }
}

/** The request was invalid (INVALID_ARGUMENT); see `violations`. */
export class InvalidArgumentError extends KailashError {}
/** RegisterWorkflow rejected the definition; `violations` names each problem. */
export class InvalidWorkflowError extends InvalidArgumentError {}
/** Something the request named does not exist (NOT_FOUND). */
export class NotFoundError extends KailashError {}
/** No workflow (or workflow version) has that name. */
export class WorkflowNotFoundError extends NotFoundError {}
/** No execution has that id. */
export class ExecutionNotFoundError extends NotFoundError {}
/** No secret has that name. */
export class SecretNotFoundError extends NotFoundError {}
/** No named resource has that name. */
export class ResourceNotFoundError extends NotFoundError {}
/** The thing to create exists already (ALREADY_EXISTS). */
export class AlreadyExistsError extends KailashError {}
/** The caller may not do this (PERMISSION_DENIED). */
export class PermissionDeniedError extends KailashError {}
/** The caller sent no valid credentials (UNAUTHENTICATED). */
export class UnauthenticatedError extends KailashError {}
/** The system is not in a state that allows the request (FAILED_PRECONDITION). */
export class FailedPreconditionError extends KailashError {}
/** A limit was reached, e.g. the gateway is overloaded (RESOURCE_EXHAUSTED). */
export class ResourceExhaustedError extends KailashError {}
/** The gateway cannot be reached or is shutting down (UNAVAILABLE); retrying may help. */
export class UnavailableError extends KailashError {}
/** The deadline passed before the gateway answered (DEADLINE_EXCEEDED). */
export class DeadlineExceededError extends KailashError {}
/** The call was cancelled, e.g. by an AbortSignal (CANCELED). */
export class CancelledError extends KailashError {}

type ErrorClass = new (code: Code, reason: string, message: string, options?: KailashErrorOptions) => KailashError;

const byReason: Record<string, ErrorClass> = {
  WORKFLOW_NOT_FOUND: WorkflowNotFoundError,
  WORKFLOW_VERSION_NOT_FOUND: WorkflowNotFoundError,
  EXECUTION_NOT_FOUND: ExecutionNotFoundError,
  SECRET_NOT_FOUND: SecretNotFoundError,
  RESOURCE_NOT_FOUND: ResourceNotFoundError,
  INVALID_WORKFLOW: InvalidWorkflowError,
};

const byCode = new Map<Code, ErrorClass>([
  [Code.InvalidArgument, InvalidArgumentError],
  [Code.NotFound, NotFoundError],
  [Code.AlreadyExists, AlreadyExistsError],
  [Code.PermissionDenied, PermissionDeniedError],
  [Code.Unauthenticated, UnauthenticatedError],
  [Code.FailedPrecondition, FailedPreconditionError],
  [Code.ResourceExhausted, ResourceExhaustedError],
  [Code.Unavailable, UnavailableError],
  [Code.DeadlineExceeded, DeadlineExceededError],
  [Code.Canceled, CancelledError],
]);

/**
 * Returns the error class for a status code and reason: the reason's class
 * when it is known and belongs to the code's family, else the code's class.
 */
export function errorClass(code: Code, reason: string): ErrorClass {
  const forCode = byCode.get(code) ?? KailashError;
  const forReason = byReason[reason];
  if (forReason !== undefined && forReason.prototype instanceof forCode) {
    return forReason;
  }
  return forCode;
}

/** Detail as ConnectError stores it: the Any's type name and its bytes. */
export interface ErrorDetail {
  type: string;
  value: Uint8Array;
}

/** Builds the typed error for a status code, message and status details. */
export function fromStatus(code: Code, message: string, details: readonly ErrorDetail[], cause?: unknown): KailashError {
  let reason = "";
  let domain = "";
  let metadata: Record<string, string> = {};
  const violations: Violation[] = [];
  for (const detail of details) {
    try {
      if (detail.type === "google.rpc.ErrorInfo") {
        ({ reason, domain, metadata } = decodeErrorInfo(detail.value));
      } else if (detail.type === "google.rpc.BadRequest") {
        violations.push(...decodeBadRequest(detail.value));
      }
    } catch {
      // A detail we cannot decode is ignored; the status code still applies.
    }
  }
  const cls = errorClass(code, reason);
  return new cls(code, reason, message, { domain, metadata, violations, cause });
}

/** Converts anything a Connect call throws into a KailashError (others pass through). */
export function toKailashError(err: unknown): unknown {
  if (err instanceof KailashError) {
    return err;
  }
  const connectErr = ConnectError.from(err);
  if (connectErr.code === Code.Canceled && !(err instanceof ConnectError)) {
    return err; // e.g. an AbortError raised locally before any RPC
  }
  const tls = tlsFailure(err);
  if (tls !== undefined) {
    // Node reports a failed handshake as an internal error; like the Go and
    // Python clients, call it what it is: the gateway cannot be reached safely.
    return fromStatus(Code.Unavailable, `TLS handshake failed (${tls.code}): ${tls.message}`, [], err);
  }
  const details = connectErr.details.filter((d): d is ErrorDetail => "value" in d && d.value instanceof Uint8Array);
  return fromStatus(connectErr.code, connectErr.rawMessage, details, err);
}

/** Codes of Node's TLS errors: certificate verification and handshake alerts. */
const TLS_ERROR_CODE = /^(ERR_TLS_|ERR_SSL_|UNABLE_TO_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|HOSTNAME_MISMATCH$)/;

/** Returns the Node.js TLS error in err's cause chain, if any. */
function tlsFailure(err: unknown): { code: string; message: string } | undefined {
  let cur: unknown = err;
  for (let depth = 0; depth < 8 && cur instanceof Error; depth++) {
    const code = (cur as NodeJS.ErrnoException).code;
    if (typeof code === "string" && TLS_ERROR_CODE.test(code)) {
      return { code, message: cur.message.split("\n")[0]!.trim() };
    }
    cur = cur.cause;
  }
  return undefined;
}

function decodeErrorInfo(bytes: Uint8Array): { reason: string; domain: string; metadata: Record<string, string> } {
  const r = new BinaryReader(bytes);
  let reason = "";
  let domain = "";
  const metadata: Record<string, string> = {};
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === WireType.LengthDelimited) {
      reason = r.string();
    } else if (field === 2 && wire === WireType.LengthDelimited) {
      domain = r.string();
    } else if (field === 3 && wire === WireType.LengthDelimited) {
      const [key, value] = decodeStringPair(r.bytes());
      metadata[key] = value;
    } else {
      r.skip(wire);
    }
  }
  return { reason, domain, metadata };
}

function decodeBadRequest(bytes: Uint8Array): Violation[] {
  const r = new BinaryReader(bytes);
  const out: Violation[] = [];
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === WireType.LengthDelimited) {
      const [f, description] = decodeStringPair(r.bytes());
      out.push({ field: f, description });
    } else {
      r.skip(wire);
    }
  }
  return out;
}

// Decodes fields 1 and 2 (strings) of a message: a map entry or a FieldViolation.
function decodeStringPair(bytes: Uint8Array): [string, string] {
  const r = new BinaryReader(bytes);
  let first = "";
  let second = "";
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === WireType.LengthDelimited) {
      first = r.string();
    } else if (field === 2 && wire === WireType.LengthDelimited) {
      second = r.string();
    } else {
      r.skip(wire);
    }
  }
  return [first, second];
}

/**
 * Decides whether an event stream that failed can be resumed with
 * WatchExecution. The gateway ends a stream that falls too far behind its
 * execution with RESOURCE_EXHAUSTED / WATCH_LAGGING (metadata `execution_id`
 * and `resume_after_seq`); the client then resumes after the last event it
 * delivered, so the caller misses nothing and sees nothing twice. A resumed
 * stream that lags again before delivering any event is not resumed again.
 */
export class ResumeTracker {
  private executionId = "";
  private lastSeq = 0;
  private progressed = true;

  /** Records a delivered event. */
  saw(executionId: string, seq: number): void {
    this.executionId = executionId || this.executionId;
    this.lastSeq = seq;
    this.progressed = true;
  }

  /** Returns where to resume, or undefined when the error must be thrown. */
  resumePoint(error: KailashError): { executionId: string; afterSeq: number } | undefined {
    if (error.reason !== "WATCH_LAGGING" || !this.progressed) {
      return undefined;
    }
    const executionId = this.executionId || (error.metadata.execution_id ?? "");
    if (!executionId) {
      return undefined;
    }
    let afterSeq = this.lastSeq;
    if (!afterSeq) {
      const parsed = Number.parseInt(error.metadata.resume_after_seq ?? "0", 10);
      afterSeq = Number.isFinite(parsed) ? parsed : 0;
    }
    this.progressed = false;
    return { executionId, afterSeq };
  }
}
