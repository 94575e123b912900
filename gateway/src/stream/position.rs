//! Where a subscriber is in the log: the next offset of every partition of
//! the collections it follows, and that as an SSE message id
//! (`collection:partition:offset,…`), which a reconnect sends back as
//! `Last-Event-ID`.

use std::collections::BTreeMap;

use crate::schema::names;

/// (collection, partition) → the next offset to deliver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions(pub BTreeMap<(String, u32), u64>);

impl Positions {
    pub fn get(&self, collection: &str, partition: u32) -> Option<u64> {
        self.0.get(&(collection.to_owned(), partition)).copied()
    }

    pub fn set(&mut self, collection: &str, partition: u32, offset: u64) {
        self.0.insert((collection.to_owned(), partition), offset);
    }

    /// The positions of one collection.
    pub fn of(&self, collection: &str) -> BTreeMap<u32, u64> {
        self.0.iter().filter(|((c, _), _)| c == collection).map(|((_, p), o)| (*p, *o)).collect()
    }

    /// The SSE id.
    pub fn to_id(&self) -> String {
        self.0.iter().map(|((c, p), o)| format!("{c}:{p}:{o}")).collect::<Vec<_>>().join(",")
    }

    /// An SSE id back; `None` when it is not one this gateway wrote.
    pub fn from_id(id: &str) -> Option<Positions> {
        let mut positions = Positions::default();
        for part in id.split(',').filter(|p| !p.is_empty()) {
            let mut fields = part.rsplitn(3, ':');
            let offset = fields.next()?.parse().ok()?;
            let partition = fields.next()?.parse().ok()?;
            let collection = fields.next()?;
            if names::collection_name(collection).ok()? != collection {
                return None;
            }
            positions.set(collection, partition, offset);
        }
        Some(positions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let mut p = Positions::default();
        p.set("pageview", 0, 15);
        p.set("pageview", 1, 20);
        p.set("sign-up", 0, 3);
        assert_eq!(p.to_id(), "pageview:0:15,pageview:1:20,sign-up:0:3");
        assert_eq!(Positions::from_id(&p.to_id()), Some(p));
        assert_eq!(Positions::from_id(""), Some(Positions::default()));
        for bad in ["x", "pageview:0", "pageview:a:1", "Page View:0:1", "../x:0:1", "pageview:0:-1"] {
            assert_eq!(Positions::from_id(bad), None, "{bad}");
        }
    }
}
