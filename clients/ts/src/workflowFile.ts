// Workflow files: YAML or JSON definitions with code inline or in code_file
// paths, in the format `kgw workflow register -f` and the Go client read
// (docs/workflow-files.md). YAML needs the optional peer dependency `yaml`.

import { create } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { readFile, stat } from "node:fs/promises";
import { dirname, extname, isAbsolute, join } from "node:path";
import {
  type Connection,
  ConnectionSchema,
  type Node,
  NodeSchema,
  type RetryPolicy,
  RetryPolicySchema,
  type Workflow,
  WorkflowSchema,
} from "#gen/kgw/v1/workflow_pb.js";

/** Largest workflow file and code file read. */
const MAX_FILE_BYTES = 8 << 20;
const MAX_CODE_FILE_BYTES = 1 << 20;

const WORKFLOW_FIELDS = ["name", "description", "timeout", "labels", "disable_journal", "nodes", "connections"];
const NODE_FIELDS = ["id", "code", "code_file", "required_resources", "timeout", "retry", "description"];
const RETRY_FIELDS = ["max_attempts", "initial_backoff", "max_backoff", "multiplier"];
const CONNECTION_FIELDS = ["from_node", "from_output", "to_node", "to_input", "from", "to"];
const DURATION = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/g;
const UNIT_SECONDS: Record<string, number> = { ns: 1e-9, us: 1e-6, "µs": 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/** One problem of a workflow file: the field path (`nodes[0].retry.max_attempts`) and what is wrong. */
export interface FileProblem {
  field: string;
  message: string;
}

/** A workflow file that cannot be loaded; `problems` lists everything found at once. */
export class WorkflowFileError extends Error {
  constructor(
    readonly path: string,
    readonly problems: FileProblem[],
  ) {
    const prefix = path ? `${path}: ` : "";
    super(problems.map((p) => `${prefix}${p.field ? `${p.field}: ` : ""}${p.message}`).join("\n"));
    this.name = "WorkflowFileError";
  }
}

type Obj = Record<string, unknown>;

function kind(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (Array.isArray(v)) return "a list";
  switch (typeof v) {
    case "boolean":
      return "a boolean";
    case "number":
      return "a number";
    case "string":
      return "a string";
    case "object":
      return "a mapping";
    default:
      return typeof v;
  }
}

async function parseYaml(text: string): Promise<unknown> {
  let yaml: typeof import("yaml");
  try {
    yaml = await import("yaml");
  } catch {
    throw new WorkflowFileError("", [
      { field: "", message: "reading YAML workflow files needs the yaml package: npm install yaml (or use JSON)" },
    ]);
  }
  const docs = yaml.parseAllDocuments(text, { uniqueKeys: true, merge: false });
  if (!Array.isArray(docs) || docs.length !== 1) {
    const n = Array.isArray(docs) ? docs.length : 0;
    throw new WorkflowFileError("", [{ field: "", message: `a workflow file holds exactly one YAML document, found ${n}` }]);
  }
  const doc = docs[0]!;
  if (doc.errors.length > 0) {
    throw new WorkflowFileError(
      "",
      doc.errors.map((e) => ({ field: "", message: `not valid YAML: ${e.message.split("\n")[0]}` })),
    );
  }
  return doc.toJS({ maxAliasCount: 1000 });
}

/** JSON.parse that refuses a key given twice in one object. */
function parseJsonStrict(text: string): unknown {
  const value = JSON.parse(text) as unknown;
  // JSON.parse keeps the last duplicate silently: scan the text for objects with repeated keys.
  const stack: Set<string>[] = [];
  const re = /"(?:[^"\\]|\\.)*"\s*:|[{}]|"(?:[^"\\]|\\.)*"/g;
  for (const m of text.matchAll(re)) {
    const tok = m[0];
    if (tok === "{") {
      stack.push(new Set());
    } else if (tok === "}") {
      stack.pop();
    } else if (tok.endsWith(":")) {
      const key = JSON.parse(tok.slice(0, -1).trim()) as string;
      const keys = stack.at(-1);
      if (keys?.has(key)) {
        throw new WorkflowFileError("", [{ field: "", message: `field ${JSON.stringify(key)} given twice` }]);
      }
      keys?.add(key);
    }
  }
  return value;
}

/**
 * Parses a workflow definition from `text` ("yaml" or "json"). `code_file`
 * paths are relative to `baseDir` (default: the working directory). Rejects
 * with WorkflowFileError.
 */
export async function parseWorkflow(text: string, format: "yaml" | "json" = "yaml", baseDir = process.cwd(), path = ""): Promise<Workflow> {
  let doc: unknown;
  try {
    if (format === "json") {
      doc = parseJsonStrict(text);
    } else if (format === "yaml") {
      doc = await parseYaml(text);
    } else {
      throw new WorkflowFileError(path, [{ field: "", message: `unknown format ${JSON.stringify(format)}: want yaml or json` }]);
    }
  } catch (err) {
    if (err instanceof WorkflowFileError) {
      throw new WorkflowFileError(path, err.problems);
    }
    throw new WorkflowFileError(path, [{ field: "", message: `not valid JSON: ${(err as Error).message}` }]);
  }
  const d = new Decoder(baseDir);
  const wf = await d.workflow(doc);
  if (d.problems.length > 0) {
    throw new WorkflowFileError(path, d.problems);
  }
  return wf;
}

/**
 * Loads a workflow file: YAML (`.yaml`/`.yml`, needs the `yaml` package) or
 * JSON (`.json`), with `code_file` paths relative to the file's directory.
 */
export async function loadWorkflowFile(path: string): Promise<Workflow> {
  const ext = extname(path).toLowerCase();
  if (![".yaml", ".yml", ".json"].includes(ext)) {
    throw new WorkflowFileError(path, [{ field: "", message: "want a .yaml, .yml or .json file" }]);
  }
  if ((await stat(path)).size > MAX_FILE_BYTES) {
    throw new WorkflowFileError(path, [{ field: "", message: `larger than ${MAX_FILE_BYTES >> 20} MiB` }]);
  }
  return parseWorkflow(await readFile(path, "utf8"), ext === ".json" ? "json" : "yaml", dirname(path), path);
}

class Decoder {
  readonly problems: FileProblem[] = [];

  constructor(private readonly baseDir: string) {}

  private problem(field: string, message: string): void {
    this.problems.push({ field, message });
  }

  private fields(v: unknown, path: string, what: string, known: string[]): Obj | undefined {
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      this.problem(path, `want ${what} (a mapping), got ${kind(v)}`);
      return undefined;
    }
    for (const key of Object.keys(v)) {
      if (!known.includes(key)) {
        this.problem(path ? `${path}.${key}` : key, `unknown field ${JSON.stringify(key)} in ${what} (known fields: ${[...known].sort().join(", ")})`);
      }
    }
    return v as Obj;
  }

  private str(v: unknown, field: string): string {
    if (typeof v !== "string") {
      this.problem(field, `want a string, got ${kind(v)}`);
      return "";
    }
    return v;
  }

  private duration(v: unknown, field: string): Duration | undefined {
    let seconds: number;
    if (typeof v === "number") {
      seconds = v;
    } else if (typeof v === "string") {
      const text = v.trim();
      const sign = text.startsWith("-") ? -1 : 1;
      const body = text.replace(/^[+-]/, "");
      if (body === "0") {
        seconds = 0;
      } else if (body === "" || body.replace(DURATION, "") !== "") {
        this.problem(field, `bad duration ${JSON.stringify(v)}: want e.g. "30s", "1m30s", "500ms" or a number of seconds`);
        return undefined;
      } else {
        seconds = sign * [...body.matchAll(DURATION)].reduce((sum, m) => sum + Number(m[1]) * UNIT_SECONDS[m[2]!]!, 0);
      }
    } else {
      this.problem(field, `want a duration such as "30s" or a number of seconds, got ${kind(v)}`);
      return undefined;
    }
    if (!Number.isFinite(seconds) || seconds < 0) {
      this.problem(field, `duration must not be negative, got ${JSON.stringify(v)}`);
      return undefined;
    }
    if (seconds === 0) {
      return undefined;
    }
    const whole = Math.floor(seconds);
    return { $typeName: "google.protobuf.Duration", seconds: BigInt(whole), nanos: Math.round((seconds - whole) * 1e9) } as Duration;
  }

  private strings(v: unknown, field: string): string[] {
    if (!Array.isArray(v)) {
      this.problem(field, `want a list of strings, got ${kind(v)}`);
      return [];
    }
    return v.map((x, i) => this.str(x, `${field}[${i}]`));
  }

  private list(v: unknown, field: string): unknown[] {
    if (!Array.isArray(v)) {
      this.problem(field, `want a list, got ${kind(v)}`);
      return [];
    }
    return v;
  }

  async workflow(doc: unknown): Promise<Workflow> {
    const wf = create(WorkflowSchema, {});
    const root = this.fields(doc, "", "a workflow", WORKFLOW_FIELDS);
    if (root === undefined) {
      return wf;
    }
    if ("name" in root) wf.name = this.str(root.name, "name");
    else this.problem("name", "missing: every workflow needs a name");
    if ("description" in root) wf.description = this.str(root.description, "description");
    if ("timeout" in root) wf.timeout = this.duration(root.timeout, "timeout");
    if ("disable_journal" in root) {
      if (typeof root.disable_journal === "boolean") wf.disableJournal = root.disable_journal;
      else this.problem("disable_journal", `want true or false, got ${kind(root.disable_journal)}`);
    }
    if ("labels" in root) {
      const labels = root.labels;
      if (labels === null || typeof labels !== "object" || Array.isArray(labels)) {
        this.problem("labels", `want a mapping of text, got ${kind(labels)}`);
      } else {
        for (const [k, v] of Object.entries(labels)) {
          if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") wf.labels[k] = String(v);
          else this.problem(`labels.${k}`, `want text, got ${kind(v)}`);
        }
      }
    }
    const nodes = "nodes" in root ? this.list(root.nodes, "nodes") : [];
    if (nodes.length === 0) this.problem("nodes", "missing: a workflow needs at least one node");
    for (const [i, n] of nodes.entries()) wf.nodes.push(await this.node(n, `nodes[${i}]`));
    const conns = "connections" in root ? this.list(root.connections, "connections") : [];
    for (const [i, c] of conns.entries()) wf.connections.push(this.connection(c, `connections[${i}]`));
    this.structure(wf);
    return wf;
  }

  private async node(v: unknown, path: string): Promise<Node> {
    const node = create(NodeSchema, {});
    const m = this.fields(v, path, "a node", NODE_FIELDS);
    if (m === undefined) return node;
    if ("id" in m) node.id = this.str(m.id, `${path}.id`);
    else this.problem(`${path}.id`, "missing: every node needs an id");
    if (("code" in m) === ("code_file" in m)) this.problem(path, "give exactly one of code or code_file");
    if ("code" in m) node.code = this.str(m.code, `${path}.code`);
    if ("code_file" in m) node.code = await this.codeFile(this.str(m.code_file, `${path}.code_file`), `${path}.code_file`);
    if ("required_resources" in m) node.requiredResources = this.strings(m.required_resources, `${path}.required_resources`);
    if ("timeout" in m) node.timeout = this.duration(m.timeout, `${path}.timeout`);
    if ("description" in m) node.description = this.str(m.description, `${path}.description`);
    if ("retry" in m) {
      const r = this.fields(m.retry, `${path}.retry`, "a retry policy", RETRY_FIELDS);
      if (r !== undefined) node.retry = this.retry(r, `${path}.retry`);
    }
    return node;
  }

  private retry(r: Obj, path: string): RetryPolicy {
    const out = create(RetryPolicySchema, {});
    if ("max_attempts" in r) {
      const v = r.max_attempts;
      if (typeof v !== "number" || !Number.isInteger(v) || v < 1) this.problem(`${path}.max_attempts`, `want a whole number >= 1, got ${JSON.stringify(v)}`);
      else out.maxAttempts = v;
    }
    if ("initial_backoff" in r) out.initialBackoff = this.duration(r.initial_backoff, `${path}.initial_backoff`);
    if ("max_backoff" in r) out.maxBackoff = this.duration(r.max_backoff, `${path}.max_backoff`);
    if ("multiplier" in r) {
      const v = r.multiplier;
      if (typeof v !== "number" || (v !== 0 && v < 1)) this.problem(`${path}.multiplier`, `want 0 (the default, 2) or a number >= 1, got ${JSON.stringify(v)}`);
      else out.multiplier = v;
    }
    return out;
  }

  private async codeFile(name: string, field: string): Promise<string> {
    if (!name) return "";
    const p = isAbsolute(name) ? name : join(this.baseDir, name);
    try {
      const st = await stat(p);
      if (!st.isFile()) {
        this.problem(field, `${name}: not a regular file`);
        return "";
      }
      if (st.size > MAX_CODE_FILE_BYTES) {
        this.problem(field, `${name}: larger than 1 MiB`);
        return "";
      }
      return await readFile(p, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.problem(field, code === "ENOENT" ? `${name}: not a regular file` : `${name}: ${String(err)}`);
      return "";
    }
  }

  private connection(v: unknown, path: string): Connection {
    const c = create(ConnectionSchema, {});
    const m = this.fields(v, path, "a connection", CONNECTION_FIELDS);
    if (m === undefined) return c;
    const compact = "from" in m || "to" in m;
    const long = ["from_node", "from_output", "to_node", "to_input"].some((k) => k in m);
    if (compact && long) {
      this.problem(path, "use from/to or from_node/from_output/to_node/to_input, not both");
      return c;
    }
    if (compact) {
      const src = this.str(m.from ?? "", `${path}.from`);
      const dst = this.str(m.to ?? "", `${path}.to`);
      if (!src || !dst) this.problem(path, 'a compact connection needs from: "node.output" and to: "node.input"');
      const [fromNode, ...fromRest] = src.split(".");
      const [toNode, ...toRest] = dst.split(".");
      c.fromNode = fromNode ?? "";
      c.fromOutput = fromRest.join(".");
      c.toNode = toNode ?? "";
      c.toInput = toRest.join(".") || c.fromOutput;
    } else {
      if ("from_node" in m) c.fromNode = this.str(m.from_node, `${path}.from_node`);
      if ("from_output" in m) c.fromOutput = this.str(m.from_output, `${path}.from_output`);
      if ("to_node" in m) c.toNode = this.str(m.to_node, `${path}.to_node`);
      if ("to_input" in m) c.toInput = this.str(m.to_input, `${path}.to_input`);
      if (!c.toInput) c.toInput = c.fromOutput;
    }
    return c;
  }

  private structure(wf: Workflow): void {
    const ids = new Map<string, number>();
    wf.nodes.forEach((n, i) => {
      if (ids.has(n.id)) this.problem(`nodes[${i}].id`, `duplicate node id ${JSON.stringify(n.id)} (also nodes[${ids.get(n.id)}])`);
      else if (n.id) ids.set(n.id, i);
    });
    wf.connections.forEach((c, i) => {
      for (const [key, name] of [["from_node", c.fromNode], ["to_node", c.toNode]] as const) {
        if (name && !ids.has(name)) this.problem(`connections[${i}].${key}`, `unknown node ${JSON.stringify(name)}`);
      }
      if (c.fromNode && c.fromNode === c.toNode) this.problem(`connections[${i}]`, `node ${JSON.stringify(c.fromNode)} is connected to itself`);
    });
  }
}
