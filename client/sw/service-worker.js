/*
 * PairPilot's service worker (client/README.md, "This device's copies"): keeps the built client
 * so a room a person had open loads with no network, and the Pyodide runtime once it was loaded,
 * so Run works offline. The build writes it to dist/sw.js with BUILD (a hash of the build's file
 * names and PYODIDE's key), ASSETS (every file of the bundle) and PYODIDE (the runtime files'
 * paths and a key: Pyodide's version and a hash of the files) filled in, so each build is a new
 * worker: installed on the next online load, it replaces the old cache.
 *
 * Pages (`/`, `/r/{id}`) and the Pyodide files go to the network first and fall back to the
 * cache only when the network fails, so an online load always gets the newest build and the
 * server's current Pyodide. The API, the WebSocket, /monitoring and everything else are never
 * touched here.
 */
const BUILD = "__BUILD__";
const ASSETS = __ASSETS__;
const PYODIDE = __PYODIDE__;
const PREFIX = "pairpilot-client-";
const CACHE = PREFIX + BUILD;
// Keyed by Pyodide, not by the build: a client deploy with the same Pyodide keeps the copy.
const PYODIDE_PREFIX = "pairpilot-pyodide-";
const PYODIDE_CACHE = PYODIDE_PREFIX + PYODIDE.key;
const PAGE = "/";
const CACHED = new Set(ASSETS);
const PYODIDE_FILES = new Set(PYODIDE.files);

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => cache.addAll([PAGE, ...ASSETS]))
      .then(() => self.skipWaiting()),
  );
});

/** Another build's client, or another Pyodide's runtime. */
function isStale(key) {
  return (key.startsWith(PREFIX) && key !== CACHE) || (key.startsWith(PYODIDE_PREFIX) && key !== PYODIDE_CACHE);
}

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter(isStale).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

function isPage(url) {
  return url.pathname === "/" || /^\/r\/[^/]+\/?$/.test(url.pathname);
}

/**
 * One Pyodide file: from the network, kept for offline use (written again only when the server's
 * file changed, by its ETag: 13 MB are not rewritten at every Python start); from the cache
 * only when the network fails.
 */
async function pyodideFile(event, request, url) {
  // Kept under the bare path, one entry per file whatever the query: the cache stays bounded.
  const key = url.origin + url.pathname;
  const cache = await caches.open(PYODIDE_CACHE);
  let response;
  try {
    response = await fetch(request);
  } catch {
    return (await cache.match(key, { ignoreVary: true })) ?? Response.error();
  }
  if (response.status !== 200) return response;
  const kept = await cache.match(key, { ignoreVary: true });
  const etag = response.headers.get("ETag");
  if (!kept || etag === null || kept.headers.get("ETag") !== etag) {
    event.waitUntil(cache.put(key, response.clone()).catch((err) => {
      console.warn("PairPilot: could not keep a Pyodide file for offline runs", request.url, err);
    }));
  }
  return response;
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
  } else if (PYODIDE_FILES.has(url.pathname) && !request.headers.has("Range")) {
    event.respondWith(pyodideFile(event, request, url));
  }
});
