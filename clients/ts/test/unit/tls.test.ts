// TLS, mTLS and bearer tokens against a loopback HTTP/2 TLS server (a probe)
// that answers every gRPC call with UNIMPLEMENTED after recording the
// authorization header and the verified client certificate.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type Http2SecureServer, createSecureServer } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { TLSSocket } from "node:tls";
import { Code, KailashClient, KailashError, type TlsOptions } from "../../src/index.js";
import { CA } from "./pki.js";

interface Seen {
  path: string;
  authorization: string;
  cn: string;
}

class Probe {
  readonly calls: Seen[] = [];
  private server: Http2SecureServer | undefined;
  port = 0;

  async start(cert: string, key: string, clientCA?: string): Promise<void> {
    const server = createSecureServer({
      cert: readFileSync(cert),
      key: readFileSync(key),
      ...(clientCA ? { ca: readFileSync(clientCA), requestCert: true, rejectUnauthorized: true } : {}),
    });
    server.on("stream", (stream, headers) => {
      const peer = (stream.session?.socket as TLSSocket | undefined)?.getPeerCertificate();
      this.calls.push({
        path: String(headers[":path"]),
        authorization: String(headers.authorization ?? ""),
        cn: peer && typeof peer.subject === "object" ? String(peer.subject.CN ?? "") : "",
      });
      stream.respond(
        { ":status": 200, "content-type": "application/grpc", "grpc-status": "12", "grpc-message": "tls probe" },
        { endStream: true },
      );
    });
    server.on("sessionError", () => {});
    server.on("tlsClientError", () => {});
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const addr = server.address();
    this.port = typeof addr === "object" && addr !== null ? addr.port : 0;
    this.server = server;
  }

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  last(): Seen {
    const call = this.calls.at(-1);
    assert.ok(call, "the probe saw no call");
    return call;
  }
}

async function reach(target: string, tls: boolean | TlsOptions | undefined, token?: string): Promise<KailashError> {
  const client = new KailashClient(target, { ...(tls === undefined ? {} : { tls }), ...(token ? { token } : {}) });
  try {
    await client.getWorkflow("probe");
  } catch (err) {
    assert.ok(err instanceof KailashError, `want a KailashError, got ${String(err)}`);
    return err;
  } finally {
    client.close();
  }
  assert.fail("the call succeeded");
}

describe("TLS", () => {
  let dir: string;
  let ca: CA;
  const tlsProbe = new Probe();
  const mtlsProbe = new Probe();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "kgw-ts-tls-"));
    ca = new CA(dir, "root");
    const server = ca.server();
    await tlsProbe.start(server.cert, server.key);
    await mtlsProbe.start(server.cert, server.key, ca.cert);
  });

  after(async () => {
    await tlsProbe.stop();
    await mtlsProbe.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("trusts a private CA and sends the token", async () => {
    const err = await reach(tlsProbe.target, { caFile: ca.cert }, "kgw_abc_secret");
    assert.equal(err.code, Code.Unimplemented, err.message);
    assert.deepEqual(tlsProbe.last(), {
      path: "/kgw.v1.WorkflowService/GetWorkflow",
      authorization: "Bearer kgw_abc_secret",
      cn: "",
    });
    // PEM content instead of a file, and an https:// target.
    const again = await reach(`https://127.0.0.1:${tlsProbe.port}`, { ca: readFileSync(ca.cert) }, "kgw_def_secret");
    assert.equal(again.code, Code.Unimplemented, again.message);
    assert.equal(tlsProbe.last().authorization, "Bearer kgw_def_secret");
  });

  it("refuses a server it cannot verify", async () => {
    const other = new CA(dir, "other");
    const before = tlsProbe.calls.length;
    for (const tls of [true, { caFile: other.cert }, { caFile: ca.cert, servername: "kgw.example" }]) {
      const err = await reach(tlsProbe.target, tls);
      assert.equal(err.code, Code.Unavailable, `${JSON.stringify(tls)}: ${err.message}`);
      assert.match(err.message, /TLS handshake failed/);
    }
    // Plaintext HTTP/2 to a TLS server: Node ends the stream (CANCEL); no call gets through.
    const plain = await reach(tlsProbe.target, false);
    assert.notEqual(plain.code, Code.Unimplemented, plain.message);
    assert.equal(tlsProbe.calls.length, before);
  });

  it("presents a client certificate (mTLS)", async () => {
    const client = ca.issue("client", "payments", true, "URI:spiffe://mesh.example/ns/payments/sa/api");
    const err = await reach(mtlsProbe.target, { caFile: ca.cert, certFile: client.cert, keyFile: client.key });
    assert.equal(err.code, Code.Unimplemented, err.message);
    assert.equal(mtlsProbe.last().cn, "payments");

    const before = mtlsProbe.calls.length;
    const stranger = new CA(dir, "stranger").issue("intruder", "intruder", true);
    for (const tls of [{ caFile: ca.cert }, { caFile: ca.cert, certFile: stranger.cert, keyFile: stranger.key }]) {
      // TLS 1.3 refuses the certificate after the client's side of the handshake:
      // Node reports the alert (UNAVAILABLE) or an HTTP/2 stream the server dropped (CANCELED).
      const refused = await reach(mtlsProbe.target, tls);
      assert.ok([Code.Unavailable, Code.Canceled].includes(refused.code), `${JSON.stringify(tls)}: ${refused.message}`);
    }
    assert.equal(mtlsProbe.calls.length, before);
  });

  it("reports bad settings when the client is created", () => {
    const notPem = join(dir, "not.pem");
    writeFileSync(notPem, "hello");
    const client = ca.issue("c", "c", true);
    const cases: [TlsOptions | boolean, string, RegExp][] = [
      [{ certFile: client.cert }, "127.0.0.1:1", /needs both cert and key/],
      [{ keyFile: client.key }, "127.0.0.1:1", /needs both cert and key/],
      [{ caFile: join(dir, "missing.crt") }, "127.0.0.1:1", /cannot read .*ENOENT/],
      [{ caFile: notPem }, "127.0.0.1:1", /not PEM/],
      [{ ca: "x", caFile: ca.cert }, "127.0.0.1:1", /ca or caFile, not both/],
      [true, "http://127.0.0.1:1", /is http \(plaintext\)/],
    ];
    for (const [tls, target, want] of cases) {
      assert.throws(() => new KailashClient(target, { tls }), want);
    }
  });
});

describe("unreachable gateway", () => {
  it("names the address and says what to do", async () => {
    const client = new KailashClient("127.0.0.1:1");
    try {
      await assert.rejects(client.listWorkflows(), (err: unknown) => {
        assert.ok(err instanceof KailashError && err.code === Code.Unavailable, String(err));
        assert.match(err.message, /cannot reach the gateway at 127\.0\.0\.1:1: .*kgw serve/);
        assert.equal(err.message.split("cannot reach").length, 2);
        return true;
      });
    } finally {
      client.close();
    }
  });
});
