/*
 * PairPilot's service worker (client/README.md, "This device's copies"): keeps the built client
 * so a room a person had open loads with no network. The build writes it to dist/sw.js with
 * BUILD (a hash of the build's file names) and ASSETS (every file of the bundle) filled in, so
 * each build is a new worker: installed on the next online load, it replaces the old cache.
 *
 * Only the built client is cached. Pages (`/`, `/r/{id}`) go to the network first and fall back
 * to the cached page only when the network fails, so an online load always gets the newest
 * build. The API, the WebSocket, /pyodide/ and everything else are never touched here.
 */
const BUILD = "__BUILD__";
const ASSETS = __ASSETS__;
const PREFIX = "pairpilot-client-";
const CACHE = PREFIX + BUILD;
const PAGE = "/";
const CACHED = new Set(ASSETS);

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => cache.addAll([PAGE, ...ASSETS]))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((key) => key.startsWith(PREFIX) && key !== CACHE).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

function isPage(url) {
  return url.pathname === "/" || /^\/r\/[^/]+\/?$/.test(url.pathname);
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && isPage(url)) {
    event.respondWith(
      fetch(request).catch(() => caches.open(CACHE).then((cache) => cache.match(PAGE)).then((page) => page ?? Response.error())),
    );
  } else if (CACHED.has(url.pathname)) {
    event.respondWith(caches.open(CACHE).then((cache) => cache.match(request)).then((cached) => cached ?? fetch(request)));
  }
});
