/**
 * Lets a JavaScript entry `import` other files of the room by relative path: every room module
 * it reaches becomes a blob: URL, its relative specifiers rewritten (found with es-module-lexer,
 * not a regular expression) to the blob URLs of the files they name. Workers have no import
 * maps, hence the rewriting. Specifiers that are not relative (`https://…`) are left alone.
 */
import { init, parse } from "es-module-lexer";

/** Tried in turn for `./x`: the path itself, then as a .js / .mjs file, then a folder's index. */
const CANDIDATES = ["", ".js", ".mjs", "/index.js", "/index.mjs"];

export interface LinkedModules {
  /** The entry module's URL, to `import()`. */
  entry: string;
  /** Room paths by blob URL, to show paths instead of URLs in stack traces. */
  paths: Map<string, string>;
  revoke: () => void;
}

/** The room path that `specifier` names from the module at `from`, before trying extensions. */
export function joinPath(from: string, specifier: string): string {
  const segments = specifier.startsWith("/") ? [] : from.split("/").slice(0, -1);
  for (const segment of specifier.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") segments.pop();
    else segments.push(segment);
  }
  return segments.join("/");
}

const isRelative = (specifier: string): boolean => /^\.{0,2}\//.test(specifier);

/** Links the room's modules reachable from `entry`; throws a readable Error for a bad import. */
export async function linkModules(entry: string, files: Record<string, string>): Promise<LinkedModules> {
  await init;
  const urls = new Map<string, string>();
  const paths = new Map<string, string>();
  const linking: string[] = [];

  const find = (from: string, specifier: string): string => {
    const base = joinPath(from, specifier);
    const found = CANDIDATES.map((suffix) => base + suffix).find((path) => Object.hasOwn(files, path));
    if (found === undefined) throw new Error(`Cannot find module "${specifier}" imported from ${from}: no such file in the room`);
    return found;
  };

  const link = (path: string): string => {
    const known = urls.get(path);
    if (known !== undefined) return known;
    if (linking.includes(path)) {
      throw new Error(`Circular imports between room files are not supported: ${[...linking.slice(linking.indexOf(path)), path].join(" → ")}`);
    }
    linking.push(path);
    const source = files[path]!;
    let imports: ReturnType<typeof parse>[0];
    try {
      [imports] = parse(source, path);
    } catch (error) {
      throw new SyntaxError(`${path}: ${error instanceof Error ? error.message : String(error)}`);
    }
    let rewritten = "";
    let at = 0;
    for (const found of imports) {
      if (found.n === undefined || !isRelative(found.n)) continue;
      const url = link(find(path, found.n));
      // A static import's range is the specifier without its quotes, a dynamic one's the string.
      rewritten += source.slice(at, found.s) + (found.d > -1 ? JSON.stringify(url) : url);
      at = found.e;
    }
    rewritten += source.slice(at);
    const url = URL.createObjectURL(new Blob([rewritten], { type: "text/javascript" }));
    linking.pop();
    urls.set(path, url);
    paths.set(url, path);
    return url;
  };

  return {
    entry: link(entry),
    paths,
    revoke: () => { for (const url of urls.values()) URL.revokeObjectURL(url); },
  };
}
