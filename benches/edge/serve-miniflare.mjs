// Serves the built edge worker from workerd through Miniflare's API, without wrangler dev's
// proxy in front (wrangler dev adds its own hop for live reload). Used by benches/run.sh to
// measure the worker itself. Prints the URL once ready and serves until killed.
//   CORE_ORIGIN=http://127.0.0.1:8080 PORT=8788 node benches/edge/serve-miniflare.mjs
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
  },
});
const url = await mf.ready;
console.log(url.href);
process.on("SIGTERM", async () => {
  await mf.dispose();
  process.exit(0);
});
