//! Collection schemas as the gateway uses them: cached per collection,
//! evolved only by appending nullable fields, every version stored with a
//! global id in the metadata store.
//!
//! Two writers adding fields at once (two requests, or two gateways on one
//! metadata store) race on the unique (project, collection, version) key;
//! the loser reads the winner's version, merges its own fields into it and
//! tries again, so both end on one schema.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::metadata::{self, MetadataStore, NewSchemaVersion, SchemaVersion};
use crate::schema::types::{Field, FieldType, avro_record_schema};

/// Every collection starts with this field.
pub const TIME_FIELD: &str = "_time";
pub const USER_FIELD: &str = "_user";

/// A schema version ready for encoding.
#[derive(Debug)]
pub struct CollectionSchema {
    pub id: i64,
    pub version: i64,
    pub fields: Vec<Field>,
    /// Looked up for every property of every event: a fast seeded hasher.
    index: HashMap<String, usize, foldhash::fast::RandomState>,
}

impl CollectionSchema {
    fn new(v: SchemaVersion) -> Self {
        let index = v.fields.iter().enumerate().map(|(i, f)| (f.name.clone(), i)).collect();
        CollectionSchema { id: v.id, version: v.version, fields: v.fields, index }
    }

    /// The position of a field.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

type Key = (String, String);

pub struct SchemaRegistry {
    store: Arc<dyn MetadataStore>,
    current: RwLock<HashMap<Key, Arc<CollectionSchema>>>,
    by_id: RwLock<HashMap<i64, Arc<SchemaVersion>>>,
    user_types: RwLock<HashMap<String, FieldType>>,
    /// Serializes schema changes of one collection within this process.
    evolving: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeclareError {
    #[error("{0}")]
    Invalid(String),
    #[error("field {field} exists as {existing}, not {declared}")]
    Conflict { field: String, existing: FieldType, declared: FieldType },
    #[error(transparent)]
    Metadata(#[from] metadata::Error),
}

/// Schema changes give up after this many lost races in a row.
const MAX_ATTEMPTS: usize = 64;

impl SchemaRegistry {
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        SchemaRegistry {
            store,
            current: RwLock::new(HashMap::new()),
            by_id: RwLock::new(HashMap::new()),
            user_types: RwLock::new(HashMap::new()),
            evolving: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// The cached schema of a collection, without asking the store.
    pub fn cached(&self, project: &str, collection: &str) -> Option<Arc<CollectionSchema>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.get(&(project.to_owned(), collection.to_owned())).cloned()
    }

    /// The newest known schema of a collection, or `None` if it has none yet.
    pub async fn current(&self, project: &str, collection: &str) -> metadata::Result<Option<Arc<CollectionSchema>>> {
        if let Some(s) = self.cached(project, collection) {
            return Ok(Some(s));
        }
        let latest = self.store.latest_schema(project, collection).await?;
        Ok(latest.map(|v| self.remember(project, collection, v)))
    }

    fn remember(&self, project: &str, collection: &str, v: SchemaVersion) -> Arc<CollectionSchema> {
        let schema = Arc::new(CollectionSchema::new(v));
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let entry = current.entry((project.to_owned(), collection.to_owned())).or_insert_with(|| schema.clone());
        if entry.version < schema.version {
            *entry = schema;
        }
        entry.clone()
    }

    /// Makes sure the collection has every field in `wanted` (a field that
    /// exists already keeps its type) and returns the resulting schema.
    pub async fn ensure_fields(
        &self,
        project: &str,
        collection: &str,
        wanted: &[Field],
        now_ms: i64,
    ) -> metadata::Result<Arc<CollectionSchema>> {
        let key = (project.to_owned(), collection.to_owned());
        let lock = self.evolving.lock().unwrap_or_else(|e| e.into_inner()).entry(key.clone()).or_default().clone();
        let _guard = lock.lock().await;
        for _ in 0..MAX_ATTEMPTS {
            let latest = self.store.latest_schema(project, collection).await?;
            let (version, mut fields) = match &latest {
                Some(v) => (v.version, v.fields.clone()),
                None => (0, vec![Field::new(TIME_FIELD, FieldType::TIMESTAMP)]),
            };
            let before = fields.len();
            for field in wanted {
                if !fields.iter().any(|f| f.name == field.name) {
                    fields.push(field.clone());
                }
            }
            if let Some(latest) = latest
                && fields.len() == before
            {
                return Ok(self.remember(project, collection, latest));
            }
            let avro_schema = avro_record_schema(project, collection, &fields);
            let new = NewSchemaVersion {
                project,
                collection,
                version: version + 1,
                fields: &fields,
                avro_schema: &avro_schema,
            };
            if let Some(id) = self.store.insert_schema_version(new, now_ms).await? {
                let v = SchemaVersion {
                    id,
                    project: project.to_owned(),
                    collection: collection.to_owned(),
                    version: version + 1,
                    fields,
                    avro_schema,
                };
                return Ok(self.remember(project, collection, v));
            }
        }
        Err(metadata::Error::Corrupt(format!(
            "schema of {project}.{collection} kept changing under {MAX_ATTEMPTS} attempts to extend it"
        )))
    }

    /// Adds fields a client declares (`/project/schema/add`): names are
    /// normalized; a field that exists with another type is refused.
    pub async fn declare_fields(
        &self,
        project: &str,
        collection: &str,
        declared: &[Field],
        now_ms: i64,
    ) -> Result<Arc<CollectionSchema>, DeclareError> {
        let mut wanted: Vec<Field> = Vec::with_capacity(declared.len());
        for field in declared {
            let name =
                crate::schema::names::field_name(&field.name).map_err(|e| DeclareError::Invalid(e.to_string()))?;
            let field_type = match name.as_str() {
                TIME_FIELD if field.field_type != FieldType::TIMESTAMP => {
                    return Err(DeclareError::Invalid(format!("{TIME_FIELD} is always TIMESTAMP")));
                }
                USER_FIELD if !matches!(field.field_type, FieldType::STRING | FieldType::LONG) => {
                    return Err(DeclareError::Invalid(format!("{USER_FIELD} is STRING or LONG")));
                }
                USER_FIELD => self.user_type(project, field.field_type).await?,
                _ => field.field_type,
            };
            wanted.retain(|f| f.name != name);
            wanted.push(Field::new(name, field_type));
        }
        let conflicts = |schema: &CollectionSchema| {
            wanted.iter().find_map(|w| {
                let existing = schema.fields.iter().find(|f| f.name == w.name)?;
                (existing.field_type != w.field_type).then(|| DeclareError::Conflict {
                    field: w.name.clone(),
                    existing: existing.field_type,
                    declared: w.field_type,
                })
            })
        };
        if let Some(current) = self.current(project, collection).await?
            && let Some(conflict) = conflicts(&current)
        {
            return Err(conflict);
        }
        let schema = self.ensure_fields(project, collection, &wanted, now_ms).await?;
        // Another writer may have added one of the fields meanwhile.
        match conflicts(&schema) {
            Some(conflict) => Err(conflict),
            None => Ok(schema),
        }
    }

    /// The type of `_user` in a project: chosen once, by the first value seen.
    pub async fn user_type(&self, project: &str, first_value: FieldType) -> metadata::Result<FieldType> {
        if let Some(t) = self.user_types.read().unwrap_or_else(|e| e.into_inner()).get(project) {
            return Ok(*t);
        }
        let chosen = match self.store.user_type(project).await? {
            Some(t) => t,
            None => self.store.choose_user_type(project, first_value).await?,
        };
        self.user_types.write().unwrap_or_else(|e| e.into_inner()).insert(project.to_owned(), chosen);
        Ok(chosen)
    }

    /// A schema version by its global id, as written in a record's header.
    pub async fn by_id(&self, id: i64) -> metadata::Result<Option<Arc<SchemaVersion>>> {
        if let Some(v) = self.by_id.read().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return Ok(Some(v.clone()));
        }
        let Some(v) = self.store.schema_by_id(id).await? else {
            return Ok(None);
        };
        let v = Arc::new(v);
        self.by_id.write().unwrap_or_else(|e| e.into_inner()).insert(id, v.clone());
        Ok(Some(v))
    }

    /// Forgets everything cached about a deleted project.
    pub fn forget_project(&self, project: &str) {
        self.current.write().unwrap_or_else(|e| e.into_inner()).retain(|(p, _), _| p != project);
        self.user_types.write().unwrap_or_else(|e| e.into_inner()).remove(project);
        self.evolving.lock().unwrap_or_else(|e| e.into_inner()).retain(|(p, _), _| p != project);
        self.by_id.write().unwrap_or_else(|e| e.into_inner()).retain(|_, v| v.project != project);
    }
}
