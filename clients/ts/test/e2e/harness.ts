// Starts a real PostgreSQL and a real `kgw serve` for the end-to-end tests.
//
// PostgreSQL comes from the machine's initdb/postgres binaries, in a temp dir
// on a free 127.0.0.1 port (as the `postgres` user when running as root),
// with password authentication so that the gateway's secret is really used;
// KGW_TEST_POSTGRES_DSN selects an existing server instead. The gateway is
// built from this tree with `go build ./cmd/kgw` (or taken from KGW_BINARY).

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (this file is clients/ts/dist/test/e2e/harness.js once built). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..", "..");

const STARTUP_LIMIT_MS = 120_000;

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/** A child process whose output is collected line by line. */
class Proc {
  readonly lines: string[] = [];
  private readonly child: ChildProcess;
  private exited: number | null = null;
  private readonly waiters = new Set<() => void>();

  constructor(readonly argv: string[], ids?: { uid: number; gid: number }) {
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], ...(ids ?? {}) });
    let partial = "";
    const onData = (chunk: Buffer) => {
      const text = partial + chunk.toString("utf8");
      const parts = text.split("\n");
      partial = parts.pop() ?? "";
      this.lines.push(...parts);
      this.notify();
    };
    this.child.stdout?.on("data", onData);
    this.child.stderr?.on("data", onData);
    this.child.on("exit", (code) => {
      this.exited = code ?? -1;
      this.notify();
    });
  }

  private notify(): void {
    for (const w of this.waiters) {
      w();
    }
  }

  output(): string {
    return this.lines.slice(-80).join("\n");
  }

  /** Resolves when a line containing `text` appears; rejects if the process exits first. */
  waitFor(text: string): Promise<void> {
    return new Promise((resolveWait, reject) => {
      const check = () => {
        if (this.lines.some((l) => l.includes(text))) {
          done();
          resolveWait();
        } else if (this.exited !== null) {
          done();
          reject(new Error(`${this.argv[0]} exited with ${this.exited} before "${text}":\n${this.output()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.argv[0]} did not log "${text}" within ${STARTUP_LIMIT_MS} ms:\n${this.output()}`));
      }, STARTUP_LIMIT_MS);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Sends `signal` and waits for the process to exit (SIGKILL after 30 s). */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (this.exited !== null) {
      return;
    }
    const exited = new Promise<void>((r) => this.child.once("exit", () => r()));
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 30_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Where the test database listens and how to log in. */
export interface Postgres {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
  stop(): Promise<void>;
}

function postgresIds(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) {
    return undefined;
  }
  const out = execFileSync("id", ["postgres"], { encoding: "utf8" });
  const uid = /uid=(\d+)/.exec(out)?.[1];
  const gid = /gid=(\d+)/.exec(out)?.[1];
  if (uid === undefined || gid === undefined) {
    throw new Error("PostgreSQL refuses to run as root and there is no 'postgres' user: useradd --system --user-group postgres");
  }
  return { uid: Number(uid), gid: Number(gid) };
}

/** Starts PostgreSQL (or uses KGW_TEST_POSTGRES_DSN). */
export async function startPostgres(): Promise<Postgres> {
  const dsn = process.env.KGW_TEST_POSTGRES_DSN;
  if (dsn) {
    const url = new URL(dsn);
    return {
      host: url.hostname || "127.0.0.1",
      port: Number(url.port || 5432),
      database: url.pathname.replace(/^\//, "") || "postgres",
      user: decodeURIComponent(url.username || "postgres"),
      password: decodeURIComponent(url.password),
      stop: async () => {},
    };
  }
  const ids = postgresIds();
  const base = mkdtempSync(join(tmpdir(), "kgw-ts-e2e-pg-"));
  if (ids) {
    chownSync(base, ids.uid, ids.gid);
  }
  const password = randomBytes(12).toString("base64url");
  const pwfile = join(base, "pwfile");
  writeFileSync(pwfile, `${password}\n`);
  if (ids) {
    chownSync(pwfile, ids.uid, ids.gid);
  }
  const data = join(base, "data");
  try {
    execFileSync(
      "initdb",
      ["-D", data, "-U", "postgres", "--auth=scram-sha-256", `--pwfile=${pwfile}`, "-E", "UTF8", "--no-sync"],
      { stdio: "pipe", ...(ids ?? {}) },
    );
  } catch (err) {
    const e = err as { code?: string; stdout?: Buffer; stderr?: Buffer };
    if (e.code === "ENOENT") {
      throw new Error("initdb not found in PATH: install PostgreSQL (apt-get install -y postgresql) and put its bin dir in PATH");
    }
    throw new Error(`initdb failed:\n${e.stdout?.toString() ?? ""}${e.stderr?.toString() ?? ""}`);
  }
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const proc = new Proc(
      [
        "postgres", "-D", data, "-p", String(port),
        "-c", "listen_addresses=127.0.0.1",
        "-c", `unix_socket_directories=${base}`,
        "-c", "fsync=off",
        "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
      ],
      ids,
    );
    try {
      await proc.waitFor("database system is ready to accept connections");
    } catch (err) {
      await proc.stop("SIGINT");
      if (attempt < 2 && proc.output().includes("could not bind")) {
        continue;
      }
      rmSync(base, { recursive: true, force: true });
      throw err;
    }
    return {
      host: "127.0.0.1",
      port,
      database: "postgres",
      user: "postgres",
      password,
      stop: async () => {
        await proc.stop("SIGINT"); // fast shutdown
        rmSync(base, { recursive: true, force: true });
      },
    };
  }
}

/** A running gateway. */
export interface Gateway {
  target: string;
  /** The gateway's log so far. */
  output(): string;
  stop(): Promise<void>;
}

/** How to start the gateway: extra `kgw serve` flags, and a hook run on its data dir before it starts. */
export interface GatewayOptions {
  args?: string[];
  prepare?: (binary: string, dataDir: string) => void;
}

/** Builds kgw from the tree (unless KGW_BINARY is set) and starts `kgw serve`. */
export async function startGateway(options: GatewayOptions = {}): Promise<Gateway> {
  const work = mkdtempSync(join(tmpdir(), "kgw-ts-e2e-"));
  let binary = process.env.KGW_BINARY ?? "";
  if (!binary) {
    binary = join(work, "kgw");
    try {
      execFileSync("go", ["build", "-o", binary, "./cmd/kgw"], { cwd: REPO_ROOT, stdio: "pipe" });
    } catch (err) {
      const e = err as { code?: string; stderr?: Buffer };
      if (e.code === "ENOENT") {
        throw new Error("go not found in PATH: it is needed to build kgw (or set KGW_BINARY)");
      }
      throw new Error(`go build ./cmd/kgw failed:\n${e.stderr?.toString() ?? ""}`);
    }
  }
  options.prepare?.(binary, join(work, "data"));
  for (let attempt = 0; ; attempt++) {
    const target = `127.0.0.1:${await freePort()}`;
    const proc = new Proc([
      binary, "serve",
      "--grpc-addr", target,
      "--admin-addr", `127.0.0.1:${await freePort()}`,
      "--data-dir", join(work, "data"),
      ...(options.args ?? []),
    ]);
    try {
      await proc.waitFor("kgw ready");
    } catch (err) {
      await proc.stop();
      if (attempt < 2 && proc.output().includes("address already in use")) {
        continue;
      }
      rmSync(work, { recursive: true, force: true });
      throw err;
    }
    return {
      target,
      output: () => proc.output(),
      stop: async () => {
        await proc.stop();
        rmSync(work, { recursive: true, force: true });
      },
    };
  }
}
