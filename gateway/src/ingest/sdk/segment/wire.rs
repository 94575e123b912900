//! Segment's request bodies as sent, read in one pass: the fields Weir maps
//! and nothing else. Every field takes any JSON value, so that a wrong one
//! is told with its message's place in the batch rather than as a parse
//! error.

use std::fmt;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

use crate::ingest::sdk::members::{Members, anything_else, not_object_seq};

/// `/v1/batch`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchBody {
    #[serde(default)]
    pub batch: Batch,
    pub sent_at: Option<Json>,
    #[serde(default)]
    pub context: Members,
    pub write_key: Option<Json>,
}

/// One message: a batch's, or a single call's body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Raw {
    #[serde(rename = "type")]
    pub kind: Option<Json>,
    pub event: Option<Json>,
    pub user_id: Option<Json>,
    pub anonymous_id: Option<Json>,
    pub previous_id: Option<Json>,
    pub group_id: Option<Json>,
    pub message_id: Option<Json>,
    pub timestamp: Option<Json>,
    pub original_timestamp: Option<Json>,
    pub sent_at: Option<Json>,
    pub name: Option<Json>,
    pub category: Option<Json>,
    pub write_key: Option<Json>,
    #[serde(default)]
    pub properties: Members,
    #[serde(default)]
    pub traits: Members,
    #[serde(default)]
    pub context: Members,
}

/// A batch's messages, or what stood where an array was expected.
#[derive(Debug, Default)]
pub enum Batch {
    #[default]
    NotArray,
    Items(Vec<Item>),
}

/// A batch's element.
#[derive(Debug)]
pub enum Item {
    Message(Box<Raw>),
    NotObject,
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BatchVisitor)
    }
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ItemVisitor)
    }
}

struct BatchVisitor;

impl<'de> Visitor<'de> for BatchVisitor {
    type Value = Batch;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Batch, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(100));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Batch::Items(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Batch, A::Error> {
        IgnoredAny::deserialize(MapAccessDeserializer::new(map)).map(|_| Batch::NotArray)
    }

    fn visit_unit<E>(self) -> Result<Batch, E> {
        Ok(Batch::NotArray)
    }

    anything_else!(Batch::NotArray);
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
        Raw::deserialize(MapAccessDeserializer::new(map)).map(|raw| Item::Message(Box::new(raw)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
        not_object_seq(seq).map(|()| Item::NotObject)
    }

    fn visit_unit<E>(self) -> Result<Item, E> {
        Ok(Item::NotObject)
    }

    anything_else!(Item::NotObject);
}
