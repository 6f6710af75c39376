// Fails if a wasm module imports anything from "env": an unresolved symbol (a C dependency,
// a `getrandom` without its JS backend, ...) that no JS host provides. Prints each module's
// import modules.
//
//   node scripts/wasm-imports.mjs FILE.wasm...
import { readFileSync } from "node:fs";

let bad = 0;
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node scripts/wasm-imports.mjs FILE.wasm...");
  process.exit(2);
}
for (const file of files) {
  const imports = WebAssembly.Module.imports(new WebAssembly.Module(readFileSync(file)));
  const byModule = {};
  for (const i of imports) byModule[i.module] = (byModule[i.module] ?? 0) + 1;
  const env = imports.filter((i) => i.module === "env");
  const summary = Object.entries(byModule).map(([m, n]) => `${m}: ${n}`).join(", ");
  console.log(`${env.length ? "FAIL" : "ok  "} ${file} (${summary || "no imports"})`);
  for (const i of env) console.log(`       env.${i.name} (${i.kind})`);
  bad += env.length;
}
process.exit(bad ? 1 : 0);
