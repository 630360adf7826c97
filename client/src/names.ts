/** Readable random room ids, guest names and presence colours. */

const ADJECTIVES = [
  "brave", "calm", "clever", "eager", "gentle", "happy", "jolly", "kind", "lively", "lucky",
  "mighty", "nimble", "proud", "quick", "quiet", "sunny", "swift", "tidy", "witty", "zesty",
];
const ANIMALS = [
  "otter", "falcon", "panda", "koala", "lynx", "heron", "badger", "beaver", "dolphin", "fox",
  "gecko", "ibis", "lemur", "moose", "newt", "owl", "puffin", "raven", "seal", "tiger",
];

/**
 * Room ids accepted by the server (DESIGN.md §4). The `-` is escaped because the source is also
 * an HTML `pattern`, which browsers compile with the `v` flag, where a bare `-` in a class is a
 * syntax error (and the browser then ignores the pattern).
 */
export const ROOM_ID_PATTERN = /^[A-Za-z0-9_\-]{1,64}$/;

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)]!;
}

/** Random bytes in a room id made here: 128 bits, far past guessing (at least 96 are asked). */
export const ROOM_ID_RANDOM_BYTES = 16;
/** Characters after the readable words below which an id counts as guessable (16 = 96 bits). */
const UNGUESSABLE_TAIL = 16;

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * A room id such as `brave-otter-Xb3…` (22 base64url characters from `crypto.getRandomValues`):
 * the words are for people, the tail is what no one can guess.
 */
export function randomRoomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(ROOM_ID_RANDOM_BYTES));
  return `${pick(ADJECTIVES)}-${pick(ANIMALS)}-${base64url(bytes)}`;
}

/**
 * Whether an id could be guessed: the old start page's `brave-otter-42`, or any id whose part
 * after its readable words (`word-word-`) is under 16 characters (96 bits if random).
 */
export function isGuessableRoomId(roomId: string): boolean {
  const tail = roomId.replace(/^[a-z]+-[a-z]+-/, "");
  return tail.length < UNGUESSABLE_TAIL;
}

export function randomGuestName(): string {
  const animal = pick(ANIMALS);
  return `Guest ${animal[0]!.toUpperCase()}${animal.slice(1)} ${Math.floor(Math.random() * 90) + 10}`;
}

/** A stable colour per user id, with a light variant for selections. */
export function colourFor(userId: string): { color: string; colorLight: string } {
  let hash = 0;
  for (const ch of userId) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  const hue = hash % 360;
  return { color: `hsl(${hue} 70% 42%)`, colorLight: `hsl(${hue} 70% 42% / 0.25)` };
}
