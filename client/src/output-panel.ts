/** The shared output panel: renders the room's run (run-state.ts) as it streams in. */
import type * as Y from "yjs";
import { h, replaceChildren } from "./dom";
import { readRun, runMap, runOutput, type OutputChunk, type RunInfo } from "./run-state";

export interface OutputPanel {
  destroy: () => void;
}

/** The run's header: which file was the entry (the others were importable beside it), who, when. */
function describeRun(run: RunInfo, now: number): (HTMLElement | string)[] {
  const started = new Date(run.startedAt).toLocaleTimeString();
  const duration = run.durationMs ?? now - run.startedAt;
  return [
    "▶ ", h("span", { class: "mono", "data-testid": "run-entry", title: "The entry file: the room's other files were beside it" }, run.file),
    ` · run by ${run.runnerName} · started ${started} · ${(duration / 1000).toFixed(1)} s`,
  ];
}

/**
 * Keeps `statusEl` (run-status), `metaEl` and `outputEl` (output) in step with the doc.
 * Re-renders at most once per animation frame, and ticks the duration while running.
 */
export function mountOutputPanel(doc: Y.Doc, statusEl: HTMLElement, metaEl: HTMLElement, outputEl: HTMLElement): OutputPanel {
  let frame = 0;
  let rendered = 0;

  const renderOutput = (full: boolean): void => {
    const output = runOutput(doc);
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
    const run = readRun(doc);
    const status = run?.status ?? "idle";
    statusEl.dataset.status = status;
    statusEl.dataset.runId = run?.runId ?? "";
    statusEl.textContent = status;
    statusEl.title = run?.message ?? "";
    replaceChildren(metaEl, ...(run ? describeRun(run, Date.now()) : ["No run yet. Press Run to execute the current file."]),
      run?.message && run.status !== "running" ? h("span", { class: "run-message" }, ` · ${run.message}`) : null);
  };

  const schedule = (full: boolean): void => {
    if (full) rendered = Number.MAX_SAFE_INTEGER;
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      renderStatus();
      renderOutput(rendered === Number.MAX_SAFE_INTEGER);
    });
  };

  const onRun = (): void => schedule(false);
  const onOutput = (event: Y.YArrayEvent<OutputChunk>): void => {
    const deleted = event.changes.delta.some((d) => d.delete !== undefined);
    schedule(deleted);
  };
  runMap(doc).observe(onRun);
  runOutput(doc).observe(onOutput);
  const ticker = setInterval(() => {
    if (readRun(doc)?.status === "running") renderStatus();
  }, 500);
  renderStatus();
  renderOutput(true);

  return {
    destroy() {
      runMap(doc).unobserve(onRun);
      runOutput(doc).unobserve(onOutput);
      clearInterval(ticker);
      if (frame) cancelAnimationFrame(frame);
    },
  };
}
