"""Sends every call of one analytics SDK (installed from PyPI) to a gateway.

    python sdk_clients.py <segment|rudderstack|posthog|snowplow> <base URL> <write key> <gzip: 0|1>

Each SDK is pointed at the gateway as its users would point it at its own
service, makes every call type it has with fixed users, and flushes; the
process fails if the SDK reports a delivery it gave up on. Prints a JSON
object: the calls made.
"""

import json
import logging
import sys

sdk, base, key, gzip = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3], sys.argv[4] == "1"
failures = []
calls = []


def segment_like(module):
    module.write_key = key
    module.gzip = gzip
    module.max_retries = 5
    module.on_error = lambda error, batch: failures.append(str(error))
    module.track("u1", "Order Completed", {"total": 12.5, "items": 2, "coupon": "X"}, context={"ip": "203.0.113.7"})
    module.track(anonymous_id="anon1", event="Signed Up", properties={"plan": "pro"})
    module.identify("u1", {"email": "u1@example.com", "plan": "pro"})
    module.page("u1", "Docs", "Home", {"url": "https://example.com/"})
    module.screen("u1", "App", "Main")
    module.group("u1", "g1", {"name": "Acme"})
    module.alias("anon1", "u1")
    module.flush()
    calls.extend(["track", "track", "identify", "page", "screen", "group", "alias"])


if sdk == "segment":
    import segment.analytics as analytics

    analytics.host = base
    segment_like(analytics)
elif sdk == "rudderstack":
    import rudderstack.analytics as analytics

    analytics.dataPlaneUrl = base
    segment_like(analytics)
elif sdk == "posthog":
    from posthog import Posthog

    client = Posthog(key, host=base, gzip=gzip, max_retries=5, on_error=lambda e, batch: failures.append(str(e)))
    client.capture("Order Completed", distinct_id="u1", properties={"total": 12.5, "items": 2, "$ip": "203.0.113.7"})
    client.capture("$pageview", distinct_id="anon1", properties={"$current_url": "https://example.com/"})
    client.set(distinct_id="u1", properties={"email": "u1@example.com", "plan": "pro"})
    client.set_once(distinct_id="u1", properties={"first_seen": "docs"})
    client.alias("u1", "anon1")
    client.group_identify("company", "g1", {"name": "Acme"})
    client.flush()
    client.shutdown()
    calls.extend(["capture", "capture", "set", "set_once", "alias", "group_identify"])
elif sdk == "snowplow":
    import time

    from snowplow_tracker import (
        Emitter, PageView, SelfDescribing, SelfDescribingJson, StructuredEvent, Subject, Tracker,
    )

    def delivered(emitter):
        """Flushes, then waits while the emitter re-sends what failed (it
        puts failed events back and retries them on a timer)."""
        emitter.flush()
        deadline = time.time() + 60
        while emitter.event_store.size() > 0 or emitter.retry_timer.is_active():
            if time.time() > deadline:
                failures.append(f"{emitter.event_store.size()} events still unsent")
                return
            time.sleep(0.1)

    post = Emitter(f"{base}/snowplow/{key}", method="post", batch_size=10)
    tracker = Tracker(namespace="web", emitters=post, app_id="shop", subject=Subject().set_user_id("u1"))
    tracker.track(StructuredEvent(category="shop", action="Add To Cart", label="sku-1", value=2))
    tracker.track(PageView(page_url="https://example.com/docs", page_title="Docs", referrer="https://example.com/"))
    context = [SelfDescribingJson("iglu:com.example/device/jsonschema/1-0-0", {"model": "x1"})]
    click = SelfDescribingJson("iglu:com.example/link_click/jsonschema/1-0-0", {"target": "https://example.com/a"})
    tracker.track(SelfDescribing(click, context=context))
    delivered(post)
    get = Emitter(f"{base}/snowplow/{key}", method="get")
    Tracker(namespace="web", emitters=get, app_id="shop", subject=Subject().set_user_id("u2")).track(
        StructuredEvent(category="shop", action="Add To Cart", label="sku-2", value=1)
    )
    delivered(get)
    calls.extend(["se", "pv", "ue", "se (GET)"])
else:
    sys.exit(f"unknown SDK {sdk}")

if failures:
    sys.exit(f"{sdk} gave up on deliveries: {failures}")
print(json.dumps({"sdk": sdk, "calls": calls}))
