/**
 * The shared run in the room's Y.Doc (schema in client/README.md): `Y.Map("run")` holds the
 * current run's metadata, `Y.Array("runOutput")` its output chunks. Every write is one
 * transaction tagged with RUN_ORIGIN.
 */
import * as Y from "yjs";

export const RUN_KEY = "run";
export const RUN_OUTPUT_KEY = "runOutput";
export const RUN_ORIGIN = "pairpilot:run";

export type RunStatus = "running" | "done" | "error" | "stopped" | "timeout";
export type RunLanguage = "python" | "javascript";
export type OutputStream = "stdout" | "stderr" | "system";

export interface RunInfo {
  runId: string;
  status: RunStatus;
  runnerId: string;
  runnerName: string;
  file: string;
  language: RunLanguage;
  /** Epoch milliseconds. */
  startedAt: number;
  endedAt: number | null;
  durationMs: number | null;
  /** 0 after done, 1 after error, null while running or when stopped / timed out. */
  exitCode: number | null;
  /** Why it ended, for error / stopped / timeout; null otherwise. */
  message: string | null;
  /** Name of whoever asked the runner to stop (the runner stops and writes "stopped"). */
  stopRequestedBy: string | null;
}

export interface OutputChunk { runId: string; stream: OutputStream; text: string; /** ms since startedAt */ at: number }

export function runMap(doc: Y.Doc): Y.Map<unknown> {
  return doc.getMap<unknown>(RUN_KEY);
}

export function runOutput(doc: Y.Doc): Y.Array<OutputChunk> {
  return doc.getArray<OutputChunk>(RUN_OUTPUT_KEY);
}

/** The current run, or null when the room has none (or the map is not a run). */
export function readRun(doc: Y.Doc): RunInfo | null {
  const map = runMap(doc);
  const runId = map.get("runId");
  if (typeof runId !== "string") return null;
  return Object.fromEntries(map.entries()) as unknown as RunInfo;
}

/** Starts a new shared run: replaces the metadata and clears the previous output. */
export function beginRun(doc: Y.Doc, info: Omit<RunInfo, "status" | "endedAt" | "durationMs" | "exitCode" | "message" | "stopRequestedBy">): void {
  doc.transact(() => {
    const map = runMap(doc);
    const entries: RunInfo = {
      ...info, status: "running", endedAt: null, durationMs: null, exitCode: null, message: null, stopRequestedBy: null,
    };
    for (const key of [...map.keys()]) if (!(key in entries)) map.delete(key);
    for (const [key, value] of Object.entries(entries)) map.set(key, value);
    const output = runOutput(doc);
    if (output.length > 0) output.delete(0, output.length);
  }, RUN_ORIGIN);
}

/** Appends output chunks of run `runId` (ignored when another run replaced it). */
export function appendOutput(doc: Y.Doc, runId: string, chunks: OutputChunk[]): void {
  if (chunks.length === 0) return;
  doc.transact(() => {
    if (runMap(doc).get("runId") !== runId) return;
    runOutput(doc).push(chunks);
  }, RUN_ORIGIN);
}

/** Records how run `runId` ended (ignored when another run replaced it). */
export function finishRun(doc: Y.Doc, runId: string, status: Exclude<RunStatus, "running">, message: string | null, endedAt = Date.now()): void {
  doc.transact(() => {
    const map = runMap(doc);
    if (map.get("runId") !== runId || map.get("status") !== "running") return;
    const startedAt = map.get("startedAt");
    map.set("status", status);
    map.set("endedAt", endedAt);
    map.set("durationMs", typeof startedAt === "number" ? endedAt - startedAt : null);
    map.set("exitCode", status === "done" ? 0 : status === "error" ? 1 : null);
    map.set("message", message);
  }, RUN_ORIGIN);
}

/** Asks the runner of `runId` to stop (someone else pressed Stop). */
export function requestStop(doc: Y.Doc, runId: string, byName: string): void {
  doc.transact(() => {
    const map = runMap(doc);
    if (map.get("runId") === runId && map.get("status") === "running") map.set("stopRequestedBy", byName);
  }, RUN_ORIGIN);
}
