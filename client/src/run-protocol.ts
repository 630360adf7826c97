/** Messages between the page and a run worker (no DOM or worker globals here). */

export type Stream = "stdout" | "stderr";

/**
 * Page → worker: run the entry file once. `fileName` is the entry's path in the room, `code` its
 * text, and `files` every file of the room by path (the entry included), for imports and reads.
 */
export interface RunRequest { type: "run"; code: string; fileName: string; files: Record<string, string> }

/** Worker → page. */
export type WorkerEvent =
  /** Preparing the runtime (Pyodide download/initialisation); `message` says what. */
  | { type: "loading"; message: string }
  /** The user's code starts executing now (the time limit counts from here). */
  | { type: "started" }
  | { type: "output"; stream: Stream; text: string }
  | { type: "done" }
  /** The user's code raised; the details were already sent to stderr. */
  | { type: "error"; message: string };

/** The slice of a dedicated worker's global scope the runners use (typed without the WebWorker lib). */
export interface WorkerScope {
  postMessage(message: WorkerEvent): void;
  addEventListener(type: "message", listener: (event: MessageEvent<RunRequest>) => void): void;
  addEventListener(type: "error", listener: (event: ErrorEvent) => void): void;
  addEventListener(type: "unhandledrejection", listener: (event: PromiseRejectionEvent) => void): void;
}

/** Text for an error thrown by user code, with its stack when there is one. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.stack && error.stack.includes(error.message) ? error.stack : `${error.name}: ${error.message}`;
  return String(error);
}
