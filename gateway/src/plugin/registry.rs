//! Each project's plugins, loaded and ready, kept current with the metadata
//! store.
//!
//! A change made through this gateway takes effect as soon as it is stored;
//! changes made through other gateways are found by polling. Either way the
//! new set is compiled first and then swapped in whole, so a request sees
//! the old set or the new one, never a mix and never a gap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;

use super::assets::Assets;
use super::bindings::{crm, types};
use super::config::PluginsConfig;
use super::host::LogCaps;
use super::runtime::{CallLimits, Called, Failure, Prepared, Runtime, RuntimeLimits};
use super::{Error, Hook, OnError, Result};
use crate::metadata::{MetadataStore, PluginRecord};

/// Counts of one plugin's calls since this gateway started.
#[derive(Debug, Default)]
pub struct PluginStats {
    pub calls: AtomicU64,
    pub failures: AtomicU64,
    pub last_failure: Mutex<Option<String>>,
}

/// [`PluginStats`] as the management API shows them.
#[derive(Debug, Clone, Serialize)]
pub struct StatsView {
    pub calls: u64,
    pub failures: u64,
    pub last_failure: Option<String>,
}

impl PluginStats {
    pub fn view(&self) -> StatsView {
        StatsView {
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            last_failure: self.last_failure.lock().map(|f| f.clone()).unwrap_or_default(),
        }
    }

    fn failed(&self, failure: &Failure) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last_failure.lock() {
            *last = Some(failure.to_string());
        }
    }
}

/// A plugin ready to call.
pub struct LoadedPlugin {
    pub name: String,
    pub version: i64,
    pub on_error: OnError,
    pub limits: CallLimits,
    pub config: Arc<str>,
    pub prepared: Prepared,
    pub stats: Arc<PluginStats>,
}

/// The enabled plugins of one project, in the order they run.
#[derive(Default)]
pub struct ProjectPlugins {
    pub enrichers: Vec<Arc<LoadedPlugin>>,
    pub rewriters: Vec<Arc<LoadedPlugin>>,
    pub crm_hooks: Vec<Arc<LoadedPlugin>>,
    /// The (name, revision) of every stored plugin, enabled or not: what
    /// this set was built from.
    revisions: Vec<(String, i64)>,
}

pub struct Plugins {
    runtime: Arc<Runtime>,
    store: Arc<dyn MetadataStore>,
    config: PluginsConfig,
    prepared: Mutex<HashMap<(String, Hook), Prepared>>,
    projects: RwLock<HashMap<String, Arc<ProjectPlugins>>>,
    stats: Mutex<HashMap<(String, String), Arc<PluginStats>>>,
    /// One permit per pooled instance: calls beyond the pool wait here
    /// rather than fail.
    calls: Arc<Semaphore>,
    /// Per project, so that one tenant's slow or looping plugin holds at
    /// most `plugins.project_calls` threads and never the whole pool.
    project_calls: Mutex<HashMap<String, Arc<Semaphore>>>,
    refreshing: tokio::sync::Mutex<()>,
}

impl Plugins {
    /// `asset_dir` is the folder plugins' assets are read from.
    pub fn new(config: PluginsConfig, asset_dir: std::path::PathBuf, store: Arc<dyn MetadataStore>) -> Result<Plugins> {
        let runtime = Runtime::new(
            RuntimeLimits {
                instances: config.instances,
                max_memory_bytes: usize::try_from(config.max_memory_mb << 20).unwrap_or(usize::MAX),
                log: LogCaps { lines: config.log_lines, bytes: config.log_bytes },
            },
            Arc::new(Assets::new(asset_dir)),
        )?;
        Ok(Plugins {
            runtime: Arc::new(runtime),
            store,
            calls: Arc::new(Semaphore::new(config.instances as usize)),
            project_calls: Mutex::default(),
            config,
            prepared: Mutex::default(),
            projects: RwLock::default(),
            stats: Mutex::default(),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn config(&self) -> &PluginsConfig {
        &self.config
    }

    /// The project's plugins in force now.
    pub fn project(&self, project: &str) -> Option<Arc<ProjectPlugins>> {
        self.projects.read().ok()?.get(project).cloned()
    }

    /// Whether the project has an enabled enricher.
    pub fn has_enrichers(&self, project: &str) -> bool {
        self.projects.read().is_ok_and(|p| p.get(project).is_some_and(|p| !p.enrichers.is_empty()))
    }

    /// Whether the project has an enabled query rewriter.
    pub fn has_rewriters(&self, project: &str) -> bool {
        self.projects.read().is_ok_and(|p| p.get(project).is_some_and(|p| !p.rewriters.is_empty()))
    }

    /// The counts of a plugin since this gateway started.
    pub fn stats(&self, project: &str, name: &str) -> Arc<PluginStats> {
        let mut stats = self.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        stats.entry((project.to_owned(), name.to_owned())).or_default().clone()
    }

    /// The caps of a call, from the stored settings.
    pub fn limits(&self, memory_mb: i64, timeout_ms: i64) -> CallLimits {
        CallLimits {
            memory_bytes: usize::try_from(memory_mb.max(1) << 20).unwrap_or(usize::MAX),
            timeout: Duration::from_millis(u64::try_from(timeout_ms.max(1)).unwrap_or(1)),
        }
    }

    /// Compiles a component for a hook (off the async threads), checking
    /// that it implements the hook's world.
    pub async fn prepare(&self, sha256: &str, bytes: Arc<[u8]>, hook: Hook) -> Result<Prepared> {
        let key = (sha256.to_owned(), hook);
        if let Some(p) = self.prepared.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(p);
        }
        let runtime = self.runtime.clone();
        let prepared = tokio::task::spawn_blocking(move || runtime.prepare(&bytes, hook))
            .await
            .map_err(|e| Error::Runtime(format!("compilation stopped: {e}")))??;
        if let Ok(mut cache) = self.prepared.lock() {
            cache.insert(key, prepared.clone());
        }
        Ok(prepared)
    }

    /// A stored component, ready for its hook: compiled already, or read
    /// from the metadata store and compiled now.
    pub async fn stored(&self, sha256: &str, hook: Hook) -> Result<Prepared> {
        let key = (sha256.to_owned(), hook);
        if let Some(p) = self.prepared.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(p);
        }
        let bytes = self.store.component(sha256).await?.ok_or_else(|| Error::MissingComponent(sha256.to_owned()))?;
        self.prepare(sha256, bytes.into(), hook).await
    }

    async fn load(&self, record: &PluginRecord) -> Result<Option<Arc<LoadedPlugin>>> {
        let (Some(hook), Some(on_error)) = (Hook::parse(&record.hook), OnError::parse(&record.on_error)) else {
            tracing::error!(project = %record.project, plugin = %record.name, "stored plugin has an unknown hook or policy");
            return Ok(None);
        };
        let prepared = self.stored(&record.sha256, hook).await?;
        Ok(Some(Arc::new(LoadedPlugin {
            name: record.name.clone(),
            version: record.version,
            on_error,
            limits: self.limits(record.memory_mb, record.timeout_ms),
            config: Arc::from(record.config.as_str()),
            prepared,
            stats: self.stats(&record.project, &record.name),
        })))
    }

    /// Builds a project's set from its stored plugins.
    async fn build(&self, records: &[PluginRecord]) -> ProjectPlugins {
        let mut set = ProjectPlugins {
            revisions: records.iter().map(|r| (r.name.clone(), r.revision)).collect(),
            ..ProjectPlugins::default()
        };
        let mut ordered: Vec<&PluginRecord> = records.iter().filter(|r| r.enabled).collect();
        ordered.sort_by(|a, b| (a.position, &a.name).cmp(&(b.position, &b.name)));
        for record in ordered {
            match self.load(record).await {
                Ok(Some(plugin)) => match plugin.prepared.hook() {
                    Hook::Enrich => set.enrichers.push(plugin),
                    Hook::Rewrite => set.rewriters.push(plugin),
                    Hook::Crm => set.crm_hooks.push(plugin),
                },
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(project = %record.project, plugin = %record.name, error = %e, "cannot load a plugin");
                }
            }
        }
        set
    }

    fn revisions_of(&self, project: &str) -> Vec<(String, i64)> {
        self.project(project).map(|p| p.revisions.clone()).unwrap_or_default()
    }

    fn install(&self, project: &str, set: Option<ProjectPlugins>) {
        let mut projects = self.projects.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match set {
            Some(set) if !set.revisions.is_empty() => {
                projects.insert(project.to_owned(), Arc::new(set));
            }
            _ => {
                projects.remove(project);
            }
        }
    }

    /// Reloads one project's plugins from the metadata store.
    pub async fn refresh_project(&self, project: &str) -> Result<()> {
        let _one_at_a_time = self.refreshing.lock().await;
        let records = self.store.plugins(Some(project)).await?;
        let wanted: Vec<(String, i64)> = records.iter().map(|r| (r.name.clone(), r.revision)).collect();
        if wanted != self.revisions_of(project) {
            let set = self.build(&records).await;
            self.install(project, Some(set));
        }
        Ok(())
    }

    /// Reloads every project whose plugins changed in the metadata store.
    pub async fn refresh_all(&self) -> Result<()> {
        let _one_at_a_time = self.refreshing.lock().await;
        let records = self.store.plugins(None).await?;
        let mut by_project: HashMap<&str, Vec<PluginRecord>> = HashMap::new();
        for r in &records {
            by_project.entry(r.project.as_str()).or_default().push(r.clone());
        }
        for (project, records) in &by_project {
            let wanted: Vec<(String, i64)> = records.iter().map(|r| (r.name.clone(), r.revision)).collect();
            if wanted != self.revisions_of(project) {
                let set = self.build(records).await;
                self.install(project, Some(set));
            }
        }
        let gone: Vec<String> = self
            .projects
            .read()
            .map(|p| p.keys().filter(|k| !by_project.contains_key(k.as_str())).cloned().collect())
            .unwrap_or_default();
        for project in gone {
            self.install(&project, None);
        }
        // Forget compiled components nothing refers to any more.
        let used: std::collections::HashSet<(&str, &str)> =
            records.iter().map(|r| (r.sha256.as_str(), r.hook.as_str())).collect();
        if let Ok(mut cache) = self.prepared.lock() {
            cache.retain(|(sha, hook), _| used.contains(&(sha.as_str(), hook.name())));
        }
        Ok(())
    }

    /// Polls the metadata store for changes made by other gateways.
    pub fn spawn_poller(self: Arc<Self>) {
        let every = Duration::from_millis(self.config.poll_ms);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if let Err(e) = self.refresh_all().await {
                    tracing::warn!(error = %e, "cannot check for plugin changes");
                }
            }
        });
    }

    /// Runs an enricher over a batch on a blocking thread, counting the call.
    pub async fn call_enrich(
        &self,
        plugin: &Arc<LoadedPlugin>,
        context: types::RequestContext,
        events: Vec<types::Event>,
    ) -> Called<Vec<types::Outcome>> {
        let called = self.run_enrich(&plugin.prepared, plugin.limits, plugin.config.clone(), context, events).await;
        self.count(plugin, &called.result);
        called
    }

    /// Runs a rewriter over a query on a blocking thread, counting the call.
    pub async fn call_rewrite(
        &self,
        plugin: &Arc<LoadedPlugin>,
        context: types::QueryContext,
        sql: String,
    ) -> Called<types::RewriteOutcome> {
        let called = self.run_rewrite(&plugin.prepared, plugin.limits, plugin.config.clone(), context, sql).await;
        self.count(plugin, &called.result);
        called
    }

    /// Runs a CRM hook over a request on a blocking thread, counting the
    /// call.
    pub async fn call_crm_request(
        &self,
        plugin: &Arc<LoadedPlugin>,
        context: crm::CrmContext,
        request: Arc<crm::CrmRequest>,
    ) -> Called<crm::RequestOutcome> {
        let called =
            self.run_crm_request(&plugin.prepared, plugin.limits, plugin.config.clone(), context, request).await;
        self.count(plugin, &called.result);
        called
    }

    /// Runs a CRM hook over an answer (and the request as forwarded) on a
    /// blocking thread, counting the call.
    pub async fn call_crm_response(
        &self,
        plugin: &Arc<LoadedPlugin>,
        context: crm::CrmContext,
        exchange: Arc<(crm::CrmRequest, crm::CrmResponse)>,
    ) -> Called<crm::ResponseOutcome> {
        let called =
            self.run_crm_response(&plugin.prepared, plugin.limits, plugin.config.clone(), context, exchange).await;
        self.count(plugin, &called.result);
        called
    }

    /// Runs a prepared CRM hook (stored or not) over a request.
    pub async fn run_crm_request(
        &self,
        prepared: &Prepared,
        limits: CallLimits,
        config: Arc<str>,
        context: crm::CrmContext,
        request: Arc<crm::CrmRequest>,
    ) -> Called<crm::RequestOutcome> {
        let Prepared::Crm(pre) = prepared else {
            return wrong_hook();
        };
        let (runtime, pre, project) = (self.runtime.clone(), pre.clone(), context.project.clone());
        self.blocking(&project, move || runtime.crm_request(&pre, limits, config, &context, &request)).await
    }

    /// Runs a prepared CRM hook (stored or not) over an answer.
    pub async fn run_crm_response(
        &self,
        prepared: &Prepared,
        limits: CallLimits,
        config: Arc<str>,
        context: crm::CrmContext,
        exchange: Arc<(crm::CrmRequest, crm::CrmResponse)>,
    ) -> Called<crm::ResponseOutcome> {
        let Prepared::Crm(pre) = prepared else {
            return wrong_hook();
        };
        let (runtime, pre, project) = (self.runtime.clone(), pre.clone(), context.project.clone());
        self.blocking(&project, move || runtime.crm_response(&pre, limits, config, &context, &exchange.0, &exchange.1))
            .await
    }

    /// Runs a prepared enricher (stored or not) over a batch.
    pub async fn run_enrich(
        &self,
        prepared: &Prepared,
        limits: CallLimits,
        config: Arc<str>,
        context: types::RequestContext,
        events: Vec<types::Event>,
    ) -> Called<Vec<types::Outcome>> {
        let Prepared::Enrich(pre) = prepared else {
            return wrong_hook();
        };
        let (runtime, pre, project) = (self.runtime.clone(), pre.clone(), context.project.clone());
        self.blocking(&project, move || runtime.enrich(&pre, limits, config, &context, &events)).await
    }

    /// Runs a prepared rewriter (stored or not) over a query.
    pub async fn run_rewrite(
        &self,
        prepared: &Prepared,
        limits: CallLimits,
        config: Arc<str>,
        context: types::QueryContext,
        sql: String,
    ) -> Called<types::RewriteOutcome> {
        let Prepared::Rewrite(pre) = prepared else {
            return wrong_hook();
        };
        let (runtime, pre, project) = (self.runtime.clone(), pre.clone(), context.project.clone());
        self.blocking(&project, move || runtime.rewrite(&pre, limits, config, &context, &sql)).await
    }

    fn count<T>(&self, plugin: &LoadedPlugin, result: &Result<T, Failure>) {
        plugin.stats.calls.fetch_add(1, Ordering::Relaxed);
        if let Err(failure) = result {
            plugin.stats.failed(failure);
        }
    }

    fn project_gate(&self, project: &str) -> Arc<Semaphore> {
        let mut gates = self.project_calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        gates.entry(project.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.config.project_calls))).clone()
    }

    /// Runs a call on a blocking thread once the project and the pool have
    /// room for it.
    async fn blocking<T: Send + 'static>(
        &self,
        project: &str,
        call: impl FnOnce() -> Called<T> + Send + 'static,
    ) -> Called<T> {
        let shut = || Called {
            result: Err(Failure::Instantiate("the plugin runtime is shut down".into())),
            log: Default::default(),
        };
        let Ok(_project_permit) = self.project_gate(project).acquire_owned().await else {
            return shut();
        };
        let Ok(_permit) = self.calls.clone().acquire_owned().await else {
            return shut();
        };
        match tokio::task::spawn_blocking(call).await {
            Ok(called) => called,
            Err(e) => Called { result: Err(Failure::Trap(format!("the call stopped: {e}"))), log: Default::default() },
        }
    }
}

fn wrong_hook<T>() -> Called<T> {
    Called { result: Err(Failure::Instantiate("the plugin implements another hook".into())), log: Default::default() }
}
