// Runs PostHog's browser SDK (npm `posthog-js`) in Chromium against the
// gateway: a page on an origin of its own captures events and identifies
// a user, with batching off so that each call is sent as it is made.
// Prints one JSON object: the requests the page sent to the gateway and
// the answers' statuses.
//
//     node posthog_js.mjs <node_modules> <chromium> <gateway URL> <write key>

import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

import { servePage } from "./page.mjs";

const [modules, chromiumPath, gateway, writeKey] = process.argv.slice(2);
const require = createRequire(path.join(modules, "noop.js"));
const { chromium } = require("playwright-core");
const library = fs.readFileSync(path.join(modules, "posthog-js", "dist", "array.full.no-external.js"));
const { server, origin } = await servePage("posthog", library);

const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
const sent = [];
try {
  const tab = await browser.newPage();
  tab.on("response", (response) => {
    const url = new URL(response.url());
    if (url.origin === new URL(gateway).origin && response.request().method() === "POST") {
      sent.push({ path: url.pathname, status: response.status() });
    }
  });
  await tab.goto(origin + "/docs");
  await tab.evaluate(
    ({ gateway, writeKey }) => {
      window.posthog.init(writeKey, {
        api_host: gateway,
        request_batching: false,
        autocapture: false,
        capture_pageview: true,
        capture_pageleave: false,
        disable_session_recording: true,
        advanced_disable_flags: true,
        disable_surveys: true,
        persistence: "memory",
        // Headless Chromium says so in its user agent.
        opt_out_useragent_filter: true,
      });
      window.posthog.capture("Order Completed", { total: 12.5 });
      window.posthog.identify("u1", { email: "u1@example.com" });
    },
    { gateway, writeKey },
  );
  // Each call is one request; wait for the three events' answers.
  const deadline = Date.now() + 30000;
  while (sent.filter((s) => s.status === 200).length < 3 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  console.log(JSON.stringify({ origin, sent }));
} finally {
  await browser.close();
  server.close();
}
