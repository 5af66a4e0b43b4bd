//! Which calls a request is about ([`Scope`]), and the indexes that keep each scope's
//! calls ordered by `published`, so a page of a listing costs what its entries cost.

use std::collections::BTreeSet;

// Keys are ids Asterisk makes and numbers from the settings: a fast hasher is safe here.
use rustc_hash::FxHashMap as HashMap;

use super::state::{CallState, OrderKey};

/// The calls a request is about: every call, or those of an organization, a user or an
/// extension (its full UAPI number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Organization(u64),
    User(u64),
    Extension(String),
}

impl Scope {
    /// Whether a call belongs to the scope.
    pub fn contains(&self, call: &CallState) -> bool {
        match self {
            Scope::All => true,
            Scope::Organization(o) => call.orgs.contains(o),
            Scope::User(u) => call.users.contains(u),
            Scope::Extension(e) => call.extensions.iter().any(|x| x == e),
        }
    }
}

static EMPTY: BTreeSet<OrderKey> = BTreeSet::new();

/// The calls of every scope, ordered.
#[derive(Debug, Default)]
pub(super) struct Index {
    all: BTreeSet<OrderKey>,
    by_ext: HashMap<String, BTreeSet<OrderKey>>,
    by_user: HashMap<u64, BTreeSet<OrderKey>>,
    by_org: HashMap<u64, BTreeSet<OrderKey>>,
}

/// What a call is indexed under besides "all".
pub(super) struct Keys<'a> {
    pub exts: &'a [String],
    pub users: &'a [u64],
    pub orgs: &'a [u64],
}

impl Index {
    pub fn get(&self, scope: &Scope) -> &BTreeSet<OrderKey> {
        match scope {
            Scope::All => &self.all,
            Scope::Organization(o) => self.by_org.get(o).unwrap_or(&EMPTY),
            Scope::User(u) => self.by_user.get(u).unwrap_or(&EMPTY),
            Scope::Extension(e) => self.by_ext.get(e.as_str()).unwrap_or(&EMPTY),
        }
    }

    pub fn contains(&self, key: &OrderKey) -> bool {
        self.all.contains(key)
    }

    pub fn insert(&mut self, key: &OrderKey, k: Keys<'_>) {
        self.all.insert(key.clone());
        for e in k.exts {
            self.by_ext
                .entry(e.clone())
                .or_default()
                .insert(key.clone());
        }
        for u in k.users {
            self.by_user.entry(*u).or_default().insert(key.clone());
        }
        for o in k.orgs {
            self.by_org.entry(*o).or_default().insert(key.clone());
        }
    }

    pub fn remove(&mut self, key: &OrderKey, k: Keys<'_>) {
        self.all.remove(key);
        for e in k.exts {
            remove_from(&mut self.by_ext, e, key);
        }
        for u in k.users {
            remove_from(&mut self.by_user, u, key);
        }
        for o in k.orgs {
            remove_from(&mut self.by_org, o, key);
        }
    }
}

/// Takes `key` out of one scope's set, and the set out of the map once empty.
fn remove_from<K, Q>(map: &mut HashMap<K, BTreeSet<OrderKey>>, scope: &Q, key: &OrderKey)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(s) = map.get_mut(scope) {
        s.remove(key);
        if s.is_empty() {
            map.remove(scope);
        }
    }
}
