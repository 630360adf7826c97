/**
 * Run / Stop: asks the server's rate limiter, runs the open file as the entry in a Web Worker
 * (JavaScript natively, Python through Pyodide) with every file of the room beside it, enforces the time limit by terminating the worker, and streams status
 * and output into the room's Y.Doc (run-state.ts) so every participant sees the run live.
 * When the limiter cannot be reached (offline), the run goes into this page's own Y.Doc instead:
 * shown here only, never shared (client/README.md, "Run offline").
 */
import * as Y from "yjs";
import { ApiError, type Api, type RunPermit } from "./api";
import { extensionOf } from "./editor";
import { textsByPath } from "./files";
import { reportError } from "./monitoring";
import type { RunRequest, WorkerEvent } from "./run-protocol";
import {
  appendOutput, beginRun, finishRun, readRun, requestStop, runMap, type OutputChunk, type OutputStream, type RunLanguage,
  type RunStatus,
} from "./run-state";

/** How long user code may run before its worker is terminated. */
export const RUN_TIME_LIMIT_MS = 10_000;
/** How long loading Pyodide may take on a first Python run (not counted in the time limit). */
export const PYODIDE_LOAD_LIMIT_MS = 120_000;
/** Output is batched into one Y.Doc transaction at most this often. */
export const OUTPUT_FLUSH_MS = 50;
/** Output kept per run; the rest is dropped with a notice, so a print loop cannot bloat the room. */
export const MAX_OUTPUT_CHARS = 200_000;

const LANGUAGE_BY_EXTENSION: Record<string, RunLanguage> = { py: "python", js: "javascript", mjs: "javascript" };

/** The language Run uses for a file, or null when the file cannot be run. */
export function runnableLanguage(fileName: string): RunLanguage | null {
  return LANGUAGE_BY_EXTENSION[extensionOf(fileName)] ?? null;
}

/** What only the runner's own page shows (not shared). */
export type LocalRunEvent =
  | { kind: "loading"; message: string | null }
  | { kind: "rate-limited"; retryAfterS: number }
  | { kind: "error"; message: string }
  | { kind: "clear" }
  | { kind: "busy"; busy: boolean };

export interface RunnerOptions {
  doc: Y.Doc;
  roomId: string;
  api: Api;
  self: () => { id: string; name: string };
  /** Whether a user still has the room open (to stop runs whose runner left). */
  isOnline: (userId: string) => boolean;
  onLocal: (event: LocalRunEvent) => void;
  timeLimitMs?: number;
}

export interface Runner {
  /** The runs made while the server could not be reached: on this page only, never sent. */
  localRuns: Y.Doc;
  run: (fileName: string, code: string) => Promise<void>;
  stop: () => void;
  destroy: () => void;
}

interface ActiveRun {
  /** Where the run is written: the room's doc, or `localRuns`. */
  doc: Y.Doc;
  runId: string;
  language: RunLanguage;
  worker: Worker;
  startedAt: number;
  timer: ReturnType<typeof setTimeout> | null;
  flushTimer: ReturnType<typeof setTimeout> | null;
  pending: OutputChunk[];
  chars: number;
  truncated: boolean;
}

function createWorker(language: RunLanguage): Worker {
  return language === "python"
    ? new Worker(new URL("./workers/python-runner.ts", import.meta.url), { type: "module", name: "python-runner" })
    : new Worker(new URL("./workers/js-runner.ts", import.meta.url), { type: "module", name: "js-runner" });
}

export function createRunner(options: RunnerOptions): Runner {
  const { doc } = options;
  const localRuns = new Y.Doc();
  const timeLimitMs = options.timeLimitMs ?? RUN_TIME_LIMIT_MS;
  let active: ActiveRun | null = null;
  /** A Python worker whose Pyodide is loaded, kept between runs. */
  let idlePython: Worker | null = null;
  let starting = false;

  const flush = (run: ActiveRun): void => {
    if (run.flushTimer !== null) clearTimeout(run.flushTimer);
    run.flushTimer = null;
    const chunks = run.pending;
    run.pending = [];
    appendOutput(run.doc, run.runId, chunks);
  };

  const push = (run: ActiveRun, stream: OutputStream, text: string): void => {
    if (!text || (run.truncated && stream !== "system")) return;
    let kept = text;
    if (stream !== "system") {
      const room = MAX_OUTPUT_CHARS - run.chars;
      if (kept.length > room) {
        kept = kept.slice(0, Math.max(0, room));
        run.truncated = true;
      }
      run.chars += kept.length;
    }
    const last = run.pending[run.pending.length - 1];
    if (last && last.stream === stream) last.text += kept;
    else if (kept) run.pending.push({ runId: run.runId, stream, text: kept, at: Date.now() - run.startedAt });
    if (run.truncated && stream !== "system") {
      run.pending.push({ runId: run.runId, stream: "system", text: `[output truncated after ${MAX_OUTPUT_CHARS} characters]\n`, at: Date.now() - run.startedAt });
    }
    run.flushTimer ??= setTimeout(() => flush(run), OUTPUT_FLUSH_MS);
  };

  /** Ends the active run: writes the final state and disposes of (or keeps) the worker. */
  const end = (run: ActiveRun, status: Exclude<RunStatus, "running">, message: string | null, keepWorker: boolean): void => {
    if (active !== run) return;
    active = null;
    if (run.timer !== null) clearTimeout(run.timer);
    if (status === "timeout" || status === "stopped") push(run, "system", `${message}\n`);
    flush(run);
    finishRun(run.doc, run.runId, status, message);
    if (keepWorker && run.language === "python") idlePython = run.worker;
    else run.worker.terminate();
    options.onLocal({ kind: "loading", message: null });
    options.onLocal({ kind: "busy", busy: false });
  };

  const onWorkerEvent = (run: ActiveRun, event: WorkerEvent): void => {
    if (active !== run) return;
    switch (event.type) {
      case "loading":
        options.onLocal({ kind: "loading", message: event.message });
        break;
      case "started":
        options.onLocal({ kind: "loading", message: null });
        if (run.timer !== null) clearTimeout(run.timer);
        run.timer = setTimeout(() => end(run, "timeout", `Time limit of ${timeLimitMs / 1000} s reached`, false), timeLimitMs);
        break;
      case "output":
        push(run, event.stream, event.text);
        break;
      case "done":
        end(run, "done", null, true);
        break;
      case "error":
        end(run, "error", event.message, true);
        break;
    }
  };

  const startWorker = (run: Omit<ActiveRun, "worker">, fileName: string, code: string): ActiveRun => {
    const reuse = run.language === "python" ? idlePython : null;
    idlePython = null;
    const worker = reuse ?? createWorker(run.language);
    const started: ActiveRun = { ...run, worker };
    worker.onmessage = (e: MessageEvent<WorkerEvent>) => onWorkerEvent(started, e.data);
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      reportError(e.error ?? new Error(e.message || "run worker crashed"), { language: run.language, fileName });
      push(started, "stderr", `The runner crashed: ${e.message || "unknown error"}\n`);
      end(started, "error", "the runner crashed", false);
    };
    if (!reuse && run.language === "python") {
      // First Python run: the time limit starts once Pyodide is loaded ("started").
      started.timer = setTimeout(() => end(started, "error", "Loading Python took too long", false), PYODIDE_LOAD_LIMIT_MS);
    }
    active = started;
    worker.postMessage({ type: "run", code, fileName, files: { ...textsByPath(doc), [fileName]: code } } satisfies RunRequest);
    return started;
  };

  /**
   * The limiter's answer, or "unreachable" when the server cannot be asked (offline): such a run
   * is not shared, so it costs the room nothing the limiter guards.
   */
  const askLimiter = async (): Promise<RunPermit | "unreachable"> => {
    try {
      return await options.api.requestRun(options.roomId);
    } catch (err) {
      if (err instanceof ApiError && err.status === 0) return "unreachable";
      throw err;
    }
  };

  const run = async (fileName: string, code: string): Promise<void> => {
    if (starting) return;
    const language = runnableLanguage(fileName);
    if (!language) {
      options.onLocal({ kind: "error", message: `Run supports .py, .js and .mjs files, not "${fileName}".` });
      return;
    }
    starting = true;
    options.onLocal({ kind: "clear" });
    try {
      if (active) stop();
      const permit = await askLimiter();
      if (permit !== "unreachable" && !permit.allowed) {
        options.onLocal({ kind: "rate-limited", retryAfterS: permit.retryAfterS });
        return;
      }
      const target = permit === "unreachable" ? localRuns : doc;
      const me = options.self();
      const startedAt = Date.now();
      const runId = crypto.randomUUID();
      beginRun(target, { runId, runnerId: me.id, runnerName: me.name, file: fileName, language, startedAt });
      options.onLocal({ kind: "busy", busy: true });
      startWorker({ doc: target, runId, language, startedAt, timer: null, flushTimer: null, pending: [], chars: 0, truncated: false }, fileName, code);
    } catch (err) {
      const message = err instanceof ApiError ? err.describe() : String(err);
      options.onLocal({ kind: "error", message: `Could not start the run: ${message}` });
      if (!(err instanceof ApiError)) reportError(err, { where: "run" });
    } finally {
      starting = false;
    }
  };

  const stop = (): void => {
    const me = options.self();
    if (active) {
      end(active, "stopped", `Stopped by ${me.name}`, false);
      return;
    }
    const shared = readRun(doc);
    if (!shared || shared.status !== "running") return;
    if (shared.runnerId !== me.id && options.isOnline(shared.runnerId)) requestStop(doc, shared.runId, me.name);
    else finishRun(doc, shared.runId, "stopped", `Stopped by ${me.name} (the runner had left)`);
  };

  // React to what others write: a newer run replaces ours; a stop request ends ours. A run on
  // this page only is nobody else's to replace or stop.
  const observer = (): void => {
    if (!active || active.doc !== doc) return;
    const shared = readRun(doc);
    if (!shared || shared.runId !== active.runId) {
      const superseded = active;
      active = null;
      if (superseded.timer !== null) clearTimeout(superseded.timer);
      if (superseded.flushTimer !== null) clearTimeout(superseded.flushTimer);
      superseded.worker.terminate();
      options.onLocal({ kind: "loading", message: null });
      options.onLocal({ kind: "busy", busy: false });
    } else if (shared.stopRequestedBy) {
      end(active, "stopped", `Stopped by ${shared.stopRequestedBy}`, false);
    }
  };
  runMap(doc).observe(observer);

  const leave = (): void => {
    if (active) end(active, "stopped", `${options.self().name} left the room`, false);
  };
  window.addEventListener("pagehide", leave);

  return {
    localRuns,
    run,
    stop,
    destroy() {
      leave();
      window.removeEventListener("pagehide", leave);
      runMap(doc).unobserve(observer);
      idlePython?.terminate();
      idlePython = null;
      localRuns.destroy();
    },
  };
}
