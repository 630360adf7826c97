/**
 * Registers the service worker (sw/service-worker.js, written to dist/sw.js by the build) that
 * keeps the built client, so a room opens with no network. Not in `npm run dev`: Vite serves
 * modules there, and a cached one would hide the next edit.
 */
export function registerServiceWorker(): void {
  if (!import.meta.env.PROD || !("serviceWorker" in navigator)) return;
  const register = (): void => {
    // updateViaCache "none": the browser asks the server for sw.js on every check, never its cache.
    navigator.serviceWorker.register("/sw.js", { scope: "/", updateViaCache: "none" }).catch((err: unknown) => {
      console.warn("PairPilot: no service worker; the page will not open offline", err);
    });
  };
  // After the page loaded: the worker's first download must not compete with the page's own.
  if (document.readyState === "complete") register();
  else window.addEventListener("load", register, { once: true });
}
