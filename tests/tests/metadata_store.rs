//! The metadata store through its trait, written once and run on SQLite,
//! PostgreSQL and MariaDB.

use std::sync::Arc;

use weir_gateway::metadata::{
    self, Commit, ContinuousRecord, Folded, KeyKind, LoadedIds, MetadataStore, NewSchemaVersion, OffsetAdvance,
    PluginChange, PluginUpload, StateFile, StateSwap, StoredIds, ViewFile, ViewRecord, ViewSwap,
};
use weir_gateway::schema::SchemaRegistry;
use weir_gateway::schema::types::{Field, FieldType};
use weir_tests::{Backend, on_every_backend};

async fn store(backend: Backend) -> (Arc<dyn MetadataStore>, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = backend.fresh_metadata_url(dir.path()).await;
    let store = metadata::open(&url).await.expect("open");
    (store, url, dir)
}

fn field(name: &str, t: &str) -> Field {
    Field::new(name, t.parse().expect("type"))
}

async fn projects_are_created_once_listed_and_deleted(backend: Backend) {
    let (store, _, _dir) = store(backend).await;
    assert!(store.create_project("b", 1).await.expect("create"));
    assert!(store.create_project("a", 1).await.expect("create"));
    assert!(!store.create_project("a", 2).await.expect("create again"), "second create of a name is refused");
    assert_eq!(store.projects().await.expect("list"), ["a", "b"]);
    store.insert_keys("a", "set1", &[(KeyKind::Master, "h1".into())], 1).await.expect("keys");
    let v = NewSchemaVersion { project: "a", collection: "c", version: 1, fields: &[], avro_schema: "{}" };
    store.insert_schema_version(v, 1).await.expect("schema");
    assert!(store.delete_project("a").await.expect("delete"));
    assert!(!store.delete_project("a").await.expect("delete again"));
    assert_eq!(store.projects().await.expect("list"), ["b"]);
    assert_eq!(store.find_key("h1").await.expect("find"), None, "keys go with the project");
    assert!(store.latest_schemas("a").await.expect("schemas").is_empty(), "schemas go with the project");
}

async fn keys_are_found_by_hash_and_revoked_by_set(backend: Backend) {
    let (store, _, _dir) = store(backend).await;
    store.create_project("p", 1).await.expect("create");
    let set1 =
        [(KeyKind::Master, "m1".to_owned()), (KeyKind::Read, "r1".to_owned()), (KeyKind::Write, "w1".to_owned())];
    let set2 = [(KeyKind::Master, "m2".to_owned()), (KeyKind::Read, "r2".to_owned())];
    store.insert_keys("p", "s1", &set1, 1).await.expect("keys");
    store.insert_keys("p", "s2", &set2, 1).await.expect("keys");
    let found = store.find_key("r1").await.expect("find").expect("r1");
    assert_eq!((found.project.as_str(), found.kind, found.key_set.as_str()), ("p", KeyKind::Read, "s1"));
    assert_eq!(store.find_key("nope").await.expect("find"), None);
    assert_eq!(store.delete_key_set("p", "s1").await.expect("revoke"), 3);
    assert_eq!(store.find_key("w1").await.expect("find"), None);
    assert!(store.find_key("m2").await.expect("find").is_some(), "other key sets stay");
}

async fn the_user_type_is_chosen_once(backend: Backend) {
    let (store, _, _dir) = store(backend).await;
    store.create_project("p", 1).await.expect("create");
    assert_eq!(store.user_type("p").await.expect("type"), None);
    assert_eq!(store.choose_user_type("p", FieldType::LONG).await.expect("choose"), FieldType::LONG);
    assert_eq!(store.choose_user_type("p", FieldType::STRING).await.expect("choose"), FieldType::LONG);
    assert_eq!(store.user_type("p").await.expect("type"), Some(FieldType::LONG));
}

async fn schema_versions_are_unique_and_ids_global(backend: Backend) {
    let (store, _, _dir) = store(backend).await;
    let f1 = [field("_time", "TIMESTAMP")];
    let f2 = [field("_time", "TIMESTAMP"), field("price", "DOUBLE")];
    let new =
        |collection, version, fields| NewSchemaVersion { project: "p", collection, version, fields, avro_schema: "{}" };
    let id1 = store.insert_schema_version(new("c", 1, &f1), 1).await.expect("v1").expect("inserted");
    let id2 = store.insert_schema_version(new("c", 2, &f2), 1).await.expect("v2").expect("inserted");
    let other = store.insert_schema_version(new("d", 1, &f1), 1).await.expect("d1").expect("inserted");
    assert!(id1 != id2 && id2 != other && id1 != other);
    assert_eq!(
        store.insert_schema_version(new("c", 2, &f1), 1).await.expect("again"),
        None,
        "a taken version is refused"
    );
    let latest = store.latest_schema("p", "c").await.expect("latest").expect("c");
    assert_eq!((latest.id, latest.version, latest.fields.as_slice()), (id2, 2, &f2[..]));
    let all: Vec<(String, i64)> =
        store.latest_schemas("p").await.expect("all").into_iter().map(|s| (s.collection, s.version)).collect();
    assert_eq!(all, [("c".to_owned(), 2), ("d".to_owned(), 1)]);
    let versions: Vec<i64> = store.schema_versions("p", "c").await.expect("versions").iter().map(|v| v.id).collect();
    assert_eq!(versions, [id1, id2]);
    assert_eq!(store.schema_by_id(id1).await.expect("by id").expect("v1").fields, f1);
    assert_eq!(store.schema_by_id(-5).await.expect("by id"), None);
}

/// Two registries (as in two gateways) on one store add fields to the same
/// collection at once: both end on one schema holding every field.
async fn racing_schema_changes_end_on_one_schema(backend: Backend) {
    let (store, url, _dir) = store(backend).await;
    let other = metadata::open(&url).await.expect("second connection");
    let a = Arc::new(SchemaRegistry::new(store.clone()));
    let b = Arc::new(SchemaRegistry::new(other));
    let mut tasks = Vec::new();
    for i in 0..12 {
        let registry = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let wanted = [field("shared", "STRING"), field(&format!("f{i}"), "DOUBLE")];
            registry.ensure_fields("p", "c", &wanted, 1).await.expect("ensure fields")
        }));
    }
    for t in tasks {
        let schema = t.await.expect("task");
        assert!(schema.position("shared").is_some());
    }
    let latest = store.latest_schema("p", "c").await.expect("latest").expect("schema");
    let mut names: Vec<&str> = latest.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names.remove(0), "_time");
    names.sort_unstable();
    let mut expected: Vec<String> = (0..12).map(|i| format!("f{i}")).collect();
    expected.push("shared".into());
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(latest.fields.iter().filter(|f| f.name == "shared").count(), 1);
    // Versions are consecutive and each extends the one before.
    let versions = store.schema_versions("p", "c").await.expect("versions");
    for pair in versions.windows(2) {
        assert_eq!(pair[1].version, pair[0].version + 1);
        assert_eq!(&pair[1].fields[..pair[0].fields.len()], &pair[0].fields[..]);
    }
}

async fn migrations_run_once(backend: Backend) {
    let (store, url, _dir) = store(backend).await;
    store.create_project("kept", 1).await.expect("create");
    let reopened = metadata::open(&url).await.expect("reopen runs no migration twice");
    assert_eq!(reopened.projects().await.expect("list"), ["kept"]);
}

async fn plugins_and_their_components(backend: Backend) {
    let (store, _, _dir) = store(backend).await;
    // A component of several MiB, as real ones are (and as MySQL's packet and
    // BLOB limits would refuse if the schema or server were wrong).
    let big: Vec<u8> = (0..6_000_000u32).map(|i| (i % 251) as u8).collect();
    store.put_component("sha-a", &big, 1).await.expect("put");
    store.put_component("sha-a", &big, 2).await.expect("put again is a no-op");
    store.put_component("sha-b", b"second", 2).await.expect("put");
    assert_eq!(store.component("sha-a").await.expect("get").as_deref(), Some(&big[..]));
    assert_eq!(store.component("nope").await.expect("get"), None);

    let upload = |sha| PluginUpload {
        project: "p",
        name: "tagger",
        hook: "enrich",
        position: 3,
        on_error: "pass",
        memory_mb: 64,
        timeout_ms: 20,
        sha256: sha,
    };
    let first = store.save_plugin(upload("sha-a"), 10).await.expect("save");
    assert_eq!((first.version, first.revision, first.config.as_str(), first.enabled), (1, 1, "null", true));
    let configured =
        store.change_plugin("p", "tagger", PluginChange::Config("{\"tag\":1}".into()), 11).await.expect("config");
    assert_eq!(configured.map(|r| (r.revision, r.config)), Some((2, "{\"tag\":1}".to_owned())));
    let disabled = store.change_plugin("p", "tagger", PluginChange::Enabled(false), 12).await.expect("disable");
    assert_eq!(disabled.map(|r| (r.revision, r.enabled)), Some((3, false)));
    let second = store.save_plugin(upload("sha-b"), 13).await.expect("save again");
    assert_eq!(
        (second.version, second.revision, second.config.as_str(), second.enabled, second.sha256.as_str()),
        (2, 4, "{\"tag\":1}", false, "sha-b")
    );
    assert_eq!(store.component("sha-a").await.expect("get"), None, "the replaced version's component is gone");
    assert!(store.change_plugin("p", "missing", PluginChange::Enabled(true), 14).await.expect("change").is_none());

    store.save_plugin(PluginUpload { project: "q", name: "other", ..upload("sha-b") }, 15).await.expect("save");
    let all: Vec<(String, String)> =
        store.plugins(None).await.expect("all").into_iter().map(|r| (r.project, r.name)).collect();
    assert_eq!(all, [("p".to_owned(), "tagger".to_owned()), ("q".to_owned(), "other".to_owned())]);
    assert_eq!(store.plugins(Some("q")).await.expect("of q").len(), 1);
    assert!(store.delete_plugin("p", "tagger").await.expect("delete"));
    assert!(!store.delete_plugin("p", "tagger").await.expect("delete again"));
    assert!(store.component("sha-b").await.expect("get").is_some(), "still used by q");
    assert!(store.delete_plugin("q", "other").await.expect("delete"));
    assert_eq!(store.component("sha-b").await.expect("get"), None, "unused components are deleted");
}

fn parquet(path: &str) -> metadata::ParquetFile {
    metadata::ParquetFile {
        path: path.to_owned(),
        project: "p".to_owned(),
        collection: "c".to_owned(),
        day: "2026-01-01".to_owned(),
        topic: "t".to_owned(),
        partition: 0,
        first_offset: 0,
        last_offset: 0,
        rows: 1,
        bytes: 1,
    }
}

fn view_file(path: &str) -> ViewFile {
    ViewFile { path: path.to_owned(), rows: 1, bytes: 1 }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Views' snapshots swap whole, fenced on their version and on the files
/// they read; compaction carries their marks or refuses a group a view has
/// read in part.
async fn views_swap_whole_and_their_marks_follow_compaction(backend: Backend) {
    let (store, _, _dir) = store(backend).await;
    store.create_project("p", 1).await.expect("project");
    assert!(store.claim_epoch(1, "node", 1).await.expect("claim"));
    let files: Vec<_> = ["p/c/f1", "p/c/f2", "p/c/f3"].map(parquet).to_vec();
    assert_eq!(store.commit_load(1, &files, &[], 1).await.expect("load"), Commit::Done);
    let record = ViewRecord {
        project: "p".into(),
        table_name: "v".into(),
        name: "V".into(),
        query: "SELECT a FROM c".into(),
        update_interval_ms: Some(60_000),
        incremental: true,
        real_time: false,
        options: "null".into(),
        fields: vec![field("a", "LONG")],
        version: 0,
        last_update: None,
        created_at: 1,
    };
    assert!(store.create_view(&record).await.expect("create"));
    assert!(!store.create_view(&record).await.expect("create again"), "one view per table name");
    let fields = [field("a", "LONG")];
    let swap = |from_version, files: &'static [&'static str], keep, sources: &'static [&'static str]| {
        (from_version, files.iter().map(|f| view_file(f)).collect::<Vec<_>>(), keep, strings(sources))
    };
    let commit = |store: Arc<dyn MetadataStore>,
                  epoch,
                  (from_version, files, keep, sources): (i64, Vec<ViewFile>, bool, Vec<String>)| {
        let fields = fields.clone();
        async move {
            let swap = ViewSwap {
                project: "p",
                table_name: "v",
                from_version,
                files: &files,
                keep,
                sources: &sources,
                fields: &fields,
            };
            store.swap_view(epoch, swap, 5).await.expect("swap")
        }
    };
    assert_eq!(
        commit(store.clone(), None, swap(0, &["p/$views/v/1"], false, &["p/c/f1", "p/c/f2"])).await,
        Commit::Done
    );
    assert_eq!(
        commit(store.clone(), None, swap(0, &["p/$views/v/x"], false, &[])).await,
        Commit::Conflict,
        "version moved"
    );
    assert_eq!(commit(store.clone(), Some(0), swap(1, &["p/$views/v/x"], false, &[])).await, Commit::Fenced);
    let view = store.view("p", "v").await.expect("view").expect("exists");
    assert_eq!((view.version, view.last_update), (1, Some(5)));
    assert_eq!(store.view_sources("p", "v").await.expect("sources"), ["p/c/f1", "p/c/f2"].map(String::from).into());

    // Compaction: a group read in part is refused; one read whole carries
    // the marks to the merged file.
    let merged = |path: &str| metadata::ParquetFile { rows: 2, ..parquet(path) };
    assert_eq!(
        store.replace_files(1, &strings(&["p/c/f2", "p/c/f3"]), &merged("p/c/m1"), 6).await.expect("replace"),
        Commit::Conflict
    );
    assert_eq!(
        store.replace_files(1, &strings(&["p/c/f1", "p/c/f2"]), &merged("p/c/m2"), 6).await.expect("replace"),
        Commit::Done
    );
    assert_eq!(store.view_sources("p", "v").await.expect("sources"), ["p/c/m2".to_owned()].into());
    let marks = store.source_marks("p").await.expect("marks");
    assert_eq!(marks.get("p/c/m2").map(|m| m.iter().cloned().collect::<Vec<_>>()), Some(vec!["v".to_owned()]));
    assert_eq!(
        commit(store.clone(), None, swap(1, &["p/$views/v/x"], true, &["p/c/f1"])).await,
        Commit::Conflict,
        "a source compacted away"
    );
    assert_eq!(
        commit(store.clone(), None, swap(1, &["p/$views/v/x"], true, &["p/c/m2"])).await,
        Commit::Conflict,
        "a fold may not read again a file compacted from files it read"
    );

    // A fold keeps the snapshot and adds to it; a full refresh replaces it.
    assert_eq!(commit(store.clone(), None, swap(1, &["p/$views/v/2"], true, &["p/c/f3"])).await, Commit::Done);
    let paths = |files: Vec<ViewFile>| files.into_iter().map(|f| f.path).collect::<Vec<_>>();
    assert_eq!(paths(store.view_files("p", "v").await.expect("files")), ["p/$views/v/1", "p/$views/v/2"]);
    assert_eq!(
        commit(store.clone(), Some(1), swap(2, &["p/$views/v/3"], false, &["p/c/m2", "p/c/f3"])).await,
        Commit::Done
    );
    assert_eq!(paths(store.view_files("p", "v").await.expect("files")), ["p/$views/v/3"]);
    assert_eq!(store.derived_files().await.expect("derived"), ["p/$views/v/3"]);
    let retired: Vec<String> = store.retired_files().await.expect("retired").into_iter().map(|(p, _)| p).collect();
    assert!(
        retired.contains(&"p/$views/v/1".to_owned()) && retired.contains(&"p/$views/v/2".to_owned()),
        "{retired:?}"
    );

    assert!(store.change_view("p", "v", true).await.expect("change"));
    assert!(store.view("p", "v").await.expect("view").expect("exists").real_time);
    assert!(!store.change_view("p", "w", true).await.expect("change"));
    assert!(store.delete_view("p", "v", 7).await.expect("delete"));
    assert!(!store.delete_view("p", "v", 7).await.expect("delete again"));
    assert!(store.derived_files().await.expect("derived").is_empty());
    assert!(store.source_marks("p").await.expect("marks").is_empty());
    assert!(store.create_view(&record).await.expect("create"));
    assert!(store.delete_project("p").await.expect("delete project"));
    assert!(store.views(None).await.expect("views").is_empty(), "views go with the project");
}

fn state(path: &str) -> StateFile {
    StateFile { path: path.to_owned(), table_name: "q".to_owned(), partition: String::new(), rows: 1, bytes: 1 }
}

/// A load folded into continuous queries commits only against the
/// generation it saw; a replay consumes exactly the history marked.
async fn continuous_states_commit_with_loads_and_history_once(backend: Backend) {
    let (store, _, _dir) = store(backend).await;
    store.create_project("p", 1).await.expect("project");
    assert!(store.claim_epoch(1, "node", 1).await.expect("claim"));
    assert_eq!(
        store.commit_load(1, &[parquet("p/c/f1"), parquet("p/c/f2")], &[], 1).await.expect("load"),
        Commit::Done
    );
    let seen = store.continuous_generation().await.expect("generation");
    let record = ContinuousRecord {
        project: "p".into(),
        table_name: "q".into(),
        name: "Q".into(),
        query: "SELECT count(*) AS n FROM c".into(),
        partition_keys: vec![],
        options: "{}".into(),
        fields: vec![field("n", "LONG")],
        replaying: true,
        created_at: 1,
    };
    assert!(store.create_continuous(&record, &strings(&["c"])).await.expect("create"));
    assert!(!store.create_continuous(&record, &[]).await.expect("create again"));
    assert_eq!(store.continuous_history("p", "q").await.expect("history"), ["p/c/f1", "p/c/f2"]);
    let now = store.continuous_generation().await.expect("generation");
    assert!(now > seen, "a creation moves the generation");
    let folded = |generation, path: &str| Folded { generation, project: "p".into(), states: vec![state(path)] };
    let load = |path: &str| vec![parquet(path)];
    let stale = folded(seen, "p/$continuous/q/s0");
    assert_eq!(
        store.commit_load_folded(1, &load("p/c/f3"), &[], Some(&stale), None, 2).await.expect("load"),
        Commit::Conflict,
        "a load that did not fold into the new query may not commit"
    );
    let current = folded(now, "p/$continuous/q/s1");
    assert_eq!(
        store.commit_load_folded(1, &load("p/c/f3"), &[], Some(&current), None, 2).await.expect("load"),
        Commit::Done
    );
    let paths = |files: Vec<StateFile>| files.into_iter().map(|f| f.path).collect::<Vec<_>>();
    assert_eq!(paths(store.continuous_state("p", "q").await.expect("state")), ["p/$continuous/q/s1"]);

    let swap =
        |old: &'static [&'static str], new: &'static [&'static str], history: Option<&'static [&'static str]>| {
            (strings(old), new.iter().map(|p| state(p)).collect::<Vec<_>>(), history.map(strings))
        };
    let replace = |(old, new, history): (Vec<String>, Vec<StateFile>, Option<Vec<String>>)| {
        let store = store.clone();
        async move {
            let swap = StateSwap { project: "p", table_name: "q", old: &old, new: &new, history: history.as_deref() };
            store.replace_state(None, swap, 3).await.expect("replace")
        }
    };
    assert_eq!(
        replace(swap(&[], &["p/$continuous/q/h"], Some(&["p/c/f1"]))).await,
        Commit::Conflict,
        "part of the history"
    );
    assert_eq!(replace(swap(&[], &["p/$continuous/q/h"], Some(&["p/c/f1", "p/c/f2"]))).await, Commit::Done);
    assert!(!store.continuous_query("p", "q").await.expect("get").expect("exists").replaying);
    assert!(store.continuous_history("p", "q").await.expect("history").is_empty());
    assert_eq!(replace(swap(&["p/$continuous/q/x"], &["p/$continuous/q/m"], None)).await, Commit::Conflict);
    assert_eq!(
        replace(swap(&["p/$continuous/q/s1", "p/$continuous/q/h"], &["p/$continuous/q/m"], None)).await,
        Commit::Done
    );
    assert_eq!(paths(store.continuous_state("p", "q").await.expect("state")), ["p/$continuous/q/m"]);
    assert_eq!(store.derived_files().await.expect("derived"), ["p/$continuous/q/m"]);
    assert!(store.delete_continuous("p", "q", 4).await.expect("delete"));
    assert!(!store.delete_continuous("p", "q", 4).await.expect("delete again"));
    assert!(store.derived_files().await.expect("derived").is_empty());
    assert!(store.continuous_generation().await.expect("generation") > now);
}

/// The ids of a load's events are committed with the load, or not at all;
/// read back by when they were loaded, forgotten past a time, and gone
/// with their project.
async fn event_ids_commit_with_their_load(backend: Backend) {
    let (store, _, _dir) = store(backend).await;
    store.create_project("p", 1).await.expect("project");
    assert!(store.claim_epoch(1, "node", 1).await.expect("claim"));
    let advance = |from: u64, to: u64| OffsetAdvance { topic: "p.c".into(), partition: 0, from, to };
    let ids = |first_offset: u64, keys: &[u8]| LoadedIds {
        project: "p".into(),
        topic: "p.c".into(),
        partition: 0,
        first_offset,
        keys: keys.to_vec(),
    };
    let first = ids(0, &[1; 32]);
    assert_eq!(
        store.commit_load_folded(1, &[], &[advance(0, 2)], None, Some(&first), 10).await.expect("load"),
        Commit::Done
    );
    // A load that loses the offset race stores no ids.
    let lost = ids(0, &[2; 16]);
    assert_eq!(
        store.commit_load_folded(1, &[], &[advance(0, 3)], None, Some(&lost), 11).await.expect("load"),
        Commit::Conflict
    );
    assert!(store.claim_epoch(2, "other", 12).await.expect("claim"));
    let fenced = ids(2, &[3; 16]);
    assert_eq!(
        store.commit_load_folded(1, &[], &[advance(2, 3)], None, Some(&fenced), 12).await.expect("load"),
        Commit::Fenced
    );
    let second = ids(2, &[4; 16]);
    assert_eq!(
        store.commit_load_folded(2, &[], &[advance(2, 3)], None, Some(&second), 20).await.expect("load"),
        Commit::Done
    );
    let stored = |keys: &[u8], loaded_ms| StoredIds { project: "p".into(), keys: keys.to_vec(), loaded_ms };
    let mut all = store.loaded_event_ids(0).await.expect("ids");
    all.sort_by_key(|s| s.loaded_ms);
    assert_eq!(all, [stored(&[1; 32], 10), stored(&[4; 16], 20)]);
    assert_eq!(store.loaded_event_ids(15).await.expect("ids"), [stored(&[4; 16], 20)]);
    assert_eq!(store.forget_event_ids(15).await.expect("forget"), 1);
    assert_eq!(store.loaded_event_ids(0).await.expect("ids"), [stored(&[4; 16], 20)]);
    assert!(store.delete_project("p").await.expect("delete"));
    assert!(store.loaded_event_ids(0).await.expect("ids").is_empty());
}

on_every_backend!(
    event_ids_commit_with_their_load,
    continuous_states_commit_with_loads_and_history_once,
    views_swap_whole_and_their_marks_follow_compaction,
    plugins_and_their_components,
    projects_are_created_once_listed_and_deleted,
    keys_are_found_by_hash_and_revoked_by_set,
    the_user_type_is_chosen_once,
    schema_versions_are_unique_and_ids_global,
    racing_schema_changes_end_on_one_schema,
    migrations_run_once,
);
