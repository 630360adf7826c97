/**
 * The output panel: renders the room's shared run (run-state.ts) as it streams in, or this page's
 * own run made offline (run.ts `localRuns`) when that one is newer, labelled as not shared.
 */
import type * as Y from "yjs";
import { h, replaceChildren } from "./dom";
import { readRun, runMap, runOutput, type OutputChunk, type RunInfo } from "./run-state";

export interface OutputPanel {
  destroy: () => void;
}

/** Says that the run shown was made offline and is not shared with the room. */
const LOCAL_RUN_LABEL = "Offline run: shown on this page only, not shared with the room";

/** The run's header: which file was the entry (the others were importable beside it), who, when. */
function describeRun(run: RunInfo, now: number, local: boolean): (HTMLElement | string)[] {
  const started = new Date(run.startedAt).toLocaleTimeString();
  const duration = run.durationMs ?? now - run.startedAt;
  return [
    ...(local ? [h("span", { class: "run-local", "data-testid": "run-local" }, LOCAL_RUN_LABEL), " · "] : []),
    "▶ ", h("span", { class: "mono", "data-testid": "run-entry", title: "The entry file: the room's other files were beside it" }, run.file),
    ` · run by ${run.runnerName} · started ${started} · ${(duration / 1000).toFixed(1)} s`,
  ];
}

/**
 * Which run is shown: this page's offline run when it started after the room's run. By the
 * runners' clocks, not by arrival: the sync of a page coming back online may bring a room's run
 * older than the one this page made offline.
 */
function shownDoc(doc: Y.Doc, localRuns: Y.Doc): Y.Doc {
  const local = readRun(localRuns);
  const shared = readRun(doc);
  return local !== null && (shared === null || local.startedAt > shared.startedAt) ? localRuns : doc;
}

/**
 * Keeps `statusEl` (run-status), `metaEl` and `outputEl` (output) in step with the shown run.
 * Re-renders at most once per animation frame, and ticks the duration while running.
 */
export function mountOutputPanel(doc: Y.Doc, localRuns: Y.Doc, statusEl: HTMLElement, metaEl: HTMLElement, outputEl: HTMLElement): OutputPanel {
  let frame = 0;
  let rendered = 0;
  let shown = shownDoc(doc, localRuns);

  const renderOutput = (full: boolean): void => {
    const output = runOutput(shown);
    if (full || output.length < rendered) {
      outputEl.replaceChildren();
      rendered = 0;
    }
    const atBottom = outputEl.scrollHeight - outputEl.scrollTop - outputEl.clientHeight < 24;
    for (const chunk of output.slice(rendered)) {
      outputEl.append(h("span", { class: `out-${chunk.stream}`, "data-stream": chunk.stream }, chunk.text));
    }
    rendered = output.length;
    if (atBottom) outputEl.scrollTop = outputEl.scrollHeight;
  };

  const renderStatus = (): void => {
    const run = readRun(shown);
    const status = run?.status ?? "idle";
    statusEl.dataset.status = status;
    statusEl.dataset.runId = run?.runId ?? "";
    statusEl.dataset.shared = String(shown === doc);
    statusEl.textContent = status;
    statusEl.title = run?.message ?? "";
    replaceChildren(metaEl, ...(run ? describeRun(run, Date.now(), shown !== doc) : ["No run yet. Press Run to execute the current file."]),
      run?.message && run.status !== "running" ? h("span", { class: "run-message" }, ` · ${run.message}`) : null);
  };

  const schedule = (full: boolean): void => {
    if (full) rendered = Number.MAX_SAFE_INTEGER;
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      const next = shownDoc(doc, localRuns);
      if (next !== shown) {
        shown = next;
        rendered = Number.MAX_SAFE_INTEGER;
      }
      renderStatus();
      renderOutput(rendered === Number.MAX_SAFE_INTEGER);
    });
  };

  const onRun = (): void => schedule(false);
  const onOutput = (event: Y.YArrayEvent<OutputChunk>): void => {
    const deleted = event.changes.delta.some((d) => d.delete !== undefined);
    schedule(deleted);
  };
  for (const source of [doc, localRuns]) {
    runMap(source).observe(onRun);
    runOutput(source).observe(onOutput);
  }
  const ticker = setInterval(() => {
    if (readRun(shown)?.status === "running") renderStatus();
  }, 500);
  renderStatus();
  renderOutput(true);

  return {
    destroy() {
      for (const source of [doc, localRuns]) {
        runMap(source).unobserve(onRun);
        runOutput(source).unobserve(onOutput);
      }
      clearInterval(ticker);
      if (frame) cancelAnimationFrame(frame);
    },
  };
}
