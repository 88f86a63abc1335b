//! Who may do what: the policy as loaded from the database, resolved per partner.
//!
//! Access control lives here and only here: every service call asks [`AccessView::rights`] for
//! the caller's rights on a collection, and a collection without rights is treated exactly like
//! one that does not exist.

use std::collections::HashMap;

use super::policy::DiscoveryPolicy;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRootInfo {
    pub id: i64,
    pub name: String,
    pub title: String,
    pub description: Option<String>,
    pub max_content_length: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionInfo {
    pub id: String,
    pub api_root_id: i64,
    pub title: String,
    pub description: Option<String>,
    pub alias: Option<String>,
    pub public_read: bool,
    pub sharing: super::policy::SharingPolicy,
}

/// Read and write rights of one caller on one collection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rights {
    pub read: bool,
    pub write: bool,
}

impl Rights {
    /// Whether the caller may know the collection exists at all.
    pub fn visible(self) -> bool {
        self.read || self.write
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Partner {
        id: i64,
        name: String,
    },
    /// No credentials, on a server with anonymous read of public collections enabled.
    Anonymous,
}

impl Principal {
    /// Id recorded with statuses and cursors (0 for anonymous).
    pub fn id(&self) -> i64 {
        match self {
            Principal::Partner { id, .. } => *id,
            Principal::Anonymous => 0,
        }
    }
}

/// The whole policy, resolved: loaded at start and reloaded when its generation changes.
#[derive(Debug, Clone, Default)]
pub struct AccessView {
    pub generation: i64,
    pub discovery: Option<DiscoveryPolicy>,
    pub api_roots: Vec<ApiRootInfo>,
    /// Sorted by id, the stable order of the collections list (T-112).
    pub collections: Vec<CollectionInfo>,
    /// partner id -> collection id -> rights (union over the partner's groups).
    pub rights: HashMap<i64, HashMap<String, Rights>>,
    pub anonymous_read: bool,
}

impl AccessView {
    pub fn api_root(&self, name: &str) -> Option<&ApiRootInfo> {
        self.api_roots.iter().find(|r| r.name == name)
    }

    pub fn collection(&self, id: &str) -> Option<&CollectionInfo> {
        self.collections.binary_search_by(|c| c.id.as_str().cmp(id)).ok().and_then(|i| self.collections.get(i))
    }

    /// The caller's rights on a collection.
    pub fn rights(&self, who: &Principal, collection: &CollectionInfo) -> Rights {
        match who {
            Principal::Partner { id, .. } => {
                self.rights.get(id).and_then(|m| m.get(&collection.id)).copied().unwrap_or_default()
            }
            Principal::Anonymous => Rights { read: self.anonymous_read && collection.public_read, write: false },
        }
    }

    /// Collections of an API root the caller can see, in stable order.
    pub fn visible_collections<'a>(
        &'a self,
        who: &'a Principal,
        root: &'a ApiRootInfo,
    ) -> impl Iterator<Item = (&'a CollectionInfo, Rights)> + 'a {
        self.collections
            .iter()
            .filter(move |c| c.api_root_id == root.id)
            .map(move |c| (c, self.rights(who, c)))
            .filter(|(_, r)| r.visible())
    }

    /// API roots where the caller has at least one collection.
    pub fn visible_roots<'a>(&'a self, who: &'a Principal) -> impl Iterator<Item = &'a ApiRootInfo> + 'a {
        self.api_roots.iter().filter(move |r| self.visible_collections(who, r).next().is_some())
    }
}
