//! `GET /stream/subscribe` on every metadata backend and both logs through
//! the real binary: delivery from two gateways (on the shared Kafka log) to
//! several subscribers with filters and columns, resuming by `Last-Event-ID`
//! with nothing lost or repeated, a slow subscriber cut off while others go
//! on, a row-filter plugin applied to the stream, limits, and projects kept apart.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weir_tests::sse::{Message, Sse};
use weir_tests::{Backend, Gateway, Keys, Options, on_every_backend, plugin_component};

const WAIT: Duration = Duration::from_secs(15);

fn options(extra: &[(&str, &str)]) -> Options {
    let mut env = vec![
        ("WEIR_BATCH__INTERVAL_MS".to_owned(), "3600000".to_owned()),
        ("WEIR_FILE_LOG__PARTITIONS".to_owned(), "3".to_owned()),
        ("WEIR_KAFKA__PARTITIONS".to_owned(), "3".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Options { env, ..Options::default() }
}

fn path(read_key: &str, data: &Value) -> String {
    let data: String = form_encode(&data.to_string());
    format!("/stream/subscribe?read_key={read_key}&data={data}")
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn subscribe(gw: &Gateway, k: &Keys, data: Value) -> Sse {
    let sse = Sse::connect(gw.base(), &path(&k.read, &data), &[]).await;
    assert_eq!(sse.status, 200, "subscribe {data}");
    sse
}

async fn send(gw: &Gateway, k: &Keys, events: &[(&str, Value)]) {
    let events: Vec<(String, Value)> = events.iter().map(|(c, p)| ((*c).to_owned(), p.clone())).collect();
    assert!(gw.client.batch(&k.write, &events).await.expect("batch").is_stored());
}

/// Objects received until `n` have come (or `WAIT` passed), with the ids
/// of their messages.
async fn receive(sse: &mut Sse, n: usize) -> (Vec<Value>, Vec<String>) {
    let mut objects = Vec::new();
    let mut ids = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while objects.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(m) = sse.next_event(left).await else { break };
        assert_eq!(m.event.as_deref(), Some("data"), "{m:?}");
        let batch: Vec<Value> = serde_json::from_str(&m.data).expect("valid JSON");
        assert!(!batch.is_empty(), "no empty messages");
        ids.push(m.id.clone().expect("every message has an id"));
        objects.extend(batch);
    }
    (objects, ids)
}

/// Nothing more arrives for a while.
async fn quiet(sse: &mut Sse) {
    if let Some(m) = sse.next_event(Duration::from_millis(700)).await {
        panic!("unexpected message {m:?}");
    }
}

fn set(objects: &[Value]) -> BTreeSet<String> {
    objects.iter().map(|o| o.to_string()).collect()
}

async fn start(backend: Backend, extra: &[(&str, &str)]) -> (Gateway, Keys) {
    let gw = Gateway::start_with(backend, options(extra)).await;
    let k = gw.create_project("shop").await;
    // The collections exist before anyone subscribes.
    let page = json!({"url": "/before", "ms": 99, "country": "DE", "n": -1});
    send(&gw, &k, &[("pageview", page), ("click", json!({"x": 0, "n": -1}))]).await;
    (gw, k)
}

async fn subscribers_get_new_events_by_their_queries(backend: Backend) {
    let (gw, k) = start(backend, &[]).await;
    // On the shared Kafka log a second gateway takes half the events.
    let second = match backend {
        Backend::Kafka => Some(gw.sibling(options(&[])).await),
        _ => None,
    };
    let slow_pages = json!({"collections": [{"name": "pageview", "filter": "ms > 10"}], "columns": ["url", "ms"]});
    let mut a = subscribe(&gw, &k, slow_pages.clone()).await;
    let mut a2 = subscribe(second.as_ref().unwrap_or(&gw), &k, slow_pages).await;
    let mut b = subscribe(&gw, &k, json!({"collections": null})).await;
    let both =
        json!({"collections": [{"name": "click"}, {"name": "pageview", "filter": "ms < 0"}], "columns": ["x", "url"]});
    let mut c = subscribe(&gw, &k, both).await;
    let mut expected_a = Vec::new();
    let mut expected_b = Vec::new();
    for i in 0..40 {
        let via = if i % 2 == 0 { &gw } else { second.as_ref().unwrap_or(&gw) };
        let url = format!("/p{i} \"quoted\" \\ \n");
        let page = json!({"url": url, "ms": i, "country": "DE"});
        let click = json!({"x": i});
        send(via, &k, &[("pageview", page), ("click", click)]).await;
        if i > 10 {
            expected_a.push(json!({"_collection": "pageview", "url": url, "ms": f64::from(i)}));
        }
        expected_b.push(json!({"_collection": "click", "x": f64::from(i)}));
    }
    let (got_a, ids) = receive(&mut a, expected_a.len()).await;
    assert_eq!(set(&got_a), set(&expected_a), "a filter and columns");
    assert_eq!(got_a.len(), expected_a.len(), "each once");
    assert!(ids.iter().all(|id| id.starts_with("pageview:")), "{ids:?}");
    let (got_a2, _) = receive(&mut a2, expected_a.len()).await;
    assert_eq!(set(&got_a2), set(&expected_a), "the same from the other gateway");
    let (got_b, _) = receive(&mut b, 80).await;
    let clicks: Vec<Value> = got_b
        .iter()
        .filter(|o| o["_collection"] == "click")
        .map(|o| json!({"_collection": o["_collection"], "x": o["x"]}))
        .collect();
    assert_eq!(set(&clicks), set(&expected_b), "every collection, every column");
    assert_eq!(got_b.len(), 80);
    assert!(got_b.iter().all(|o| o["url"] != "/before"), "nothing from before the subscription");
    let (got_c, _) = receive(&mut c, 40).await;
    let with_missing: Vec<Value> =
        expected_b.iter().map(|o| json!({"_collection": "click", "x": o["x"], "url": null})).collect();
    assert_eq!(set(&got_c), set(&with_missing), "asked-for columns, null where the collection has none");
    quiet(&mut a).await;
}

async fn a_resume_by_last_event_id_loses_and_repeats_nothing(backend: Backend) {
    let (gw, k) = start(backend, &[]).await;
    let data = json!({"collections": [{"name": "pageview"}, {"name": "click"}], "columns": ["n"]});
    let mut first = subscribe(&gw, &k, data.clone()).await;
    let mut sent = Vec::new();
    for i in 0..30 {
        let collection = if i % 3 == 0 { "click" } else { "pageview" };
        send(&gw, &k, &[(collection, json!({"n": i}))]).await;
        sent.push(json!({"_collection": collection, "n": f64::from(i)}));
    }
    let (got, ids) = receive(&mut first, 12).await;
    assert!(got.len() >= 12);
    let last = ids.last().expect("an id").clone();
    drop(first);
    for i in 30..60 {
        let collection = if i % 3 == 0 { "click" } else { "pageview" };
        send(&gw, &k, &[(collection, json!({"n": i}))]).await;
        sent.push(json!({"_collection": collection, "n": f64::from(i)}));
    }
    let mut again = Sse::connect(gw.base(), &path(&k.read, &data), &[("last-event-id", &last)]).await;
    assert_eq!(again.status, 200);
    let (rest, _) = receive(&mut again, sent.len() - got.len()).await;
    let mut all = got.clone();
    all.extend(rest);
    assert_eq!(all.len(), sent.len(), "nothing repeated");
    assert_eq!(set(&all), set(&sent), "nothing lost");
    quiet(&mut again).await;

    let bad = Sse::connect(gw.base(), &path(&k.read, &data), &[("last-event-id", "not an id")]).await;
    let error = first_message(bad).await;
    assert_eq!(error.event.as_deref(), Some("error"));
    assert!(error.data.contains("Last-Event-ID"), "{error:?}");
}

async fn first_message(mut sse: Sse) -> Message {
    assert_eq!(sse.status, 200);
    sse.next_event(WAIT).await.expect("a message")
}

/// A subscriber that reads nothing: a socket with a small receive buffer
/// whose request is sent and whose answer is left unread.
async fn unread_subscriber(gw: &Gateway, k: &Keys, data: &Value) -> tokio::net::TcpStream {
    let addr: std::net::SocketAddr = gw.base().trim_start_matches("http://").parse().expect("address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("buffer");
    let mut stream = socket.connect(addr).await.expect("connect");
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
        path(&k.read, data)
    );
    stream.write_all(request.as_bytes()).await.expect("request");
    stream
}

async fn a_slow_subscriber_is_cut_off_while_others_go_on(backend: Backend) {
    // Messages of at most five events (100 KB), sent ten at a time to a
    // reader with room for a megabyte: the reader never has more than
    // two messages waiting, however busy the machine.
    let limits = [
        ("WEIR_STREAM__BUFFER_MESSAGES", "64"),
        ("WEIR_STREAM__BUFFER_BYTES", "1000000"),
        ("WEIR_STREAM__BATCH_BYTES", "100000"),
    ];
    let (gw, k) = start(backend, &limits).await;
    let data = json!({"collections": [{"name": "pageview"}]});
    let mut slow = unread_subscriber(&gw, &k, &data).await;
    let mut fast = subscribe(&gw, &k, data).await;
    // The reader says how far it got, and the next events go out once it
    // has caught up, while the slow one takes nothing.
    let (progress, mut seen) = tokio::sync::watch::channel(0usize);
    let reading = tokio::spawn(async move {
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while got < 1000 {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(m) = fast.next_event(left).await else { break };
            assert_eq!(m.event.as_deref(), Some("data"), "{m:?}");
            got += serde_json::from_str::<Vec<Value>>(&m.data).expect("valid JSON").len();
            let _ = progress.send(got);
        }
        got
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 20 MB: more than the socket buffers between the gateway and the
    // slow one hold (on Linux at most 4 MB to send) and the gateway's own
    // buffer, so that the latter fills.
    let padding = "x".repeat(20_000);
    for chunk in 0..100 {
        let events: Vec<_> =
            (chunk * 10..(chunk + 1) * 10).map(|i| ("pageview", json!({"n": i, "padding": padding}))).collect();
        send(&gw, &k, &events).await;
        let sent = (chunk + 1) * 10;
        tokio::time::timeout(WAIT, seen.wait_for(|n| *n >= sent)).await.expect("the reader keeps up").expect("reader");
    }
    let got = reading.await.expect("reader");
    assert_eq!(got, 1000, "the subscriber that reads gets everything");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, slow.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the slow one is closed; {} bytes came: ...{}",
        answer.len(),
        String::from_utf8_lossy(&answer[answer.len().saturating_sub(200)..])
    );
    let text = String::from_utf8_lossy(&answer);
    let tail = text.rfind("event: error").map(|i| &text[i..]).unwrap_or_default();
    assert!(
        tail.contains("did not keep up"),
        "the slow one is told why: ...{}",
        &text[text.len().saturating_sub(300)..]
    );
    assert!(tail.contains("\"error_code\":429"), "{tail}");
}

async fn a_row_filter_plugin_applies_to_the_stream(backend: Backend) {
    let (gw, k) = start(backend, &[]).await;
    let r = gw.upload_plugin(&k.master, "row-filter", "hook=rewrite", plugin_component("row-filter")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let config = json!({"name": "row-filter", "config": {"filters": {"pageview": "country = {{country}}"}}});
    assert_eq!(gw.post("/plugin/config", &[("master_key", &k.master)], &config).await.status, 200);
    let data = json!({"collections": [{"name": "pageview"}], "columns": ["url", "country"]});
    let mut de = Sse::connect(gw.base(), &path(&k.read, &data), &[("x-weir-country", "DE")]).await;
    assert_eq!(de.status, 200);
    let without = Sse::connect(gw.base(), &path(&k.read, &data), &[]).await;
    let refused = first_message(without).await;
    assert_eq!(refused.event.as_deref(), Some("error"), "the filter needs the attribute: {refused:?}");
    for (url, country) in [("/a", "DE"), ("/b", "FR"), ("/c", "DE"), ("/d", "US")] {
        send(&gw, &k, &[("pageview", json!({"url": url, "country": country}))]).await;
    }
    let (got, _) = receive(&mut de, 2).await;
    assert_eq!(
        set(&got),
        set(&[
            json!({"_collection": "pageview", "url": "/a", "country": "DE"}),
            json!({"_collection": "pageview", "url": "/c", "country": "DE"})
        ])
    );
    quiet(&mut de).await;
}

async fn limits_requests_and_tenants(backend: Backend) {
    let limits = [
        ("WEIR_STREAM__MAX_PER_PROJECT", "2"),
        ("WEIR_STREAM__MAX_SUBSCRIBERS", "3"),
        ("WEIR_STREAM__HEARTBEAT_MS", "200"),
        ("WEIR_PROJECTS__ALLOW_DELETION", "true"),
    ];
    let (gw, k) = start(backend, &limits).await;
    let other = gw.create_project("other").await;
    send(&gw, &other, &[("pageview", json!({"url": "/other"}))]).await;
    let data = json!({"collections": [{"name": "pageview"}]});
    let mut one = subscribe(&gw, &k, data.clone()).await;
    let _two = subscribe(&gw, &k, data.clone()).await;
    let three = Sse::connect(gw.base(), &path(&k.read, &data), &[]).await;
    assert_eq!(three.status, 429, "a third subscriber of the project");
    let mut theirs = subscribe(&gw, &other, data.clone()).await;
    let third = gw.create_project("third").await;
    send(&gw, &third, &[("pageview", json!({"url": "/third"}))]).await;
    let over = Sse::connect(gw.base(), &path(&third.read, &data), &[]).await;
    assert_eq!(over.status, 429, "a fourth subscriber of the gateway");
    // A comment heartbeat while nothing happens.
    let beat = one.next(Duration::from_secs(5)).await.expect("a heartbeat");
    assert_eq!(beat.comment.as_deref(), Some("heartbeat"), "{beat:?}");

    // Another project's events never reach this one's subscribers.
    send(&gw, &other, &[("pageview", json!({"url": "/theirs"}))]).await;
    send(&gw, &k, &[("pageview", json!({"url": "/ours"}))]).await;
    let (ours, _) = receive(&mut one, 1).await;
    assert_eq!(
        (ours.len(), ours[0]["url"].clone(), ours[0]["_collection"].clone()),
        (1, json!("/ours"), json!("pageview"))
    );
    let (got, _) = receive(&mut theirs, 1).await;
    assert_eq!(got[0]["url"], "/theirs");
    quiet(&mut one).await;

    // Keys, the Accept header, and the request.
    let no_accept = Sse::connect(gw.base(), &path(&k.read, &data), &[("accept", "application/json")]).await;
    assert_eq!(no_accept.status, 406);
    assert_eq!(Sse::connect(gw.base(), &path(&k.write, &data), &[]).await.status, 403);
    assert_eq!(Sse::connect(gw.base(), &path("", &data).replace("read_key=&", ""), &[]).await.status, 401);
    for (data, naming) in [
        (json!({"collections": [{"name": "secret"}]}), "not a collection"),
        (json!({"collections": [{"name": "click"}]}), "not a collection"),
        (json!({"collections": [{"name": "pageview", "filter": "url = 'x') OR (1=1"}]}), "Couldn't parse"),
        (json!({"collections": [{"name": "pageview", "filter": "nothing > 1"}]}), "nothing"),
        (json!({"collections": [{"name": "pageview"}], "columns": ["--"]}), "--"),
        (json!({"collections": [{"name": "pageview"}], "other": 1}), "other"),
    ] {
        let m = first_message(Sse::connect(gw.base(), &path(&other.read, &data), &[]).await).await;
        assert_eq!(m.event.as_deref(), Some("error"), "{data}");
        let error: Value = serde_json::from_str(&m.data).expect("JSON");
        assert_eq!(error["error_code"], 400, "{data}: {error}");
        assert!(error["error"].as_str().is_some_and(|e| e.contains(naming)), "{data}: {error}");
    }
    let m = first_message(Sse::connect(gw.base(), &format!("/stream/subscribe?read_key={}", k.read), &[]).await).await;
    assert!(m.data.contains("data query parameter is required"), "{m:?}");

    // A deleted project's subscribers are told, and the stream ends.
    let r = gw.post("/project/delete", &[("master_key", &other.master)], &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let last = theirs.next_event(WAIT).await.expect("a last word");
    assert_eq!(last.event.as_deref(), Some("error"), "{last:?}");
    assert!(last.data.contains("stopped"), "{last:?}");
    assert!(theirs.ended(Duration::from_secs(5)).await);
}

on_every_backend!(
    subscribers_get_new_events_by_their_queries,
    a_resume_by_last_event_id_loses_and_repeats_nothing,
    a_slow_subscriber_is_cut_off_while_others_go_on,
    a_row_filter_plugin_applies_to_the_stream,
    limits_requests_and_tenants,
);
