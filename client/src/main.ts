/**
 * Entry point: takes a Supabase sign-in redirect's session, starts error reporting and routes by
 * pathname (`/` or `/r/{roomId}`).
 */
import { fetchClientConfig } from "./api";
import { h } from "./dom";
import { mountHome } from "./home";
import { initMonitoring } from "./monitoring";
import { ROOM_ID_PATTERN } from "./names";
import { deviceEpoch } from "./local-store";
import { mountRoom } from "./room";
import { saveHomeNote } from "./storage";
import { isSupabaseFragment, supabaseProject, takeRedirect } from "./supabase-session";
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

/**
 * Stores the session a Supabase sign-in redirect carried in the fragment (and clears it from the
 * address bar); a sentence for the page when it could not be used.
 */
async function takeSupabaseRedirect(): Promise<string | null> {
  if (!isSupabaseFragment(window.location.hash)) return null;
  let project = null;
  try {
    project = supabaseProject(await fetchClientConfig());
  } catch (err) {
    takeRedirect(null);
    return `Could not read this server's configuration to take the Supabase sign-in (${String(err)}); signed in as a guest instead.`;
  }
  return takeRedirect(project);
}

function render(root: HTMLElement, signInNote: string | null): void {
  const current = route(window.location.pathname);
  switch (current.page) {
    case "home":
      if (signInNote !== null) saveHomeNote(signInNote);
      mountHome(root, navigate);
      break;
    case "room":
      document.title = `${current.roomId} · PairPilot`;
      mountRoom(root, current.roomId, signInNote);
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
void takeSupabaseRedirect().then((note) => render(document.getElementById("app")!, note));
registerServiceWorker();
