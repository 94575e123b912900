//! The embedded event log through the `EventLog` trait: offsets, partitions,
//! torn-tail recovery, segment rolling, retention, group commit, locking.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use weir_gateway::log::file::{FileLog, FileLogConfig};
use weir_gateway::log::{Error, EventLog, Record, TopicBatch};

fn batch(topic: &str, values: impl IntoIterator<Item = String>) -> TopicBatch {
    TopicBatch {
        topic: topic.to_owned(),
        records: values.into_iter().map(|v| Record { key: None, value: Bytes::from(v) }).collect(),
    }
}

async fn read_all(log: &FileLog, topic: &str, partition: u32) -> Vec<(u64, String)> {
    let b = log.read(topic, partition, 0, usize::MAX).await.expect("read");
    b.records.into_iter().map(|r| (r.offset, String::from_utf8(r.value.to_vec()).expect("utf8"))).collect()
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("dir").map(|e| e.expect("entry").path()).collect();
    files.sort();
    files
}

#[tokio::test]
async fn appends_get_offsets_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = FileLog::open(dir.path().into(), FileLogConfig::default()).await.expect("open");
    let positions =
        log.append(vec![batch("p.a", ["a0".into(), "a1".into()]), batch("p.b", ["b0".into()])]).await.expect("append");
    assert_eq!(positions[0].iter().map(|p| p.offset).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(positions[1][0].offset, 0);
    log.append(vec![batch("p.a", ["a2".into()])]).await.expect("append");
    assert_eq!(read_all(&log, "p.a", 0).await, [(0, "a0".into()), (1, "a1".into()), (2, "a2".into())]);
    let from_middle = log.read("p.a", 0, 1, 1).await.expect("read");
    assert_eq!(from_middle.records.len(), 1);
    assert_eq!(from_middle.records[0].offset, 1);
    assert_eq!(from_middle.end_offset, 3);
    assert!(log.read("p.a", 0, 3, 10).await.expect("read at end").records.is_empty());
    let names: Vec<String> = log.topics().await.expect("topics").into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["p.a", "p.b"]);
    assert!(matches!(log.read("p.zz", 0, 0, 1).await, Err(Error::NoTopic(_))));
    assert!(matches!(log.read("p.a", 5, 0, 1).await, Err(Error::NoPartition { .. })));
}

#[tokio::test]
async fn keyed_records_stay_in_one_partition_and_the_rest_spread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = FileLogConfig { partitions: 4, ..FileLogConfig::default() };
    let log = FileLog::open(dir.path().into(), config).await.expect("open");
    let keyed: Vec<Record> = (0..20)
        .map(|i| Record { key: Some(Bytes::from_static(b"user-7")), value: Bytes::from(format!("k{i}")) })
        .collect();
    let positions = log.append(vec![TopicBatch { topic: "p.e".into(), records: keyed }]).await.expect("append");
    let partitions: HashSet<u32> = positions[0].iter().map(|p| p.partition).collect();
    assert_eq!(partitions.len(), 1, "one key, one partition");
    let p = *partitions.iter().next().expect("partition");
    let in_order: Vec<String> = read_all(&log, "p.e", p).await.into_iter().map(|(_, v)| v).collect();
    assert_eq!(in_order, (0..20).map(|i| format!("k{i}")).collect::<Vec<_>>());

    let spread = log.append(vec![batch("p.f", (0..40).map(|i| i.to_string()))]).await.expect("append");
    let mut counts = [0; 4];
    for pos in &spread[0] {
        counts[pos.partition as usize] += 1;
    }
    assert_eq!(counts, [10, 10, 10, 10]);
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_and_everything_acknowledged_survives() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = FileLog::open(dir.path().into(), FileLogConfig::default()).await.expect("open");
        for i in 0..10 {
            log.append(vec![batch("p.t", [format!("v{i}")])]).await.expect("append");
        }
    }
    let segment = dir.path().join("p.t/0/00000000000000000000.log");
    let good_len = std::fs::metadata(&segment).expect("segment").len();
    // A crash in the middle of writing the next frame: half a header and body.
    let mut bytes = std::fs::read(&segment).expect("read");
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, 9, 9]);
    std::fs::write(&segment, &bytes).expect("write");

    let log = FileLog::open(dir.path().into(), FileLogConfig::default()).await.expect("reopen");
    assert_eq!(std::fs::metadata(&segment).expect("segment").len(), good_len, "torn bytes are cut off");
    let records = read_all(&log, "p.t", 0).await;
    assert_eq!(records.len(), 10);
    assert_eq!(records[9], (9, "v9".into()));
    let next = log.append(vec![batch("p.t", ["v10".into()])]).await.expect("append");
    assert_eq!(next[0][0].offset, 10);
    drop(log);

    // A whole frame whose bytes were not all written (bad CRC) is cut too.
    let mut bytes = std::fs::read(&segment).expect("read");
    let len = bytes.len();
    bytes[len - 1] ^= 0xff;
    std::fs::write(&segment, &bytes).expect("write");
    let log = FileLog::open(dir.path().into(), FileLogConfig::default()).await.expect("reopen");
    assert_eq!(read_all(&log, "p.t", 0).await.len(), 10);
    drop(log);

    // What a kill -9 leaves: the zeros written ahead of the records, with a
    // frame torn inside them.
    let data_len = std::fs::metadata(&segment).expect("segment").len();
    let mut bytes = std::fs::read(&segment).expect("read");
    bytes.extend_from_slice(&[60, 0, 0, 0, 7, 7, 7, 7, 1, 2, 3]);
    bytes.resize(bytes.len() + (1 << 20), 0);
    std::fs::write(&segment, &bytes).expect("write");
    let log = FileLog::open(dir.path().into(), FileLogConfig::default()).await.expect("reopen");
    assert_eq!(std::fs::metadata(&segment).expect("segment").len(), data_len, "torn frame and zeros cut off");
    assert_eq!(read_all(&log, "p.t", 0).await.len(), 10);
    assert_eq!(log.append(vec![batch("p.t", ["again".into()])]).await.expect("append")[0][0].offset, 10);
    drop(log);
    let log = FileLog::open(dir.path().into(), FileLogConfig::default()).await.expect("reopen");
    assert_eq!(read_all(&log, "p.t", 0).await.last(), Some(&(10, "again".into())));
}

#[tokio::test]
async fn segments_roll_by_size_and_reads_cross_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = FileLogConfig { segment_bytes: 1024, ..FileLogConfig::default() };
    let log = FileLog::open(dir.path().into(), config.clone()).await.expect("open");
    for i in 0..200 {
        log.append(vec![batch("p.r", [format!("{i:0>40}")])]).await.expect("append");
    }
    let files = segment_files(&dir.path().join("p.r/0"));
    assert!(files.len() > 5, "{} segments", files.len());
    for file in &files[..files.len() - 1] {
        let len = std::fs::metadata(file).expect("meta").len();
        assert!((1024..1024 + 100).contains(&len), "closed segment of {len} bytes");
    }
    let all = read_all(&log, "p.r", 0).await;
    assert_eq!(all.len(), 200);
    assert!(all.iter().enumerate().all(|(i, (o, v))| *o == i as u64 && *v == format!("{i:0>40}")));
    let tail = log.read("p.r", 0, 123, 1000).await.expect("read");
    assert_eq!(tail.records.first().map(|r| r.offset), Some(123));
    assert_eq!(tail.records.len(), 77);
    drop(log);
    let log = FileLog::open(dir.path().into(), config).await.expect("reopen");
    assert_eq!(read_all(&log, "p.r", 0).await.len(), 200);
    assert_eq!(log.append(vec![batch("p.r", ["x".into()])]).await.expect("append")[0][0].offset, 200);
}

#[tokio::test]
async fn retention_deletes_only_consumed_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = FileLogConfig { segment_bytes: 1024, retention_ms: 0, ..FileLogConfig::default() };
    let log = FileLog::open(dir.path().into(), config).await.expect("open");
    for i in 0..100 {
        log.append(vec![batch("p.k", [format!("{i:0>40}")])]).await.expect("append");
    }
    let pdir = dir.path().join("p.k/0");
    let before = segment_files(&pdir).len();
    log.run_retention().await.expect("retention");
    assert_eq!(segment_files(&pdir).len(), before, "nothing consumed, nothing deleted");

    log.release("p.k", 0, 50).await.expect("release");
    log.run_retention().await.expect("retention");
    let after = segment_files(&pdir);
    assert!(after.len() < before, "consumed segments deleted");
    let first_base: u64 =
        after[0].file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()).expect("segment base");
    assert!(first_base <= 50, "the segment holding offset 50 is kept");
    let rest = log.read("p.k", 0, 50, 1000).await.expect("read from the released offset");
    assert_eq!(rest.records.len(), 50);
    assert!(log.read("p.k", 0, 0, 10).await.is_err(), "deleted offsets are an error, not silently skipped");
}

#[tokio::test]
async fn concurrent_appends_share_one_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(FileLog::open(dir.path().into(), FileLogConfig::default()).await.expect("open"));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(vec![batch("p.g", [format!("{i}")])]).await.expect("append") })
        })
        .collect();
    let mut offsets = Vec::new();
    for t in tasks {
        offsets.push(t.await.expect("task")[0][0].offset);
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..200).collect::<Vec<u64>>());
    let stats = log.stats();
    assert_eq!(stats.appends.load(Ordering::Relaxed), 200);
    let commits = stats.commits.load(Ordering::Relaxed);
    assert!(commits < 200, "200 concurrent appends took {commits} syncs");
}

#[tokio::test]
async fn one_process_per_log_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _log = FileLog::open(dir.path().into(), FileLogConfig::default()).await.expect("open");
    assert!(matches!(FileLog::open(dir.path().into(), FileLogConfig::default()).await, Err(Error::Locked(_))));
}
