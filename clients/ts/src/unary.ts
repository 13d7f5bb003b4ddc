// A gRPC transport whose unary calls go straight to one HTTP/2 stream each.
//
// Connect's gRPC transport runs every call, unary or not, through its
// streaming machinery: async iterables for the request and the response
// bodies, an AbortController linked to the caller's signal, Fetch-API
// Headers built and validated for the request, the response and the
// trailers. On the external benchmark (tools/loadgen, no-op workflow, 16
// callers on one connection, 2-core machine) that cost 1.1–2.2 ms of client
// CPU per call, and the client reached 0.01–0.21× the Go load generator's
// throughput. Unary calls here write one length-prefixed message on a
// stream of the same Http2SessionManager and read one back; headers are
// plain objects built once per client: 0.20–0.38 ms per call in the same
// runs, 0.21–0.49× the Go generator's throughput. Streaming calls, and every
// call when the caller adds interceptors, still go through Connect's
// transport (`fallback`). Figures: docs/performance.md, section Clients.

import { type DescMessage, type DescMethodUnary, type DescService, type MessageInitShape, type MessageShape, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type Transport, type UnaryResponse } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { type ClientHttp2Stream, type IncomingHttpHeaders, constants as h2 } from "node:http2";

/** Options of createUnaryTransport. */
export interface UnaryTransportOptions {
  /** The connection; streams and unary calls share it. */
  session: Http2SessionManager;
  /** Metadata sent with every call (token, extra headers). */
  metadata: Readonly<Record<string, string>>;
  /** Handles streaming calls (Connect's gRPC transport on the same session). */
  fallback: Transport;
  /** Turns a failure into the error the caller sees (adds the unreachable-gateway hint). */
  mapError?: (err: ConnectError) => unknown;
  /** Largest response message accepted, in bytes. */
  readMaxBytes?: number;
}

const emptyHeaders = (): Headers => new Headers();

/**
 * Returns a Transport whose unary calls each use one HTTP/2 stream of
 * `options.session` directly, and whose streaming calls go to
 * `options.fallback`.
 */
export function createUnaryTransport(options: UnaryTransportOptions): Transport {
  const { session, fallback } = options;
  const mapError = options.mapError ?? ((err: ConnectError) => err);
  const readMaxBytes = options.readMaxBytes ?? 0xffffffff;
  // The request headers every call shares; per-call headers (a timeout,
  // headers the caller passes) go into a copy.
  const base: Record<string, string> = {
    "content-type": "application/grpc+proto",
    te: "trailers",
    "user-agent": "kgw-ts",
  };
  for (const [k, v] of Object.entries(options.metadata)) {
    base[k.toLowerCase()] = v;
  }
  const paths = new WeakMap<object, string>();
  function pathOf(method: DescMethodUnary): string {
    let p = paths.get(method);
    if (p === undefined) {
      p = `/${method.parent.typeName}/${method.name}`;
      paths.set(method, p);
    }
    return p;
  }

  return {
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0] | undefined,
      input: MessageInitShape<I>,
      _contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      let headers = base;
      if ((timeoutMs !== undefined && timeoutMs > 0) || header !== undefined) {
        headers = { ...base };
        if (timeoutMs !== undefined && timeoutMs > 0) {
          headers["grpc-timeout"] = `${Math.ceil(timeoutMs)}m`;
        }
        if (header !== undefined) {
          new Headers(header).forEach((v, k) => {
            headers[k] = v;
          });
        }
      }
      const body = toBinary(method.input, create(method.input, input));
      const frame = Buffer.allocUnsafe(5 + body.length);
      frame[0] = 0;
      frame.writeUInt32BE(body.length, 1);
      frame.set(body, 5);
      try {
        if (signal?.aborted) {
          throw ConnectError.from(signal.reason, Code.Canceled);
        }
        const stream = await session.request("POST", pathOf(method), headers, {});
        const raw = await exchange(stream, frame, signal, timeoutMs, readMaxBytes, () => session.notifyResponseByteRead(stream));
        return new DirectResponse(method, fromBinary(method.output, raw.message), raw);
      } catch (err) {
        throw mapError(toConnectError(err));
      }
    },
    stream: fallback.stream.bind(fallback),
  };
}

/**
 * The UnaryResponse of a direct call. Its header and trailer are built
 * from Node's header objects only when read, by getters on the prototype.
 * It replaced an object literal with two getters, which V8 builds through
 * a slow path with two new closures per call: the client's own CPU per
 * no-op call without the network (a stub session, 16 callers) went from
 * 10.6–11.4 to 5.9–6.2 µs, −45%; on the loopback gateway, in turns, from
 * 88–96 to 86–90 µs (docs/performance.md, section Clients).
 */
class DirectResponse<I extends DescMessage, O extends DescMessage> implements UnaryResponse<I, O> {
  readonly stream = false;
  readonly service: DescService;
  constructor(
    readonly method: DescMethodUnary<I, O>,
    readonly message: MessageShape<O>,
    private readonly raw: RawResponse,
  ) {
    this.service = method.parent;
  }
  get header(): Headers {
    return this.raw.header === undefined ? emptyHeaders() : toHeaders(this.raw.header);
  }
  get trailer(): Headers {
    return this.raw.trailer === undefined ? emptyHeaders() : toHeaders(this.raw.trailer);
  }
}

interface RawResponse {
  header: IncomingHttpHeaders | undefined;
  trailer: IncomingHttpHeaders | undefined;
  message: Uint8Array;
}

/**
 * Sends `frame` (one length-prefixed message) on `stream` and resolves
 * with the one message of the response, or rejects with a ConnectError
 * from the gRPC status, the HTTP status, the stream's reset code, the
 * caller's signal or the timeout.
 */
function exchange(
  stream: ClientHttp2Stream,
  frame: Buffer,
  signal: AbortSignal | undefined,
  timeoutMs: number | undefined,
  readMaxBytes: number,
  onRead: () => void,
): Promise<RawResponse> {
  return new Promise<RawResponse>((resolve, reject) => {
    let header: IncomingHttpHeaders | undefined;
    let trailer: IncomingHttpHeaders | undefined;
    let chunks: Buffer[] = [];
    let received = 0;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;

    function finish(err: ConnectError | undefined, message?: Uint8Array): void {
      if (settled) {
        return;
      }
      settled = true;
      if (timer !== undefined) {
        clearTimeout(timer);
      }
      signal?.removeEventListener("abort", onAbort);
      if (err !== undefined) {
        if (!stream.closed) {
          // The gRPC HTTP/2 mapping: a client that gives up (cancelled, past
          // its deadline) resets with CANCEL; anything else is an internal error.
          const giveUp = err.code === Code.Canceled || err.code === Code.DeadlineExceeded;
          stream.close(giveUp ? h2.NGHTTP2_CANCEL : h2.NGHTTP2_INTERNAL_ERROR);
        }
        reject(err);
        return;
      }
      resolve({ header, trailer, message: message as Uint8Array });
    }
    function onAbort(this: AbortSignal): void {
      finish(ConnectError.from(this.reason ?? new Error("This operation was aborted"), Code.Canceled));
    }
    if (signal !== undefined) {
      signal.addEventListener("abort", onAbort);
    }
    if (timeoutMs !== undefined && timeoutMs > 0) {
      timer = setTimeout(() => finish(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeoutMs);
    }

    stream.on("response", (h: IncomingHttpHeaders) => {
      header = h;
    });
    stream.on("data", (chunk: Buffer) => {
      onRead();
      received += chunk.length;
      if (received > readMaxBytes + 5) {
        finish(new ConnectError(`message larger than the configured limit ${readMaxBytes}`, Code.ResourceExhausted));
        return;
      }
      chunks.push(chunk);
    });
    stream.on("trailers", (t: IncomingHttpHeaders) => {
      trailer = t;
    });
    stream.on("error", (e: unknown) => {
      // A stream the server reset reports itself as an error; its code says
      // more. Other errors (a failed TLS handshake, a dropped connection)
      // keep their cause.
      const reset = (e as NodeJS.ErrnoException).code === "ERR_HTTP2_STREAM_ERROR" ? errorFromResetCode(stream.rstCode) : undefined;
      finish(reset ?? errorFromNode(e));
    });
    stream.on("close", () => {
      if (settled) {
        return;
      }
      const reset = errorFromResetCode(stream.rstCode);
      if (reset !== undefined && trailer === undefined) {
        finish(reset);
        return;
      }
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      chunks = [];
      const result = parse(header, trailer, body);
      if (result instanceof ConnectError) {
        finish(result);
      } else {
        finish(undefined, result);
      }
    });
    stream.end(frame);
  });
}

/**
 * Checks a finished response (HTTP status, gRPC status in the trailers or
 * in a trailers-only header block, exactly one uncompressed message) and
 * returns the message bytes or the error.
 */
function parse(
  header: IncomingHttpHeaders | undefined,
  trailer: IncomingHttpHeaders | undefined,
  body: Buffer,
): Uint8Array | ConnectError {
  if (header === undefined) {
    return new ConnectError("protocol error: the stream ended without response headers", Code.Internal);
  }
  const status = Number(header[":status"]);
  if (status !== 200) {
    // Connect's gRPC mapping of HTTP statuses (and any gRPC status the header carries).
    return findTrailerError(toHeaders(header)) ?? new ConnectError(`HTTP ${status}`, codeFromHttpStatus(status), toHeaders(header));
  }
  const contentType = String(header["content-type"] ?? "");
  if (!/^application\/grpc(?:\+proto)?(?:;|$)/i.test(contentType)) {
    return new ConnectError(`unsupported content type ${contentType}`, Code.Unknown);
  }
  // A trailers-only response carries its status in the header block.
  const statusBlock = trailer ?? header;
  if (statusBlock["grpc-status"] !== "0") {
    const err = findTrailerError(toHeaders(statusBlock));
    if (err === undefined) {
      return new ConnectError("protocol error: missing status", Code.Internal);
    }
    if (statusBlock !== header) {
      // As Connect does: the error's metadata has the headers too.
      toHeaders(header).forEach((v, k) => err.metadata.append(k, v));
    }
    return err;
  }
  if (body.length < 5) {
    return new ConnectError("protocol error: missing output message for unary method", Code.Unimplemented);
  }
  if (body[0] !== 0) {
    const encoding = String(header["grpc-encoding"] ?? "");
    return new ConnectError(`unsupported response encoding "${encoding}" (flags ${body[0]})`, Code.Internal);
  }
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length) {
    return new ConnectError(
      body.length < 5 + length
        ? "protocol error: incomplete output message"
        : "protocol error: received extra output message for unary method",
      body.length < 5 + length ? Code.Internal : Code.Unimplemented,
    );
  }
  return body.subarray(5);
}

/** Node's header object as Fetch-API Headers (only built when asked for). */
function toHeaders(h: IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [k, v] of Object.entries(h)) {
    if (k.startsWith(":") || v === undefined) {
      continue;
    }
    if (Array.isArray(v)) {
      for (const item of v) {
        out.append(k, item);
      }
    } else {
      out.set(k, String(v));
    }
  }
  return out;
}

/** gRPC's mapping of HTTP statuses to codes (as Connect maps them). */
function codeFromHttpStatus(status: number): Code {
  switch (status) {
    case 400:
      return Code.Internal;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.Unavailable;
    default:
      return Code.Unknown;
  }
}

/** The code of a stream reset, as the gRPC HTTP/2 mapping gives it; undefined for a clean close. */
function errorFromResetCode(rst: number): ConnectError | undefined {
  let code: Code;
  switch (rst) {
    case h2.NGHTTP2_NO_ERROR:
    case h2.NGHTTP2_STREAM_CLOSED:
      return undefined;
    case h2.NGHTTP2_REFUSED_STREAM:
      code = Code.Unavailable;
      break;
    case h2.NGHTTP2_CANCEL:
      code = Code.Canceled;
      break;
    case h2.NGHTTP2_ENHANCE_YOUR_CALM:
      code = Code.ResourceExhausted;
      break;
    case h2.NGHTTP2_INADEQUATE_SECURITY:
    case h2.NGHTTP2_HTTP_1_1_REQUIRED:
      code = Code.PermissionDenied;
      break;
    default:
      code = Code.Internal;
  }
  return new ConnectError(`http/2 stream closed with error code 0x${rst.toString(16)}`, code);
}

/** Turns a Node error (connection refused, reset, ...) into a ConnectError with the matching code. */
function errorFromNode(e: unknown): ConnectError {
  if (e instanceof ConnectError) {
    return e;
  }
  let code = Code.Internal;
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 8; cur = cur.cause, depth++) {
    const c = (cur as NodeJS.ErrnoException).code;
    if (c === "ECONNREFUSED" || c === "ETIMEDOUT" || c === "ENOTFOUND" || c === "EAI_AGAIN") {
      code = Code.Unavailable;
      break;
    }
    if (c === "ECONNRESET" || c === "ERR_STREAM_DESTROYED" || c === "ERR_HTTP2_INVALID_STREAM") {
      code = Code.Aborted;
      break;
    }
  }
  const ce = ConnectError.from(e, code);
  if (ce !== e) {
    ce.cause = e;
  }
  return ce;
}

function toConnectError(err: unknown): ConnectError {
  return err instanceof ConnectError ? err : errorFromNode(err);
}
