// The browser's tree resolver (client/src/tree-model.ts) as a line-oriented process: each stdin
// line is {"wanted": [[id, path or null], ...], "folders": [...]}, each stdout line the tree.
// TypeScript (the client's own dev dependency) strips the types; the module has no imports.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";

const client = new URL("../../client/", import.meta.url);
const ts = createRequire(new URL("package.json", client))("typescript");
const source = readFileSync(new URL("src/tree-model.ts", client), "utf8");
const { outputText } = ts.transpileModule(source, {
  compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
});
const { resolve } = await import(`data:text/javascript;base64,${Buffer.from(outputText).toString("base64")}`);

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const { wanted, folders } = JSON.parse(line);
  const tree = resolve(new Map(wanted), folders);
  process.stdout.write(JSON.stringify({ files: [...tree.files], folders: tree.folders }) + "\n");
}
