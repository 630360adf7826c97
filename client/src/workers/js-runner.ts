/**
 * Runs one JavaScript module in this worker: console output goes to the page as stdout/stderr,
 * and the run is done once the module has evaluated and no timer is pending (like Node's exit).
 */
import { describeError, type Stream, type WorkerScope } from "../run-protocol";

const scope = self as unknown as WorkerScope;
const pendingTimers = new Set<number>();
let finished = false;

function emit(stream: Stream, text: string): void {
  if (!finished) scope.postMessage({ type: "output", stream, text });
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
  const url = URL.createObjectURL(new Blob([request.code], { type: "text/javascript" }));
  scope.postMessage({ type: "started" });
  import(/* @vite-ignore */ url)
    .then(whenTimersSettle)
    .then(() => {
      if (finished) return;
      finished = true;
      scope.postMessage({ type: "done" });
    }, fail)
    .finally(() => URL.revokeObjectURL(url));
});
