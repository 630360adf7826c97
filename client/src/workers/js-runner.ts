/**
 * Runs the entry file as a JavaScript module in this worker, with the room's other files
 * importable by relative path (js-modules.ts): console output goes to the page as stdout/stderr,
 * and the run is done once the module has evaluated and no timer is pending (like Node's exit).
 */
import { describeError, type Stream, type WorkerScope } from "../run-protocol";
import { linkModules } from "./js-modules";

const scope = self as unknown as WorkerScope;
const pendingTimers = new Set<number>();
let finished = false;
/** Room paths by module URL: stack traces name the room's files, not blob: URLs. */
let modulePaths = new Map<string, string>();

function emit(stream: Stream, text: string): void {
  if (finished) return;
  let shown = text;
  for (const [url, path] of modulePaths) shown = shown.replaceAll(url, path);
  scope.postMessage({ type: "output", stream, text: shown });
}

function format(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return describeError(value);
  if (typeof value === "function" || typeof value === "symbol" || typeof value === "bigint") return String(value);
  if (value === undefined) return "undefined";
  try {
    return JSON.stringify(value, null, typeof value === "object" && value !== null ? 0 : undefined) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * Whether the caller is the user's program (its frames come from the blob: module). In the Vite
 * dev server the worker also runs Vite's client, whose timers must not keep a run alive.
 */
function calledByUserCode(): boolean {
  const stack = new Error().stack;
  return stack === undefined || stack.includes("blob:");
}

function consoleTo(stream: Stream) {
  return (...args: unknown[]): void => {
    if (calledByUserCode()) emit(stream, `${args.map(format).join(" ")}\n`);
  };
}

console.log = consoleTo("stdout");
console.info = consoleTo("stdout");
console.debug = consoleTo("stdout");
console.error = consoleTo("stderr");
console.warn = consoleTo("stderr");

// Count pending timers so that "done" waits for callbacks the program scheduled.
const realSetTimeout = self.setTimeout.bind(self);
const realClearTimeout = self.clearTimeout.bind(self);
const realSetInterval = self.setInterval.bind(self);
const realClearInterval = self.clearInterval.bind(self);
const timerGlobals = self as unknown as Record<string, unknown>;
timerGlobals.setTimeout = (handler: TimerHandler, timeout?: number, ...args: unknown[]): number => {
  if (!calledByUserCode()) return realSetTimeout(handler, timeout, ...args);
  const id: number = realSetTimeout((...a: unknown[]) => {
    pendingTimers.delete(id);
    if (typeof handler === "function") (handler as (...x: unknown[]) => void)(...a);
  }, timeout, ...args);
  pendingTimers.add(id);
  return id;
};
timerGlobals.clearTimeout = (id?: number): void => {
  if (id !== undefined) pendingTimers.delete(id);
  realClearTimeout(id);
};
timerGlobals.setInterval = (handler: TimerHandler, timeout?: number, ...args: unknown[]): number => {
  const id = realSetInterval(handler, timeout, ...args);
  if (calledByUserCode()) pendingTimers.add(id);
  return id;
};
timerGlobals.clearInterval = (id?: number): void => {
  if (id !== undefined) pendingTimers.delete(id);
  realClearInterval(id);
};

function fail(error: unknown): void {
  if (finished) return;
  emit("stderr", `${describeError(error)}\n`);
  finished = true;
  scope.postMessage({ type: "error", message: error instanceof Error ? error.message : String(error) });
}

scope.addEventListener("error", (event) => {
  event.preventDefault();
  fail(event.error ?? event.message);
});
scope.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  fail(event.reason);
});

function whenTimersSettle(): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (pendingTimers.size === 0 || finished) resolve();
      else realSetTimeout(check, 20);
    };
    realSetTimeout(check, 0);
  });
}

scope.addEventListener("message", (event) => {
  const request = event.data;
  if (request.type !== "run") return;
  scope.postMessage({ type: "started" });
  linkModules(request.fileName, { ...request.files, [request.fileName]: request.code }).then((modules) => {
    modulePaths = modules.paths;
    return import(/* @vite-ignore */ modules.entry)
      .then(whenTimersSettle)
      .finally(modules.revoke);
  }).then(() => {
    if (finished) return;
    finished = true;
    scope.postMessage({ type: "done" });
  }, fail);
});
