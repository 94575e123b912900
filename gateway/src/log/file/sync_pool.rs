//! A few long-lived threads that run `fdatasync` calls side by side, so that
//! a group commit touching several files waits for about one sync rather
//! than one per file, without starting threads per group.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};

use crate::log::{Error, Result};

struct Job {
    file: Arc<File>,
    path: PathBuf,
    index: usize,
    done: mpsc::Sender<(usize, Result<()>)>,
}

pub struct SyncPool {
    jobs: Option<mpsc::Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl SyncPool {
    pub fn new(threads: usize) -> std::io::Result<SyncPool> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let threads = (0..threads)
            .map(|i| {
                let queue = queue.clone();
                std::thread::Builder::new().name(format!("weir-log-sync-{i}")).spawn(move || {
                    loop {
                        let job = match queue.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        };
                        let result = job.file.sync_data().map_err(Error::io(&job.path));
                        let _ = job.done.send((job.index, result));
                    }
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(SyncPool { jobs: Some(jobs), threads })
    }

    /// Syncs every file, one on the calling thread and the rest on the pool;
    /// returns each file's result in order.
    pub fn sync_all(&self, files: &[(Arc<File>, PathBuf)]) -> Vec<Result<()>> {
        let mut results: Vec<Option<Result<()>>> = (0..files.len()).map(|_| None).collect();
        let Some(((first, first_path), rest)) = files.split_first() else { return Vec::new() };
        let (done, answers) = mpsc::channel();
        let mut sent = 0;
        for (i, (file, path)) in rest.iter().enumerate() {
            let job = Job { file: file.clone(), path: path.clone(), index: i + 1, done: done.clone() };
            match self.jobs.as_ref().map(|jobs| jobs.send(job)) {
                Some(Ok(())) => sent += 1,
                _ => results[i + 1] = Some(file.sync_data().map_err(Error::io(path))),
            }
        }
        results[0] = Some(first.sync_data().map_err(Error::io(first_path)));
        for _ in 0..sent {
            match answers.recv() {
                Ok((index, result)) => results[index] = Some(result),
                Err(_) => break,
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Poisoned("a sync thread stopped".to_owned()))))
            .collect()
    }
}

impl Drop for SyncPool {
    fn drop(&mut self) {
        self.jobs.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
