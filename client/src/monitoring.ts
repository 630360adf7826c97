/**
 * Error reporting: the browser Sentry SDK, loaded only when the server hands out a DSN, sending
 * through the server's /monitoring tunnel (DESIGN.md §7). Until then reportError only logs.
 */
import { fetchClientConfig } from "./api";

type SentryModule = typeof import("@sentry/browser");

let sentry: SentryModule | null = null;

let started: Promise<void> | null = null;

/** Fetches /api/config and starts Sentry when a browser DSN is configured (once per page). */
export function initMonitoring(): Promise<void> {
  started ??= startMonitoring();
  return started;
}

async function startMonitoring(): Promise<void> {
  let dsn: string | null;
  try {
    dsn = (await fetchClientConfig()).browser_sentry_dsn;
  } catch (err) {
    // Monitoring is optional: the editor must work without it, so only log.
    console.warn("PairPilot: error reporting is off, /api/config failed:", err);
    return;
  }
  if (!dsn) return;
  const Sentry = await import("@sentry/browser");
  // The default integrations capture uncaught errors and unhandled rejections.
  Sentry.init({ dsn, tunnel: "/monitoring", environment: import.meta.env.MODE });
  sentry = Sentry;
}

/** Reports an error (also logged to the console) with optional context. */
export function reportError(error: unknown, context: Record<string, unknown> = {}): void {
  console.error("PairPilot:", error, context);
  sentry?.captureException(error, { extra: context });
}

export function setMonitoringUser(user: { id: string; name: string } | null): void {
  sentry?.setUser(user ? { id: user.id, username: user.name } : null);
}
