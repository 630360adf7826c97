/**
 * Runs Python with Pyodide, loaded once per worker from the server's /pyodide/ (no CDN).
 * The worker stays alive between runs so the runtime loads only once; each run gets fresh globals.
 */
import type { PyodideAPI } from "pyodide";
import { describeError, type RunRequest, type Stream, type WorkerScope } from "../run-protocol";

const scope = self as unknown as WorkerScope;
const PYODIDE_BASE = new URL("/pyodide/", self.location.origin).href;

let runtime: Promise<PyodideAPI> | null = null;

function writer(stream: Stream): { write: (buffer: Uint8Array) => number } {
  const decoder = new TextDecoder();
  return {
    write(buffer: Uint8Array): number {
      scope.postMessage({ type: "output", stream, text: decoder.decode(buffer, { stream: true }) });
      return buffer.length;
    },
  };
}

async function loadRuntime(): Promise<PyodideAPI> {
  scope.postMessage({ type: "loading", message: "Downloading the Python runtime…" });
  const module = (await import(/* @vite-ignore */ `${PYODIDE_BASE}pyodide.mjs`)) as typeof import("pyodide");
  scope.postMessage({ type: "loading", message: "Starting Python…" });
  const pyodide = await module.loadPyodide({ indexURL: PYODIDE_BASE });
  pyodide.setStdout(writer("stdout"));
  pyodide.setStderr(writer("stderr"));
  // No terminal: input() reads end-of-file instead of blocking.
  pyodide.setStdin({ stdin: () => null });
  return pyodide;
}

/** Drops the traceback frames of Pyodide's own runner, so the first frame shown is the user's. */
function userTraceback(message: string): string {
  const kept: string[] = [];
  let skipping = false;
  for (const line of message.split("\n")) {
    if (line.startsWith("  File ")) skipping = /^ {2}File "[^"]*\/_pyodide\//.test(line);
    else if (!line.startsWith("    ")) skipping = false;
    if (!skipping) kept.push(line);
  }
  return kept.join("\n");
}

async function run(request: RunRequest): Promise<void> {
  let pyodide: PyodideAPI;
  try {
    runtime ??= loadRuntime();
    pyodide = await runtime;
  } catch (error) {
    runtime = null;
    scope.postMessage({ type: "output", stream: "stderr", text: `Could not load Python: ${describeError(error)}\n` });
    scope.postMessage({ type: "error", message: "could not load Python" });
    return;
  }
  scope.postMessage({ type: "started" });
  const globals = pyodide.globals.get("dict")();
  globals.set("__name__", "__main__");
  try {
    await pyodide.runPythonAsync(request.code, { globals, filename: request.fileName });
    // Flush print() output that is still buffered in sys.stdout.
    pyodide.runPython("import sys; sys.stdout.flush(); sys.stderr.flush()");
    scope.postMessage({ type: "done" });
  } catch (error) {
    pyodide.runPython("import sys; sys.stdout.flush()");
    const message = userTraceback(error instanceof Error ? error.message : String(error));
    scope.postMessage({ type: "output", stream: "stderr", text: message.endsWith("\n") ? message : `${message}\n` });
    scope.postMessage({ type: "error", message: message.trim().split("\n").pop() ?? "error" });
  } finally {
    globals.destroy();
  }
}

scope.addEventListener("message", (event) => {
  if (event.data.type === "run") void run(event.data);
});
