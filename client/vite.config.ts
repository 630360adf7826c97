import { copyFileSync, createReadStream, mkdirSync, readdirSync } from "node:fs";
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

// The dev server proxies the Python server (PAIRPILOT_SERVER, default http://127.0.0.1:8123).
const server = process.env.PAIRPILOT_SERVER ?? "http://127.0.0.1:8123";

export default defineConfig({
  base: "/",
  plugins: [pyodideRuntime()],
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

