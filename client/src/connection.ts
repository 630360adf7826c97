/**
 * The live connection to /collab/{roomId}: a stock y-websocket WebsocketProvider plus what the
 * contract adds (DESIGN.md §5): the token as `?token=`, close codes 4401 / 4403 / 4400, the
 * auth messages "permission denied" (sub-type 0) and "saved" (sub-type 1), and reconnection with capped exponential backoff and full
 * jitter (y-websocket's own backoff has no jitter, so server-side closes are handled here).
 */
import * as decoding from "lib0/decoding";
import { messagePermissionDenied } from "y-protocols/auth";
import { messageAuth, WebsocketProvider } from "y-websocket";
import * as Y from "yjs";

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "offline";

/** Reconnect delays: attempt n waits a uniformly random time in [minMs, min(maxMs, baseMs·2ⁿ)]. */
export interface BackoffConfig { baseMs: number; maxMs: number; minMs: number }

export const DEFAULT_BACKOFF: BackoffConfig = { baseMs: 500, maxMs: 15_000, minMs: 100 };

/** Close codes of DESIGN.md §5. */
export const CLOSE_BAD_TOKEN = 4401;
export const CLOSE_NOT_MEMBER = 4403;
export const CLOSE_BAD_REQUEST = 4400;

/**
 * The server's "saved" auth sub-type: `[2, 1]` + a state vector (`Y.encodeStateVector`'s format)
 * of what is durably stored. Stock clients ignore it (y-protocols reads sub-type 0 only).
 */
export const AUTH_SAVED = 1;

export interface ConnectionOptions {
  roomId: string;
  doc: Y.Doc;
  /** ws(s)://host, without a trailing slash. */
  wsBase: string;
  /** The token to connect with (read before every attempt). */
  token: () => Promise<string>;
  /** Called on close 4401: sign in again (and re-join); resolves to the new token. */
  renewToken: () => Promise<string>;
  onState: (state: ConnectionState, detail: string) => void;
  /** The server dropped one of our edits (we are a viewer). */
  onPermissionDenied: (reason: string) => void;
  /** The server stored the document up to this state vector (client id → clock). */
  onSaved?: (stateVector: Map<number, number>) => void;
  /** The connection cannot be resumed (not a member, bad room id); reconnecting is stopped. */
  onFatal: (code: number, message: string) => void;
  backoff?: BackoffConfig;
}

export interface Connection {
  provider: WebsocketProvider;
  /** Stops reconnecting and closes the socket. */
  destroy: () => void;
}

/** The WebSocket base for the page's own host (ws: for http:, wss: for https:). */
export function pageWsBase(location: Location = window.location): string {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}`;
}

/** The delay before reconnect attempt `attempt` (0-based), with full jitter. */
export function backoffDelay(attempt: number, config: BackoffConfig, random: () => number = Math.random): number {
  const cap = Math.min(config.maxMs, config.baseMs * 2 ** Math.min(attempt, 30));
  return Math.max(config.minMs, Math.round(random() * cap));
}

/** Consecutive 4401 closes after which we give up instead of signing in forever. */
const MAX_AUTH_RETRIES = 3;

/** Opens the room's provider and keeps it connected until destroyed. */
export function openConnection(options: ConnectionOptions): Connection {
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const provider = new WebsocketProvider(`${options.wsBase}/collab`, options.roomId, options.doc, {
    connect: false,
    params: {},
    // Every edit goes through the server, which enforces roles; no tab-to-tab shortcut.
    disableBc: true,
    // Every server-side or network close is handed to onClosed below (reconnect with jitter).
    shouldReconnect: () => false,
    maxBackoffTime: backoff.maxMs,
  });
  let attempt = 0;
  let authRetries = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let destroyed = false;
  let fatal = false;

  provider.messageHandlers[messageAuth] = (_encoder, decoder) => {
    const subType = decoding.readVarUint(decoder);
    if (subType === messagePermissionDenied) {
      options.onPermissionDenied(decoding.readVarString(decoder));
    } else if (subType === AUTH_SAVED) {
      options.onSaved?.(Y.decodeStateVector(decoding.readVarUint8Array(decoder)));
    }
    // Other sub-types are a newer server's: ignored, as stock clients do.
  };

  const connect = async (): Promise<void> => {
    timer = null;
    if (destroyed || fatal) return;
    try {
      provider.params = { token: await options.token() };
    } catch (err) {
      options.onState("offline", `cannot get a token: ${String(err)}`);
      scheduleReconnect();
      return;
    }
    provider.connect();
  };

  const scheduleReconnect = (delayMs = backoffDelay(attempt, backoff)): void => {
    if (destroyed || fatal || timer !== null) return;
    attempt += 1;
    timer = setTimeout(() => void connect(), delayMs);
  };

  provider.on("status", ({ status }) => {
    if (status === "connecting") {
      options.onState(attempt === 0 ? "connecting" : "reconnecting", "connecting…");
    }
  });
  provider.on("sync", (synced: boolean) => {
    if (synced) {
      attempt = 0;
      authRetries = 0;
      options.onState("connected", "connected");
    }
  });

  provider.on("closed", ({ code, reason }) => {
    if (destroyed) return;
    if (code === CLOSE_BAD_TOKEN && authRetries < MAX_AUTH_RETRIES) {
      authRetries += 1;
      options.onState("reconnecting", "signing in again…");
      options.renewToken().then(
        () => void connect(),
        (err: unknown) => {
          options.onState("offline", `sign-in failed: ${String(err)}`);
          scheduleReconnect();
        },
      );
      return;
    }
    if (code === CLOSE_BAD_TOKEN || code === CLOSE_NOT_MEMBER || code === CLOSE_BAD_REQUEST) {
      fatal = true;
      const message =
        code === CLOSE_NOT_MEMBER ? "You are not a member of this room."
        : code === CLOSE_BAD_REQUEST ? `The server refused the connection (bad room id or message)${reason ? `: ${reason}` : ""}.`
        : "The server keeps rejecting the sign-in token.";
      options.onState("offline", message);
      options.onFatal(code, message);
      return;
    }
    const offline = typeof navigator !== "undefined" && navigator.onLine === false;
    options.onState(offline ? "offline" : "reconnecting", reason || `connection closed (${code})`);
    scheduleReconnect();
  });

  const goOffline = (): void => {
    options.onState("offline", "the browser is offline");
    // Close now rather than waiting for the 30 s watchdog; edits stay in the doc meanwhile.
    provider.ws?.close();
  };
  const goOnline = (): void => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    attempt = 0;
    if (!provider.wsconnected && !provider.wsconnecting) void connect();
  };
  window.addEventListener("offline", goOffline);
  window.addEventListener("online", goOnline);

  options.onState("connecting", "connecting…");
  void connect();

  return {
    provider,
    destroy: () => {
      destroyed = true;
      if (timer !== null) clearTimeout(timer);
      window.removeEventListener("offline", goOffline);
      window.removeEventListener("online", goOnline);
      provider.destroy();
    },
  };
}
