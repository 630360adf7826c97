/** Entry point: starts error reporting and routes by pathname (`/` or `/r/{roomId}`). */
import { h } from "./dom";
import { mountHome } from "./home";
import { initMonitoring } from "./monitoring";
import { ROOM_ID_PATTERN } from "./names";
import { deviceEpoch } from "./local-store";
import { mountRoom } from "./room";
import { registerServiceWorker } from "./service-worker";
import "./styles.css";

type Route = { page: "home" } | { page: "room"; roomId: string } | { page: "invalid-room"; roomId: string } | { page: "not-found" };

export function route(pathname: string): Route {
  if (pathname === "/" || pathname === "/index.html") return { page: "home" };
  const match = /^\/r\/([^/]+)\/?$/.exec(pathname);
  if (!match) return { page: "not-found" };
  let roomId: string;
  try {
    roomId = decodeURIComponent(match[1]!);
  } catch {
    return { page: "invalid-room", roomId: match[1]! };
  }
  return ROOM_ID_PATTERN.test(roomId) ? { page: "room", roomId } : { page: "invalid-room", roomId };
}

/** Room pages own sockets and workers, so changing page is a full navigation. */
function navigate(path: string): void {
  window.location.assign(path);
}

function render(root: HTMLElement): void {
  const current = route(window.location.pathname);
  switch (current.page) {
    case "home":
      mountHome(root, navigate);
      break;
    case "room":
      document.title = `${current.roomId} · PairPilot`;
      mountRoom(root, current.roomId);
      break;
    case "invalid-room":
      root.append(h("main", { class: "home" }, h("h1", {}, "Invalid room id"),
        h("p", { "data-testid": "error-message" }, `"${current.roomId}" is not a room id: use 1–64 letters, digits, '-' or '_'.`),
        h("a", { href: "/" }, "Back to the start page")));
      break;
    case "not-found":
      root.append(h("main", { class: "home" }, h("h1", {}, "Page not found"), h("a", { href: "/" }, "Back to the start page")));
      break;
  }
}

// The room page starts monitoring itself once signed in (/api/config may need the token).
if (route(window.location.pathname).page !== "room") void initMonitoring();
deviceEpoch(); // the local store's sentinel exists before any tab writes under it
render(document.getElementById("app")!);
registerServiceWorker();
