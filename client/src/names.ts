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

/** A room id such as `brave-otter-42`. */
export function randomRoomId(): string {
  return `${pick(ADJECTIVES)}-${pick(ANIMALS)}-${Math.floor(Math.random() * 90) + 10}`;
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
