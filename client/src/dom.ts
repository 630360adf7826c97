/** A tiny element builder: h("div", {class: "x", "data-testid": "y"}, child, "text"). */

type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;
export type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
}

/** Replaces all children of `parent`. */
export function replaceChildren(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, ...children);
}

/** An info banner (`hidden` until shown) with a dismiss button `<testId>-dismiss`. */
export function dismissibleBanner(testId: string, className = ""): { element: HTMLElement; show: (text: string) => void } {
  const text = h("span", { "data-testid": `${testId}-text` });
  const dismiss = h("button", { type: "button", class: "link", "data-testid": `${testId}-dismiss`, "aria-label": "Dismiss" }, "×");
  const element = h("div", { class: `banner info dismissible ${className}`.trim(), "data-testid": testId, role: "status", hidden: true }, text, dismiss);
  dismiss.addEventListener("click", () => { element.hidden = true; });
  return {
    element,
    show(message) {
      text.textContent = message;
      element.hidden = false;
    },
  };
}
