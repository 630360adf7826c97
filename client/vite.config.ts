import { createHash } from "node:crypto";
import { copyFileSync, createReadStream, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";

const here = dirname(fileURLToPath(import.meta.url));
const pyodideDir = resolve(here, "node_modules/pyodide");

/** The files Pyodide needs at run time (the loader, the Emscripten module, the stdlib, the lock). */
const PYODIDE_RUNTIME = /^(pyodide(\.asm)?\.(m?js|wasm)|python_stdlib\.zip|pyodide-lock\.json)$/;

function pyodideRuntimeFiles(): string[] {
  const files = readdirSync(pyodideDir).filter((name) => PYODIDE_RUNTIME.test(name));
  if (!files.some((name) => name.endsWith(".wasm"))) {
    throw new Error(`pyodide runtime not found in ${pyodideDir}: run npm ci`);
  }
  return files;
}

const CONTENT_TYPES: Record<string, string> = {
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".wasm": "application/wasm",
  ".zip": "application/zip",
  ".json": "application/json",
};

/**
 * Ships Pyodide from node_modules under /pyodide/ (no CDN): copied into dist/pyodide/ by the
 * build, served straight from node_modules by the dev server.
 */
function pyodideRuntime(): Plugin {
  let outDir = "dist";
  return {
    name: "pairpilot-pyodide-runtime",
    configResolved(config) {
      outDir = resolve(config.root, config.build.outDir);
    },
    configureServer(server) {
      const files = new Set(pyodideRuntimeFiles());
      server.middlewares.use("/pyodide", (req, res, next) => {
        const name = (req.url ?? "/").split("?")[0]!.replace(/^\//, "");
        if (!files.has(name)) return next();
        const ext = name.slice(name.lastIndexOf("."));
        res.setHeader("Content-Type", CONTENT_TYPES[ext] ?? "application/octet-stream");
        createReadStream(join(pyodideDir, name)).pipe(res);
      });
    },
    writeBundle() {
      const target = join(outDir, "pyodide");
      mkdirSync(target, { recursive: true });
      for (const name of pyodideRuntimeFiles()) {
        copyFileSync(join(pyodideDir, name), join(target, name));
      }
    },
  };
}

/**
 * The Pyodide the build ships, for the service worker: its runtime files' paths and a key (the
 * version and a hash of the files), so the kept copy is dropped only when Pyodide changes.
 */
function pyodideIdentity(): { key: string; files: string[] } {
  const names = pyodideRuntimeFiles().sort();
  const hash = createHash("sha256");
  for (const name of names) hash.update(name).update(readFileSync(join(pyodideDir, name)));
  const { version } = JSON.parse(readFileSync(join(pyodideDir, "package.json"), "utf8")) as { version: string };
  return { key: `${version}-${hash.digest("hex").slice(0, 12)}`, files: names.map((name) => `/pyodide/${name}`) };
}

/**
 * Writes dist/sw.js from sw/service-worker.js with this build's files, the Pyodide it ships and
 * a build id (a hash of all of them): a new build is a new worker. ~30 lines instead of
 * vite-plugin-pwa and Workbox (client/README.md, dependencies): precaching a list, a network-first
 * page and network-first Pyodide files are all the client needs, and the worker must leave the
 * API and WebSocket alone.
 */
function serviceWorker(): Plugin {
  return {
    name: "pairpilot-service-worker",
    apply: "build",
    generateBundle(_options, bundle) {
      const assets = Object.keys(bundle).filter((name) => !name.endsWith(".map") && name !== "index.html")
        .map((name) => `/${name}`).sort();
      const pyodide = pyodideIdentity();
      const template = readFileSync(resolve(here, "sw/service-worker.js"), "utf8");
      const build = createHash("sha256").update(assets.join("\n")).update(pyodide.key).update(template)
        .digest("hex").slice(0, 16);
      const source = template
        .replace("__BUILD__", build)
        .replace("__ASSETS__", JSON.stringify(assets))
        .replace("__PYODIDE__", JSON.stringify(pyodide));
      this.emitFile({ type: "asset", fileName: "sw.js", source });
    },
  };
}

// The dev server proxies the Python server (PAIRPILOT_SERVER, default http://127.0.0.1:8123).
const server = process.env.PAIRPILOT_SERVER ?? "http://127.0.0.1:8123";

export default defineConfig({
  base: "/",
  plugins: [pyodideRuntime(), serviceWorker()],
  worker: { format: "es" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: true,
    // CodeMirror and its languages make the main chunk ~770 kB; Sentry loads on demand.
    chunkSizeWarningLimit: 1000,
  },
  server: {
    proxy: {
      "/api": { target: server, changeOrigin: true },
      "/monitoring": { target: server, changeOrigin: true },
      "/collab": { target: server.replace(/^http/, "ws"), ws: true, changeOrigin: true },
    },
  },
});

