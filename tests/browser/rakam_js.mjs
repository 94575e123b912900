// Runs Rakam's browser library (npm `rakam-js`) in Chromium against the
// gateway: a page on an origin of its own (so every call is cross-origin,
// with credentials, as the library sends them) logs an event and sets a
// user's properties through `rakam.User()`. Prints one JSON object: what
// each call's callback was given.
//
//     node rakam_js.mjs <node_modules> <chromium> <gateway URL> <write key> <user id>

import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

import { servePage } from "./page.mjs";

const [modules, chromiumPath, gateway, writeKey, userId] = process.argv.slice(2);
const require = createRequire(path.join(modules, "noop.js"));
const { chromium } = require("playwright-core");
const { server, origin } = await servePage("rakam", fs.readFileSync(path.join(modules, "rakam-js", "rakam.js")));

const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
try {
  const tab = await browser.newPage();
  await tab.goto(origin + "/");
  const endpoint = new URL(gateway).host;
  const answers = await tab.evaluate(
    async ({ endpoint, writeKey, userId }) => {
      window.rakam.init(writeKey, userId, { apiEndpoint: endpoint, saveEvents: false });
      const user = window.rakam.User();
      const call = (f) => new Promise((resolve) => f((status, body) => resolve({ status, body })));
      return {
        event: await call((done) => window.rakam.logEvent("signed_up", { plan: "pro" }, done)),
        set: await call((done) => user.set({ plan: "pro", seats: 2 }, done)),
        setOnce: await call((done) => user.setOnce({ plan: "free", country: "DE" }, done)),
        increment: await call((done) => user.increment("seats", 3, done)),
        unset: await call((done) => user.unset("country", done)),
      };
    },
    { endpoint, writeKey, userId },
  );
  console.log(JSON.stringify({ origin, answers }));
} finally {
  await browser.close();
  server.close();
}
