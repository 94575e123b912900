// Sends every call of one analytics SDK (installed from npm) to a gateway.
//
//     node sdk_clients.mjs <node_modules> <segment|rudderstack|posthog> <base URL> <write key>
//
// Each SDK is pointed at the gateway as its users would point it at its
// own service, makes every call type it has with fixed users, and flushes;
// the process fails if the SDK reports an error. Prints a JSON object: the
// calls made.

import { createRequire } from "node:module";
import path from "node:path";

const [modules, sdk, base, key] = process.argv.slice(2);
const require = createRequire(path.join(modules, "noop.js"));
const errors = [];
const calls = [];

if (sdk === "segment") {
  const { Analytics } = require("@segment/analytics-node");
  const a = new Analytics({ writeKey: key, host: base, flushAt: 50, flushInterval: 100, maxRetries: 5 });
  a.on("error", (e) => errors.push(String(e?.reason ?? e?.message ?? e)));
  a.track({ userId: "u1", event: "Order Completed", properties: { total: 12.5, items: 2 }, context: { ip: "203.0.113.7" } });
  a.track({ anonymousId: "anon1", event: "Signed Up", properties: { plan: "pro" } });
  a.identify({ userId: "u1", traits: { email: "u1@example.com", plan: "pro" } });
  a.page({ userId: "u1", category: "Docs", name: "Home", properties: { url: "https://example.com/" } });
  a.screen({ userId: "u1", name: "Main" });
  a.group({ userId: "u1", groupId: "g1", traits: { name: "Acme" } });
  a.alias({ userId: "u1", previousId: "anon1" });
  await a.closeAndFlush({ timeout: 60000 });
  calls.push("track", "track", "identify", "page", "screen", "group", "alias");
} else if (sdk === "rudderstack") {
  const Analytics = require("@rudderstack/rudder-sdk-node");
  const a = new Analytics(key, { dataPlaneUrl: base, flushAt: 50, flushInterval: 100, retryCount: 5 });
  const done = (e) => e && errors.push(String(e?.message ?? e));
  a.track({ userId: "u1", event: "Order Completed", properties: { total: 12.5, items: 2 }, context: { ip: "203.0.113.7" } }, done);
  a.track({ anonymousId: "anon1", event: "Signed Up", properties: { plan: "pro" } }, done);
  a.identify({ userId: "u1", traits: { email: "u1@example.com", plan: "pro" } }, done);
  a.page({ userId: "u1", category: "Docs", name: "Home", properties: { url: "https://example.com/" } }, done);
  a.screen({ userId: "u1", name: "Main" }, done);
  a.group({ userId: "u1", groupId: "g1", traits: { name: "Acme" } }, done);
  a.alias({ userId: "u1", previousId: "anon1" }, done);
  await a.flush();
  calls.push("track", "track", "identify", "page", "screen", "group", "alias");
} else if (sdk === "posthog") {
  const { PostHog } = require("posthog-node");
  const p = new PostHog(key, { host: base, flushAt: 50, flushInterval: 100, fetchRetryCount: 5, fetchRetryDelay: 200 });
  p.on("error", (e) => errors.push(String(e?.message ?? e)));
  p.capture({ distinctId: "u1", event: "Order Completed", properties: { total: 12.5, items: 2, $ip: "203.0.113.7" } });
  p.capture({ distinctId: "anon1", event: "$pageview", properties: { $current_url: "https://example.com/" } });
  p.identify({ distinctId: "u1", properties: { email: "u1@example.com", plan: "pro" } });
  p.alias({ distinctId: "u1", alias: "anon1" });
  p.groupIdentify({ groupType: "company", groupKey: "g1", properties: { name: "Acme" } });
  await p.shutdown(60000);
  calls.push("capture", "capture", "identify", "alias", "groupIdentify");
} else {
  console.error(`unknown SDK ${sdk}`);
  process.exit(2);
}

if (errors.length) {
  console.error(`${sdk} reported errors: ${JSON.stringify(errors)}`);
  process.exit(1);
}
console.log(JSON.stringify({ sdk, calls }));
