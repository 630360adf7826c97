/**
 * The live connection to /collab/{roomId}: a stock y-websocket WebsocketProvider plus what the
 * contract adds (DESIGN.md §5): the token as `?token=`, close codes 4401 / 4403 / 4400 and the
 * guardrails' refusals 4413 / 4503 / 4410 (no reconnect until the page asks), the
 * auth messages "permission denied" (sub-type 0), "saved" (sub-type 1) and "token expiring"
 * (sub-type 2, answered in place with sub-type 3, a new token), and reconnection with capped
 * exponential backoff and full jitter (y-websocket's own backoff has no jitter, so server-side
 * closes are handled here).
 */
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import { messagePermissionDenied } from "y-protocols/auth";
import type { Awareness } from "y-protocols/awareness";
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
/** The room's document quota: the update that would pass it was not applied. */
export const CLOSE_ROOM_FULL = 4413;
/** Connection limits: the room, or this user, has as many sockets as allowed. */
export const CLOSE_CROWDED = 4503;
/** An owner deleted the room; its id is never reused. */
export const CLOSE_ROOM_DELETED = 4410;
/** An owner moved the room to a new id; the close reason is that id (see `moving.ts`). */
export const CLOSE_ROOM_MOVED = 4301;

/**
 * A message over the server's size limit (PAIRPILOT_MAX_MESSAGE_BYTES, 16 MiB): the edit (or the
 * resync that carries it) was not applied, and sending it again would be refused again.
 */
export const CLOSE_TOO_BIG = 1009;

/** A close that retrying would only repeat: the page says why and retries on request only. */
export type RefusalCode =
  typeof CLOSE_ROOM_FULL | typeof CLOSE_TOO_BIG | typeof CLOSE_CROWDED | typeof CLOSE_ROOM_DELETED;

export function isRefusal(code: number): code is RefusalCode {
  return code === CLOSE_ROOM_FULL || code === CLOSE_TOO_BIG || code === CLOSE_CROWDED
    || code === CLOSE_ROOM_DELETED;
}

/**
 * The server's "saved" auth sub-type: `[2, 1]` + a state vector (`Y.encodeStateVector`'s format)
 * of what is durably stored. Stock clients ignore it (y-protocols reads sub-type 0 only).
 */
export const AUTH_SAVED = 1;
/** The server's "token expiring" auth sub-type: `[2, 2]` + a reason; the token ends in 60 s. */
export const AUTH_TOKEN_EXPIRING = 2;
/** Our answer to it: `[2, 3]` + the same user's new access token; the socket goes on. */
export const AUTH_TOKEN = 3;

/** The auth message that renews an open socket's token. */
export function encodeTokenRenewal(token: string): Uint8Array<ArrayBuffer> {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, messageAuth);
  encoding.writeVarUint(encoder, AUTH_TOKEN);
  encoding.writeVarString(encoder, token);
  // lib0 copies into a new (never shared) ArrayBuffer; its types just do not say so.
  return encoding.toUint8Array(encoder) as Uint8Array<ArrayBuffer>;
}

export interface ConnectionOptions {
  roomId: string;
  doc: Y.Doc;
  /** The page's awareness, when it exists before the connection (an offline page's editor). */
  awareness?: Awareness;
  /** ws(s)://host, without a trailing slash. */
  wsBase: string;
  /** The token to connect with (read before every attempt). */
  token: () => Promise<string>;
  /**
   * Called on close 4401 with the token the server refused: a refreshed token (and a re-join);
   * resolves to the token to reconnect with.
   */
  renewToken: (refused: string) => Promise<string>;
  /**
   * Called when the server says the socket's token `expiring` ends soon: a newer token of the
   * same user, sent on the open socket. When it fails the server closes with 4401 (see above).
   */
  nextToken: (expiring: string) => Promise<string>;
  onState: (state: ConnectionState, detail: string) => void;
  /** The server dropped one of our edits (we are a viewer). */
  onPermissionDenied: (reason: string) => void;
  /** The server stored the document up to this state vector (client id → clock). */
  onSaved?: (stateVector: Map<number, number>) => void;
  /** The connection cannot be resumed (not a member, bad room id); reconnecting is stopped. */
  onFatal: (code: number, message: string) => void;
  /**
   * The server refused to go on (room full, too many connections, room deleted) with a reason
   * written for people (empty when it sent none); reconnecting stops until `resume()`.
   */
  onRefused: (code: RefusalCode, reason: string) => void;
  /** The room moved to a new id (close 4301, the reason); reconnecting is stopped. */
  onMoved?: (reason: string) => void;
  backoff?: BackoffConfig;
}

export interface Connection {
  provider: WebsocketProvider;
  /** Connects again after a refusal (the person's "Try again"); no-op while connected. */
  resume: () => void;
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
/**
 * At most one renewal on a socket per this interval: with a token lifetime under the server's
 * 60 s warning, each renewal is warned about at once, and answering at once would spin.
 */
const MIN_RENEWAL_INTERVAL_MS = 5_000;

/** Opens the room's provider and keeps it connected until destroyed. */
export function openConnection(options: ConnectionOptions): Connection {
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const provider = new WebsocketProvider(`${options.wsBase}/collab`, options.roomId, options.doc, {
    connect: false,
    params: {},
    ...(options.awareness === undefined ? {} : { awareness: options.awareness }),
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
  /** Stopped by a refusal: only resume() connects again (no retry storm on a full room). */
  let refused = false;
  /** The token the open (or last) socket was given: at connect, or by a renewal. */
  let presented = "";
  let renewing = false;
  let lastRenewalAt = -Infinity;

  /** Answers "token expiring" on the socket that asked; a failure leaves it to the 4401 path. */
  const renewOnSocket = (): void => {
    const ws = provider.ws;
    if (ws === null || renewing) return;
    renewing = true;
    const expiring = presented;
    const send = (): void => {
      options.nextToken(expiring).then(
        (token) => {
          if (destroyed || provider.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
          ws.send(encodeTokenRenewal(token));
          presented = token;
          lastRenewalAt = Date.now();
        },
        (err: unknown) => console.warn("PairPilot: could not renew the socket's token", err),
      ).finally(() => {
        renewing = false;
      });
    };
    setTimeout(send, Math.max(0, lastRenewalAt + MIN_RENEWAL_INTERVAL_MS - Date.now()));
  };

  provider.messageHandlers[messageAuth] = (_encoder, decoder) => {
    const subType = decoding.readVarUint(decoder);
    if (subType === messagePermissionDenied) {
      options.onPermissionDenied(decoding.readVarString(decoder));
    } else if (subType === AUTH_SAVED) {
      options.onSaved?.(Y.decodeStateVector(decoding.readVarUint8Array(decoder)));
    } else if (subType === AUTH_TOKEN_EXPIRING) {
      renewOnSocket();
    }
    // Other sub-types are a newer server's: ignored, as stock clients do.
  };

  const connect = async (): Promise<void> => {
    timer = null;
    if (destroyed || fatal || refused) return;
    try {
      presented = await options.token();
      provider.params = { token: presented };
    } catch (err) {
      options.onState("offline", `cannot get a token: ${String(err)}`);
      scheduleReconnect();
      return;
    }
    provider.connect();
  };

  const scheduleReconnect = (delayMs = backoffDelay(attempt, backoff)): void => {
    if (destroyed || fatal || refused || timer !== null) return;
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
      options.onState("reconnecting", "renewing the sign-in…");
      options.renewToken(presented).then(
        () => void connect(),
        (err: unknown) => {
          options.onState("offline", `sign-in failed: ${String(err)}`);
          scheduleReconnect();
        },
      );
      return;
    }
    if (code === CLOSE_ROOM_MOVED) {
      fatal = true;
      options.onState("offline", "This room moved to a new link");
      options.onMoved?.(reason);
      return;
    }
    if (isRefusal(code)) {
      refused = true;
      fatal = code === CLOSE_ROOM_DELETED;
      options.onState("offline", reason || `the server refused the connection (${code})`);
      options.onRefused(code, reason);
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
    if (refused) return; // coming back online does not lift a refusal
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
    resume: () => {
      if (destroyed || fatal || provider.wsconnected || provider.wsconnecting) return;
      refused = false;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      attempt = 0;
      void connect();
    },
    destroy: () => {
      destroyed = true;
      if (timer !== null) clearTimeout(timer);
      window.removeEventListener("offline", goOffline);
      window.removeEventListener("online", goOnline);
      provider.destroy();
    },
  };
}
