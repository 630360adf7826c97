/**
 * Runs Python with Pyodide, loaded once per worker from the server's /pyodide/ (no CDN).
 * The worker stays alive between runs so the runtime loads only once; each run gets fresh globals.
 * Before each run every file of the room is written under ROOT (the working directory), the
 * entry's folder and ROOT lead `sys.path` (as `python src/app.py` run from the project would),
 * and the room's modules imported by an earlier run are forgotten, so edits are seen.
 */
import type { PyodideAPI } from "pyodide";
import { describeError, type RunRequest, type Stream, type WorkerScope } from "../run-protocol";

const scope = self as unknown as WorkerScope;
const PYODIDE_BASE = new URL("/pyodide/", self.location.origin).href;

let runtime: Promise<PyodideAPI> | null = null;
/** Where the room's files are, in Pyodide's file system. */
export const ROOT = "/room";
const MISSING_PACKAGE_NOTE =
  "Run has Python's standard library and the room's own files; other packages are not installed here.";
/** Said when Python could not load while the server cannot be reached (client/README.md, Run offline). */
const NOT_ON_THIS_DEVICE =
  "Python is not on this device yet, and it cannot be downloaded now: the server cannot be reached. " +
  "Run a Python file once while online (that downloads Python, about 13 MB, and keeps it); after that " +
  "Python runs offline too. JavaScript files run offline already.";
/** How long the check whether the server answers may take. */
const REACHABLE_TIMEOUT_MS = 10_000;

/** Python that prepares a run: `entry_dir` on sys.path, ROOT the working directory. */
const PREPARE = `
import importlib, os, sys
ROOT = ${JSON.stringify(ROOT)}
def _from_room(module):
    places = [getattr(module, "__file__", None) or "", *list(getattr(module, "__path__", []) or [])]
    return any(str(place).startswith(ROOT + "/") for place in places)
for _name, _module in list(sys.modules.items()):
    if _from_room(_module):
        del sys.modules[_name]
if not hasattr(sys, "_pairpilot_path"):
    sys._pairpilot_path = list(sys.path)
sys.path[:] = [entry_dir, ROOT, *sys._pairpilot_path]
sys.argv = [entry_path]
importlib.invalidate_caches()
os.chdir(ROOT)
`;

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

/**
 * Drops the traceback frames of Pyodide's own runner, so the first frame shown is the user's, and
 * names the room's files by their room paths (`src/app.py`, not `/room/src/app.py`).
 */
function userTraceback(message: string): string {
  const kept: string[] = [];
  let skipping = false;
  for (const line of message.split("\n")) {
    if (line.startsWith("  File ")) skipping = /^ {2}File "[^"]*\/_pyodide\//.test(line);
    else if (!line.startsWith("    ")) skipping = false;
    if (!skipping) kept.push(line.replace(`File "${ROOT}/`, 'File "'));
  }
  return kept.join("\n");
}

/** Writes every file of the room under ROOT, after removing what an earlier run left there. */
function writeRoom(pyodide: PyodideAPI, files: Record<string, string>): void {
  // Out of ROOT first: the file system will not remove the working directory.
  const root = JSON.stringify(ROOT);
  pyodide.runPython(`import os, shutil\nos.chdir("/")\nif os.path.exists(${root}): shutil.rmtree(${root})\nos.makedirs(${root})`);
  for (const [path, text] of Object.entries(files)) {
    const full = `${ROOT}/${path}`;
    pyodide.FS.mkdirTree(full.slice(0, full.lastIndexOf("/")));
    pyodide.FS.writeFile(full, text, { encoding: "utf8" });
  }
}

/**
 * Whether the server answers at all (any status): a HEAD of the loader past every cache. A load
 * that failed while it does not answer failed for want of a copy on this device.
 */
async function serverAnswers(): Promise<boolean> {
  if (!navigator.onLine) return false;
  try {
    await fetch(`${PYODIDE_BASE}pyodide.mjs`, { method: "HEAD", cache: "no-store", signal: AbortSignal.timeout(REACHABLE_TIMEOUT_MS) });
    return true;
  } catch {
    return false; // a network error or no answer in time: that is the answer
  }
}

async function run(request: RunRequest): Promise<void> {
  let pyodide: PyodideAPI;
  try {
    runtime ??= loadRuntime();
    pyodide = await runtime;
  } catch (error) {
    runtime = null;
    if (await serverAnswers()) {
      scope.postMessage({ type: "output", stream: "stderr", text: `Could not load Python: ${describeError(error)}\n` });
      scope.postMessage({ type: "error", message: "could not load Python" });
    } else {
      scope.postMessage({ type: "output", stream: "stderr", text: `${NOT_ON_THIS_DEVICE}\n` });
      scope.postMessage({ type: "error", message: "Python is not on this device yet" });
    }
    return;
  }
  const entryPath = `${ROOT}/${request.fileName}`;
  const globals = pyodide.globals.get("dict")();
  globals.set("__name__", "__main__");
  globals.set("__file__", entryPath);
  try {
    writeRoom(pyodide, { ...request.files, [request.fileName]: request.code });
    const setup = pyodide.globals.get("dict")();
    setup.set("entry_dir", entryPath.slice(0, entryPath.lastIndexOf("/")));
    setup.set("entry_path", entryPath);
    try {
      pyodide.runPython(PREPARE, { globals: setup });
    } finally {
      setup.destroy();
    }
  } catch (error) {
    globals.destroy();
    scope.postMessage({ type: "output", stream: "stderr", text: `Could not put the room's files in place: ${describeError(error)}\n` });
    scope.postMessage({ type: "error", message: "could not put the room's files in place" });
    return;
  }
  scope.postMessage({ type: "started" });
  try {
    await pyodide.runPythonAsync(request.code, { globals, filename: entryPath });
    // Flush print() output that is still buffered in sys.stdout.
    pyodide.runPython("import sys; sys.stdout.flush(); sys.stderr.flush()");
    scope.postMessage({ type: "done" });
  } catch (error) {
    pyodide.runPython("import sys; sys.stdout.flush()");
    const message = userTraceback(error instanceof Error ? error.message : String(error));
    scope.postMessage({ type: "output", stream: "stderr", text: message.endsWith("\n") ? message : `${message}\n` });
    if (/^ModuleNotFoundError: /m.test(message)) scope.postMessage({ type: "output", stream: "stderr", text: `${MISSING_PACKAGE_NOTE}\n` });
    scope.postMessage({ type: "error", message: message.trim().split("\n").pop() ?? "error" });
  } finally {
    globals.destroy();
  }
}

scope.addEventListener("message", (event) => {
  if (event.data.type === "run") void run(event.data);
});
