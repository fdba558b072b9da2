// Serves the built edge worker from workerd through Miniflare's API, without wrangler dev's
// proxy in front (wrangler dev adds its own hop for live reload). Used by benches/run.sh to
// measure the worker itself. Prints the URL once ready and serves until killed.
//
// With CACHE_FLOOR_PORT set it also serves, in a second workerd of the same Miniflare build, a
// bare JavaScript worker that answers `/floor/KEY` from the Cache API with two lookups at once
// (what the edge worker does on a HIT: the entry and the user's event marker), storing a 2 KB
// entry on first use: the local runtime's own price for a cache hit, with none of our code.
//   CORE_ORIGIN=http://127.0.0.1:8080 PORT=8788 [CACHE_FLOOR_PORT=8789] node benches/edge/serve-miniflare.mjs
import { Miniflare } from "miniflare";

const mf = new Miniflare({
  modules: true,
  scriptPath: "edge-worker/build/index.js",
  modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
  compatibilityDate: "2026-04-01",
  host: "127.0.0.1",
  port: Number(process.env.PORT ?? 8788),
  bindings: {
    CORE_ORIGIN: process.env.CORE_ORIGIN ?? "http://127.0.0.1:8080",
    ORIGIN_TIMEOUT_MS: process.env.ORIGIN_TIMEOUT_MS ?? "500",
    // The rate limit is checked on every request, as deployed, but high enough that the load
    // generator's single identity is never refused.
    RATE_LIMIT_PER_MINUTE: "100000000",
    // The benchmarks' end-user tokens (benches/src/lib.rs): a benchmark-only key.
    JWT_HS256_SECRET: "bench-only-hs256-secret-not-for-deployments",
    JWT_ISSUER: "semrec-bench",
    JWT_AUDIENCE: "semrec-bench",
  },
});
const url = await mf.ready;
console.log(url.href);

const cacheFloorWorker = `
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const entry = "https://floor.local/entry" + url.pathname;
    const marker = "https://floor.local/marker" + url.pathname;
    const cache = caches.default;
    let [hit] = await Promise.all([cache.match(entry), cache.match(marker)]);
    if (!hit) {
      await cache.put(entry, new Response("x".repeat(2048), { headers: { "cache-control": "s-maxage=3600" } }));
      return new Response("stored", { headers: { "x-edge-cache": "MISS" } });
    }
    return new Response(hit.body, { headers: { "x-edge-cache": "HIT" } });
  },
};`;
const floor = process.env.CACHE_FLOOR_PORT
  ? new Miniflare({
      modules: true,
      script: cacheFloorWorker,
      compatibilityDate: "2026-04-01",
      host: "127.0.0.1",
      port: Number(process.env.CACHE_FLOOR_PORT),
    })
  : null;
if (floor) console.log((await floor.ready).href);
process.on("SIGTERM", async () => {
  await Promise.all([mf.dispose(), floor?.dispose()]);
  process.exit(0);
});
