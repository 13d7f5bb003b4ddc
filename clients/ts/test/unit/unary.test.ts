// The direct unary path (src/unary.ts) against a raw HTTP/2 server that
// answers as a gRPC server would, and as a broken one might: each case runs
// on the direct path and on Connect's path (a client with an interceptor),
// which must behave alike.

import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor, createClient } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";
import { ExecutionService, GetExecutionRequestSchema, GetExecutionResponseSchema, ExecutionStatus } from "#gen/kgw/v1/execution_pb.js";
import {
  CancelledError,
  ExecutionNotFoundError,
  KailashClient,
  KailashError,
  UnavailableError,
} from "../../src/index.js";
import { createUnaryTransport } from "../../src/unary.js";
import { errorInfo } from "./details.js";

/** A length-prefixed gRPC message (flags 0 unless given). */
function frame(body: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = flags;
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}

function execution(id: string, message: string): Uint8Array {
  return toBinary(
    GetExecutionResponseSchema,
    create(GetExecutionResponseSchema, {
      execution: { id, workflow: "w", version: 1, status: ExecutionStatus.COMPLETED, result: { n: { message } } },
    }),
  );
}

/** google.rpc.Status with one ErrorInfo, as grpc-status-details-bin carries it. */
function statusDetails(code: number, message: string, reason: string): string {
  const info = errorInfo(reason);
  const any = Buffer.concat([
    Buffer.from([0x0a, "type.googleapis.com/google.rpc.ErrorInfo".length]),
    Buffer.from("type.googleapis.com/google.rpc.ErrorInfo"),
    Buffer.from([0x12, info.length]),
    info,
  ]);
  const msg = Buffer.from(message);
  const status = Buffer.concat([Buffer.from([0x08, code, 0x12, msg.length]), msg, Buffer.from([0x1a, any.length]), any]);
  return status.toString("base64").replace(/=+$/, "");
}

/** What the server saw of the last call. */
const seen: { headers?: http2.IncomingHttpHeaders; execId?: string; cancelled?: Promise<number> } = {};

/** The server's behaviour per execution id of GetExecution. */
function answer(stream: http2.ServerHttp2Stream, id: string): void {
  const ok = { ":status": 200, "content-type": "application/grpc" };
  switch (id) {
    case "ok":
      stream.respond(ok, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(frame(execution("ok", "hi")));
      return;
    case "meta":
      stream.respond({ ...ok, "x-served-by": "test" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "x-took": "3ms" }));
      stream.end(frame(execution("meta", "hi")));
      return;
    case "big": {
      // One message of ~1 MiB, written in small pieces (many DATA frames).
      const body = frame(execution("big", "x".repeat(1 << 20)));
      stream.respond(ok, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      for (let i = 0; i < body.length; i += 1000) {
        stream.write(body.subarray(i, i + 1000));
      }
      stream.end();
      return;
    }
    case "trailers-only":
      stream.respond(
        {
          ...ok,
          "grpc-status": String(Code.NotFound),
          "grpc-message": encodeURIComponent("execution not found"),
          "grpc-status-details-bin": statusDetails(Code.NotFound, "execution not found", "EXECUTION_NOT_FOUND"),
        },
        { endStream: true },
      );
      return;
    case "http-503":
      stream.respond({ ":status": 503, "content-type": "text/plain" }, { endStream: true });
      return;
    case "two-messages":
      stream.respond(ok, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(Buffer.concat([frame(execution("a", "1")), frame(execution("b", "2"))]));
      return;
    case "compressed":
      stream.respond(ok, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(frame(execution("c", "1"), 1));
      return;
    case "no-status":
      stream.respond(ok);
      stream.end(frame(execution("n", "1")));
      return;
    case "refused":
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    case "hang":
      seen.cancelled = new Promise((resolve) => stream.on("close", () => resolve(stream.rstCode)));
      stream.respond(ok);
      return;
    default:
      throw new Error(`unknown case ${id}`);
  }
}

describe("unary calls, direct and through Connect", () => {
  let server: http2.Http2Server;
  let target = "";

  before(async () => {
    server = http2.createServer();
    server.on("stream", (stream, headers) => {
      seen.headers = headers;
      stream.on("error", () => {}); // streams the client resets
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        const body = Buffer.concat(chunks);
        const req = fromBinary(GetExecutionRequestSchema, body.subarray(5));
        seen.execId = req.executionId;
        answer(stream, req.executionId);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    target = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const intercepted: string[] = [];
  const interceptor: Interceptor = (next) => async (req) => {
    intercepted.push(req.method.name);
    return await next(req);
  };
  const paths: Array<[string, () => KailashClient]> = [
    ["direct", () => new KailashClient(target, { token: "tok", headers: { "x-team": "core" } })],
    ["connect", () => new KailashClient(target, { token: "tok", headers: { "x-team": "core" }, interceptors: [interceptor] })],
  ];

  for (const [path, open] of paths) {
    describe(path, () => {
      it("returns the message and sends the metadata", async () => {
        using client = open();
        const before = intercepted.length;
        const ex = await client.getExecution("ok");
        assert.equal(ex.executionId, "ok");
        assert.deepEqual(ex.result, { n: { message: "hi" } });
        assert.equal(seen.headers?.authorization, "Bearer tok");
        assert.equal(seen.headers?.["x-team"], "core");
        assert.match(String(seen.headers?.["content-type"]), /^application\/grpc/);
        assert.equal(seen.headers?.te, "trailers");
        assert.equal(seen.headers?.[":path"], "/kgw.v1.ExecutionService/GetExecution");
        // The direct path sends its own user agent; only the Connect path runs the interceptor.
        assert.match(String(seen.headers?.["user-agent"]), path === "direct" ? /^kgw-ts/ : /^connect-es\//);
        assert.equal(intercepted.length - before, path === "connect" ? 1 : 0);
      });

      it("reassembles a message split over many DATA frames", async () => {
        using client = open();
        const ex = await client.getExecution("big");
        assert.equal((ex.result.n?.message as string).length, 1 << 20);
      });

      it("runs concurrent calls on one connection", async () => {
        using client = open();
        const all = await Promise.all(Array.from({ length: 50 }, () => client.getExecution("ok")));
        assert.equal(all.length, 50);
        assert.ok(all.every((ex) => ex.executionId === "ok"));
      });

      it("types a trailers-only error with its details", async () => {
        using client = open();
        await assert.rejects(client.getExecution("trailers-only"), (err: unknown) => {
          assert.ok(err instanceof ExecutionNotFoundError, String(err));
          assert.equal(err.reason, "EXECUTION_NOT_FOUND");
          assert.equal(err.rawMessage, "execution not found");
          return true;
        });
      });

      it("maps an HTTP status without a gRPC status", async () => {
        using client = open();
        await assert.rejects(client.getExecution("http-503"), UnavailableError);
      });

      it("refuses two messages for a unary call", async () => {
        using client = open();
        await assert.rejects(client.getExecution("two-messages"), (err: unknown) => {
          assert.ok(err instanceof KailashError, String(err));
          assert.equal(err.code, Code.Unimplemented);
          return true;
        });
      });

      it("refuses a compressed message nobody asked for", async () => {
        using client = open();
        await assert.rejects(client.getExecution("compressed"), (err: unknown) => {
          assert.ok(err instanceof KailashError, String(err));
          assert.equal(err.code, Code.Internal);
          return true;
        });
      });

      it("refuses a response without a gRPC status", async () => {
        using client = open();
        await assert.rejects(client.getExecution("no-status"), (err: unknown) => {
          assert.ok(err instanceof KailashError, String(err));
          assert.equal(err.code, Code.Internal);
          return true;
        });
      });

      it("maps a refused stream to UNAVAILABLE (Connect: INTERNAL)", async () => {
        using client = open();
        // REFUSED_STREAM means the server did not process the call: gRPC
        // maps it to UNAVAILABLE (safe to retry). Connect's transport
        // reports the stream error as INTERNAL.
        await assert.rejects(client.getExecution("refused"), (err: unknown) => {
          assert.ok(err instanceof KailashError, String(err));
          assert.equal(err.code, path === "direct" ? Code.Unavailable : Code.Internal);
          return true;
        });
      });

      it("cancels the stream when the signal aborts", async () => {
        using client = open();
        const ac = new AbortController();
        const call = client.getExecution("hang", ac.signal);
        while (seen.cancelled === undefined || seen.execId !== "hang") {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        ac.abort();
        await assert.rejects(call, CancelledError);
        assert.equal(await seen.cancelled, http2.constants.NGHTTP2_CANCEL);
        seen.cancelled = undefined;
      });

      it("reports an unreachable gateway with its address", async () => {
        using client = new KailashClient("127.0.0.1:1", path === "connect" ? { interceptors: [interceptor] } : {});
        await assert.rejects(client.getExecution("ok"), (err: unknown) => {
          assert.ok(err instanceof UnavailableError, String(err));
          assert.match(err.message, /cannot reach the gateway at 127\.0\.0\.1:1/);
          return true;
        });
      });
    });
  }

  it("gives the response's message, headers and trailers", async () => {
    const url = `http://${target}`;
    const session = new Http2SessionManager(url);
    const transport = createUnaryTransport({
      session,
      metadata: {},
      fallback: createGrpcTransport({ baseUrl: url, sessionManager: session }),
    });
    try {
      const method = ExecutionService.method.getExecution;
      const res = await transport.unary(method, undefined, undefined, undefined, { executionId: "meta" });
      assert.equal(res.stream, false);
      assert.equal(res.method, method);
      assert.equal(res.service, ExecutionService);
      assert.equal(res.message.execution?.id, "meta");
      assert.equal(res.header.get("x-served-by"), "test");
      assert.ok([...res.header.keys()].every((k) => !k.startsWith(":"))); // pseudo-headers are not metadata
      assert.equal(res.trailer.get("x-took"), "3ms");
      assert.equal(res.trailer.get("grpc-status"), "0");
      // Read twice: each read builds the same Headers.
      assert.equal(res.header.get("x-served-by"), "test");
      // Connect's callbacks see them too.
      let header: Headers | undefined;
      let trailer: Headers | undefined;
      const client = createClient(ExecutionService, transport);
      const msg = await client.getExecution(
        { executionId: "meta" },
        { onHeader: (h) => (header = h), onTrailer: (t) => (trailer = t) },
      );
      assert.equal(msg.execution?.id, "meta");
      assert.equal(header?.get("x-served-by"), "test");
      assert.equal(trailer?.get("x-took"), "3ms");
    } finally {
      session.abort();
    }
  });

  it("sends grpc-timeout and gives up at the deadline", async () => {
    const url = `http://${target}`;
    const session = new Http2SessionManager(url);
    const transport = createUnaryTransport({
      session,
      metadata: {},
      fallback: createGrpcTransport({ baseUrl: url, sessionManager: session }),
    });
    try {
      const started = Date.now();
      await assert.rejects(
        transport.unary(ExecutionService.method.getExecution, undefined, 100, undefined, { executionId: "hang" }),
        (err: unknown) => {
          assert.ok(err instanceof ConnectError);
          assert.equal(err.code, Code.DeadlineExceeded);
          return true;
        },
      );
      assert.ok(Date.now() - started < 5000);
      assert.equal(seen.headers?.["grpc-timeout"], "100m");
      assert.equal(await seen.cancelled, http2.constants.NGHTTP2_CANCEL);
      seen.cancelled = undefined;
    } finally {
      session.abort();
    }
  });
});
