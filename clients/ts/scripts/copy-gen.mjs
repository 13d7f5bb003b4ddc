// Copies the generated protobuf-es code (gen/ts at the repository root, never
// edited by hand) into this package's gen/ directory, where the package.json
// "imports" map (#gen/*) points and where it resolves @bufbuild/protobuf
// from this package's node_modules. Run by `npm run build`.
import { cpSync, existsSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(pkg, "..", "..", "gen", "ts");
const target = join(pkg, "gen");

if (!existsSync(source)) {
  if (existsSync(join(target, "kgw", "v1"))) {
    process.exit(0); // an unpacked package: gen/ is already there
  }
  console.error(`generated code not found at ${source}: run \`make generate\` at the repository root`);
  process.exit(1);
}
rmSync(target, { recursive: true, force: true });
cpSync(source, target, {
  recursive: true,
  filter: (src) => !src.endsWith(".ts") || src.endsWith(".d.ts"),
});
