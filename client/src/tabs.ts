/**
 * Tabs for the files this page opened: one per file (by id, so a tab follows its file through a
 * rename or move and goes when the file is deleted), the open one highlighted; a click opens,
 * × closes (and opens the neighbour when it was the open one). Local to this page.
 */
import { h } from "./dom";
import type { RoomFiles } from "./files";

export interface Tabs {
  element: HTMLElement;
  /** The page opened `path` (null: no file): it gets a tab and is highlighted. */
  setCurrent: (path: string | null) => void;
}

const baseName = (path: string): string => path.slice(path.lastIndexOf("/") + 1);

export function mountTabs(files: RoomFiles, onOpen: (path: string | null) => void): Tabs {
  const element = h("div", { class: "tabs", "data-testid": "tabs", role: "tablist" });
  let ids: string[] = [];
  let currentId: string | null = null;

  const render = (): void => {
    ids = ids.filter((id) => files.pathOf(id) !== undefined);
    element.replaceChildren(...ids.map((id) => {
      const path = files.pathOf(id)!;
      const close = h("button", { type: "button", class: "tab-close", "data-testid": "tab-close", title: `Close ${path}`, "aria-label": `Close ${path}` }, "×");
      const tab = h("div", {
        class: `tab${id === currentId ? " current" : ""}`, "data-testid": "tab", "data-file": path, role: "tab",
        "aria-selected": String(id === currentId), title: path,
      }, h("span", {}, baseName(path)), close);
      tab.addEventListener("click", () => onOpen(files.pathOf(id) ?? null));
      close.addEventListener("click", (e) => {
        e.stopPropagation();
        const at = ids.indexOf(id);
        ids.splice(at, 1);
        if (id === currentId) {
          const neighbour = ids[Math.min(at, ids.length - 1)];
          onOpen(neighbour === undefined ? null : files.pathOf(neighbour) ?? null);
        } else {
          render();
        }
      });
      return tab;
    }));
  };

  files.observe(render);
  return {
    element,
    setCurrent(path) {
      currentId = path === null ? null : files.idOf(path) ?? null;
      if (currentId !== null && !ids.includes(currentId)) ids.push(currentId);
      render();
    },
  };
}
