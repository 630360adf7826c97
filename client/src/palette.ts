/**
 * A small overlay with a field and a list of choices, driven by the keyboard (↑ ↓ Enter Escape)
 * or the mouse: what quick open and search across files are built on.
 */
import { h } from "./dom";

export interface PaletteItem {
  /** The text shown; `detail` follows it, muted. */
  label: string;
  detail?: string;
  /** Test id and data attributes of the item's element. */
  testId: string;
  data: Record<string, string>;
  /** A heading (a file's name above its matches): shown, never picked. */
  heading?: boolean;
  pick?: () => void;
}

export interface PaletteOptions {
  testId: string;
  placeholder: string;
  /** The choices for what is typed. */
  items: (query: string) => PaletteItem[];
}

/** Opens the palette (or focuses it when it is open already); Escape or a pick closes it. */
export function openPalette(options: PaletteOptions): void {
  const existing = document.querySelector<HTMLElement>(`[data-testid="${options.testId}"]`);
  if (existing) {
    existing.querySelector("input")?.focus();
    return;
  }
  const input = h("input", { "data-testid": `${options.testId}-input`, "aria-label": options.placeholder, placeholder: options.placeholder, autocomplete: "off" });
  const list = h("ul", { role: "listbox" });
  const overlay = h("div", { class: "palette", "data-testid": options.testId, role: "dialog" }, input, list);
  let items: PaletteItem[] = [];
  let active = -1;
  const previousFocus = document.activeElement as HTMLElement | null;

  const close = (): void => {
    overlay.remove();
    previousFocus?.focus();
  };
  const choose = (item: PaletteItem | undefined): void => {
    if (!item || item.heading) return;
    close();
    item.pick?.();
  };
  const pickable = (): number[] => items.flatMap((item, i) => (item.heading ? [] : [i]));
  const render = (): void => {
    list.replaceChildren(...items.map((item, i) => {
      const attrs: Record<string, string | number> = { "data-testid": item.testId, class: `${item.heading ? "result-file" : ""}${i === active ? " active" : ""}` };
      for (const [key, value] of Object.entries(item.data)) attrs[`data-${key}`] = value;
      const element = h("li", { ...attrs, role: item.heading ? "presentation" : "option" }, item.label, item.detail ? h("span", { class: "muted" }, ` ${item.detail}`) : null);
      element.addEventListener("mousedown", (e) => { e.preventDefault(); choose(item); });
      return element;
    }));
    list.querySelector(".active")?.scrollIntoView({ block: "nearest" });
  };
  const update = (): void => {
    items = options.items(input.value);
    active = pickable()[0] ?? -1;
    render();
  };
  input.addEventListener("input", update);
  input.addEventListener("keydown", (e) => {
    const order = pickable();
    const at = order.indexOf(active);
    if (e.key === "Escape") close();
    else if (e.key === "Enter") choose(items[active]);
    else if (e.key === "ArrowDown" && order.length) active = order[Math.min(at + 1, order.length - 1)]!;
    else if (e.key === "ArrowUp" && order.length) active = order[Math.max(at - 1, 0)]!;
    else return;
    e.preventDefault();
    render();
  });
  input.addEventListener("blur", () => setTimeout(() => { if (!overlay.contains(document.activeElement)) close(); }, 0));
  document.body.append(overlay);
  input.focus();
  update();
}
