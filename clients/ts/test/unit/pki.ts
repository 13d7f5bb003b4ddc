// Throwaway certificates for TLS tests, made with the openssl command: a CA,
// a server certificate for 127.0.0.1/localhost, client certificates. EC
// P-256, valid for a day.

import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

function openssl(dir: string, args: string[]): void {
  try {
    execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === "ENOENT") {
      throw new Error("openssl not found in PATH: the TLS tests make certificates with it (apt-get install openssl)");
    }
    throw new Error(`openssl ${args.join(" ")}: ${e.stderr?.toString() ?? String(err)}`);
  }
}

/** A certificate and its key, as file paths. */
export interface Pair {
  cert: string;
  key: string;
}

/** A certificate authority whose files live in dir. */
export class CA {
  readonly cert: string;
  readonly key: string;

  constructor(
    readonly dir: string,
    readonly name: string,
  ) {
    this.cert = join(dir, `${name}.crt`);
    this.key = join(dir, `${name}.key`);
    openssl(dir, [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
      "-keyout", this.key, "-out", this.cert, "-days", "1", "-subj", `/CN=${name}`,
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
    ]);
  }

  /** Issues base.crt/base.key for cn, for a client (clientAuth) or a server (serverAuth). */
  issue(base: string, cn: string, client: boolean, sans = ""): Pair {
    const ext = join(this.dir, `${base}.ext`);
    writeFileSync(ext, `extendedKeyUsage=${client ? "clientAuth" : "serverAuth"}\n${sans ? `subjectAltName=${sans}\n` : ""}`);
    const key = join(this.dir, `${base}.key`);
    const csr = join(this.dir, `${base}.csr`);
    const cert = join(this.dir, `${base}.crt`);
    openssl(this.dir, ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${cn}`]);
    openssl(this.dir, ["x509", "-req", "-in", csr, "-CA", this.cert, "-CAkey", this.key, "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", ext]);
    return { cert, key };
  }

  /** A server certificate for 127.0.0.1, ::1 and localhost. */
  server(): Pair {
    return this.issue(`${this.name}-server`, "localhost", false, "IP:127.0.0.1,IP:::1,DNS:localhost");
  }
}
