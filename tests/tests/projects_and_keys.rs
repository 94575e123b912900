//! `/project/*` over HTTP against the real gateway: the lock key, projects,
//! keys looked up strictly per kind, revocation and deletion.

use serde_json::json;
use weir_tests::{Backend, Gateway, Options, keys_of, on_every_backend};

fn with_env(pairs: &[(&str, &str)]) -> Options {
    Options { env: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..Options::default() }
}

async fn the_lock_key_guards_project_creation_and_listing(backend: Backend) {
    let gw = Gateway::start_with(backend, with_env(&[("WEIR_LOCK_KEY", "s3cret")])).await;
    for body in [json!({"name": "shop"}), json!({"name": "shop", "lock_key": "wrong"})] {
        let r = gw.post("/project/create", &[], &body).await;
        assert_eq!((r.status, r.json()), (403, json!({"error": "lock_key is invalid", "error_code": 403})));
    }
    let r = gw.post("/project/create", &[], &json!({"name": "My_Shop", "lock_key": "s3cret"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let keys = keys_of(&r.json());
    assert!(keys.master.len() >= 32 && keys.read.len() >= 32 && keys.write.len() >= 32);
    assert!(keys.master != keys.read && keys.read != keys.write);

    let again = gw.post("/project/create", &[], &json!({"name": "my_shop", "lock_key": "s3cret"})).await;
    assert_eq!(again.status, 409, "names are lowercased, so this is the same project");
    let bad = gw.post("/project/create", &[], &json!({"name": "my-shop", "lock_key": "s3cret"})).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error_code"], 400);
    let empty = gw.post("/project/create", &[], &json!({"name": "", "lock_key": "s3cret"})).await;
    assert_eq!(empty.status, 400);

    let listed = gw.post("/project/list", &[], &json!({"lock_key": "s3cret"})).await;
    assert_eq!((listed.status, listed.json()), (200, json!(["my_shop"])));
    assert_eq!(gw.post("/project/list", &[], &json!({})).await.status, 403);
}

async fn without_a_lock_key_loopback_clients_create_projects(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let keys = gw.create_project("shop").await;
    assert!(!keys.write.is_empty());
    let listed = gw.post("/project/list", &[], &json!({})).await;
    assert_eq!(listed.json(), json!(["shop"]));
}

async fn keys_open_only_endpoints_of_their_kind(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let other = gw.create_project("other").await;

    // A read endpoint: the read key, from the header or the query string.
    assert_eq!(gw.post("/project/collection", &[("read_key", &k.read)], &json!({})).await.status, 200);
    let by_query = gw.post(&format!("/project/collection?read_key={}", k.read), &[], &json!({})).await;
    assert_eq!(by_query.status, 200);
    let invalid = json!({"error": "read_key is invalid", "error_code": 403});
    for wrong in [&k.master, &k.write, &"not-a-key".to_owned()] {
        let r = gw.post("/project/collection", &[("read_key", wrong)], &json!({})).await;
        assert_eq!((r.status, r.json()), (403, invalid.clone()), "a key of another kind or none at all look alike");
    }
    let missing = gw.post("/project/collection", &[], &json!({})).await;
    assert_eq!((missing.status, missing.json()), (401, json!({"error": "read_key is missing", "error_code": 401})));
    let r = gw.post("/project/collection", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(r.status, 401, "a master key in the master_key header does not open a read endpoint");

    // A master endpoint.
    assert_eq!(gw.post("/project/create-api-keys", &[("master_key", &k.read)], &json!({})).await.status, 403);
    let created = gw.post("/project/create-api-keys", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(created.status, 200);
    let fresh = keys_of(&created.json());
    assert_eq!(gw.post("/project/collection", &[("read_key", &fresh.read)], &json!({})).await.status, 200);

    // Collection endpoints: api.api_key, a write key or else a master key.
    let collect = |key: &str| json!({"collection": "c", "api": {"api_key": key}, "properties": {}});
    assert_eq!(gw.post("/event/collect", &[], &collect(&k.write)).await.text(), "1");
    assert_eq!(gw.post("/event/collect", &[], &collect(&fresh.write)).await.status, 200);
    assert_eq!(gw.post("/event/collect", &[], &collect(&k.master)).await.status, 200);
    let r = gw.post("/event/collect", &[], &collect(&k.read)).await;
    assert_eq!((r.status, r.json()), (403, json!({"error": "api.api_key is invalid", "error_code": 403})));
    let r = gw.post("/event/collect", &[], &json!({"collection": "c", "properties": {}})).await;
    assert_eq!((r.status, r.json()["error_code"].clone()), (401, json!(401)));

    // A project's keys reach only its own data.
    let mine = gw.post("/project/collection", &[("read_key", &k.read)], &json!({})).await;
    let theirs = gw.post("/project/collection", &[("read_key", &other.read)], &json!({})).await;
    assert_eq!(mine.json(), json!(["c"]));
    assert_eq!(theirs.json(), json!([]));
}

async fn revoked_keys_stop_working_at_once(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let second = keys_of(&gw.post("/project/create-api-keys", &[("master_key", &k.master)], &json!({})).await.json());

    let check = |sets: serde_json::Value, project: &str| json!({"keys": sets, "project": project});
    let all = json!([{"master_key": k.master, "read_key": k.read, "write_key": k.write}, {"read_key": k.write}]);
    let r = gw.post("/project/check-api-keys", &[], &check(all.clone(), "shop")).await;
    assert_eq!(r.json(), json!([true, false]));
    let r = gw.post("/project/check-api-keys", &[], &check(all.clone(), "other")).await;
    assert_eq!(r.json(), json!([false, false]));

    let r = gw.post("/project/revoke-api-keys", &[], &json!({"project": "shop", "master_key": k.read})).await;
    assert_eq!(r.status, 403, "only a master key revokes its set");
    // Warm the key cache, then revoke: the key must stop working at once.
    let collect = |key: &str| json!({"collection": "c", "api": {"api_key": key}, "properties": {}});
    assert_eq!(gw.post("/event/collect", &[], &collect(&k.write)).await.status, 200);
    let r = gw.post("/project/revoke-api-keys", &[], &json!({"project": "shop", "master_key": k.master})).await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
    assert_eq!(gw.post("/event/collect", &[], &collect(&k.write)).await.status, 403);
    assert_eq!(gw.post("/project/collection", &[("read_key", &k.read)], &json!({})).await.status, 403);
    assert_eq!(gw.post("/event/collect", &[], &collect(&second.write)).await.status, 200, "other sets still work");
    let r = gw.post("/project/check-api-keys", &[], &check(all, "shop")).await;
    assert_eq!(r.json(), json!([false, false]));
}

async fn projects_are_deleted_only_when_allowed(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let r = gw.post("/project/delete", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(r.status, 403);
    assert!(r.json()["error"].as_str().is_some_and(|e| e.contains("allow_deletion")));

    let mut gw = Gateway::start_with(backend, with_env(&[("WEIR_PROJECTS__ALLOW_DELETION", "true")])).await;
    let k = gw.create_project("shop").await;
    let kept = gw.create_project("kept").await;
    let collect = |key: &str| json!({"collection": "c", "api": {"api_key": key}, "properties": {"a": 1}});
    assert_eq!(gw.post("/event/collect", &[], &collect(&k.write)).await.status, 200);
    assert_eq!(gw.post("/event/collect", &[], &collect(&kept.write)).await.status, 200);
    assert_eq!(gw.post("/project/delete", &[("master_key", &k.read)], &json!({})).await.status, 403);
    let r = gw.post("/project/delete", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
    assert_eq!(gw.post("/event/collect", &[], &collect(&k.write)).await.status, 403);
    assert_eq!(gw.post("/project/list", &[], &json!({})).await.json(), json!(["kept"]));
    let events = gw.stop_and_read().await;
    let topics: Vec<&str> = events.iter().map(|e| e.topic.as_str()).collect();
    assert_eq!(topics, ["kept.c"], "the deleted project's topics are gone");
}

async fn schema_and_collection_list_what_was_collected(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    for (c, p) in [("PageView", json!({"url": "/"})), ("click", json!({"x": 1}))] {
        let r = gw
            .post("/event/collect", &[], &json!({"collection": c, "api": {"api_key": k.write}, "properties": p}))
            .await;
        assert_eq!(r.status, 200);
    }
    let r = gw.post("/project/collection", &[("read_key", &k.read)], &json!({})).await;
    assert_eq!(r.json(), json!(["click", "pageview"]));
    let r = gw.post("/project/schema", &[("read_key", &k.read)], &json!({"names": ["pageview"]})).await;
    assert_eq!(
        r.json(),
        json!([{"name": "pageview", "fields": [{"name": "_time", "type": "TIMESTAMP"}, {"name": "url", "type": "STRING"}]}])
    );
    let all = gw.post("/project/schema", &[("read_key", &k.read)], &json!({})).await;
    assert_eq!(all.json().as_array().map(Vec::len), Some(2));
}

on_every_backend!(
    the_lock_key_guards_project_creation_and_listing,
    without_a_lock_key_loopback_clients_create_projects,
    keys_open_only_endpoints_of_their_kind,
    revoked_keys_stop_working_at_once,
    projects_are_deleted_only_when_allowed,
    schema_and_collection_list_what_was_collected,
);
