//! A file's holders, each with the name it shares the file under.
//!
//! Most files have one holder, so one holder and its name are kept inline (32 bytes, the same
//! room as a pointer to more): a file's entry in the index by id is then 40 bytes, against 64
//! with a small map and a name count beside it, and with a B-tree's slack that is about 35
//! bytes a listed file (`cargo bench --bench registry_memory`). A file with more holders
//! keeps them in a boxed small map, with each name's count once there are more than a glance
//! over them costs.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::small_map::SmallMap;

/// Holder peer id → the name it shares the file under; never empty.
#[derive(Clone, Debug)]
pub(super) enum Holders {
    /// The only holder, and its name.
    One(Arc<str>, Arc<str>),
    /// Two or more (or, for a moment while one leaves, one).
    Many(Box<Several>),
}

/// The holders of a file that has more than one.
#[derive(Clone, Debug, Default)]
pub(super) struct Several {
    holders: SmallMap<Arc<str>, Arc<str>>,
    /// Each of the holders' names with how many holders use it, once `holders` is past a small
    /// vector (`None` before).
    names: Option<BTreeMap<Arc<str>, u32>>,
}

/// What taking a holder away left.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Removal {
    /// It was one of several; this is the name it used.
    Name(Arc<str>),
    /// It is the only holder: the file goes, and it is left for its owner to drop.
    Only,
}

impl Holders {
    /// A file's first holder.
    pub fn new(peer: Arc<str>, name: Arc<str>) -> Holders {
        Holders::One(peer, name)
    }

    /// How many holders.
    pub fn len(&self) -> usize {
        match self {
            Holders::One(..) => 1,
            Holders::Many(several) => several.holders.len(),
        }
    }

    /// The name `peer` shares the file under, if it holds it.
    pub fn get(&self, peer: &str) -> Option<&Arc<str>> {
        match self {
            Holders::One(only, name) => (**only == *peer).then_some(name),
            Holders::Many(several) => several.holders.get(peer),
        }
    }

    /// (peer, name), in order of peer id.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Arc<str>)> + Clone {
        let (one, many) = match self {
            Holders::One(peer, name) => (Some((peer, name)), None),
            Holders::Many(several) => (None, Some(several.holders.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    /// The holders' peer ids, in order.
    pub fn keys(&self) -> impl Iterator<Item = &Arc<str>> + Clone {
        self.iter().map(|(peer, _)| peer)
    }

    /// The first, in order, of the holders' names: the one the file is listed under.
    pub fn shown(&self) -> &str {
        match self.names() {
            Some(names) => names.keys().next().map_or("", |name| name),
            None => self.iter().map(|(_, name)| &**name).min().unwrap_or(""),
        }
    }

    /// The name as kept, if some holder uses it.
    pub fn known(&self, name: &str) -> Option<&Arc<str>> {
        match self.names() {
            Some(names) => names.get_key_value(name).map(|(known, _)| known),
            None => self.iter().map(|(_, known)| known).find(|known| ***known == *name),
        }
    }

    /// The names' counts, if kept.
    fn names(&self) -> Option<&BTreeMap<Arc<str>, u32>> {
        match self {
            Holders::One(..) => None,
            Holders::Many(several) => several.names.as_ref(),
        }
    }

    /// `peer` now shares the file under `name` (kept as given: the caller shares an earlier
    /// holder's copy); returns the name it used before, if it held the file already.
    pub fn insert(&mut self, peer: &Arc<str>, name: Arc<str>) -> Option<Arc<str>> {
        if let Holders::One(only, old) = self {
            if only == peer {
                return Some(std::mem::replace(old, name));
            }
            let mut holders = SmallMap::default();
            holders.insert(only.clone(), old.clone());
            *self = Holders::Many(Box::new(Several { holders, names: None }));
        }
        let Holders::Many(several) = self else { return None };
        several.insert(peer, name)
    }

    /// Takes `peer` away; `None` if it does not hold the file.
    pub fn remove(&mut self, peer: &str) -> Option<Removal> {
        match self {
            Holders::One(only, _) => (**only == *peer).then_some(Removal::Only),
            Holders::Many(several) if several.holders.len() == 1 => several.holders.contains_key(peer).then_some(Removal::Only),
            Holders::Many(several) => several.remove(peer).map(Removal::Name),
        }
    }

    /// The only holder's name (what it shared the file under when it was the last to leave).
    pub fn only_name(&self) -> Option<Arc<str>> {
        match self {
            Holders::One(_, name) => Some(name.clone()),
            Holders::Many(several) => several.holders.iter().next().map(|(_, name)| name.clone()),
        }
    }
}

impl Several {
    fn insert(&mut self, peer: &Arc<str>, name: Arc<str>) -> Option<Arc<str>> {
        let old = self.holders.insert(peer.clone(), name.clone());
        match &mut self.names {
            Some(names) => {
                *names.entry(name).or_insert(0) += 1;
                if let Some(old) = &old {
                    uncount(names, old);
                }
            }
            None if matches!(self.holders, SmallMap::Many(_)) => {
                let mut names = BTreeMap::new();
                for (_, name) in self.holders.iter() {
                    *names.entry(name.clone()).or_insert(0) += 1;
                }
                self.names = Some(names);
            }
            None => {}
        }
        old
    }

    fn remove(&mut self, peer: &str) -> Option<Arc<str>> {
        let name = self.holders.remove(peer)?;
        if let Some(names) = &mut self.names {
            uncount(names, &name);
        }
        Some(name)
    }
}

/// One holder fewer uses `name`.
fn uncount(names: &mut BTreeMap<Arc<str>, u32>, name: &str) {
    if let Some(count) = names.get_mut(name) {
        *count -= 1;
        if *count == 0 {
            names.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_is_kept_inline_and_more_in_a_box() {
        assert_eq!(std::mem::size_of::<Holders>(), 32, "one holder costs no more room than its two names");
        let mut holders = Holders::new("p1".into(), "a".into());
        assert_eq!(holders.insert(&"p1".into(), "b".into()).as_deref(), Some("a"), "a rename");
        assert!(matches!(holders, Holders::One(..)));
        assert_eq!(holders.insert(&"p0".into(), "c".into()), None);
        assert_eq!(holders.keys().map(|p| &**p).collect::<Vec<_>>(), ["p0", "p1"]);
        assert_eq!((holders.len(), holders.shown(), holders.get("p1").map(|n| &**n)), (2, "b", Some("b")));
        assert_eq!(holders.remove("p9"), None);
        assert_eq!(holders.remove("p1"), Some(Removal::Name("b".into())));
        assert_eq!(holders.remove("p0"), Some(Removal::Only), "the last holder leaves with the file");
        assert_eq!(holders.only_name().as_deref(), Some("c"));
    }

    #[test]
    fn names_are_counted_past_the_small_vector() {
        let mut holders = Holders::new("p00".into(), "even".into());
        for p in 1..20 {
            holders.insert(&format!("p{p:02}").into(), if p % 2 == 0 { "even" } else { "odd" }.into());
        }
        assert!(matches!(&holders, Holders::Many(several) if several.names.is_some()));
        assert_eq!((holders.shown(), holders.known("odd").is_some()), ("even", true));
        for p in (0..20).step_by(2) {
            assert_eq!(holders.remove(&format!("p{p:02}")), Some(Removal::Name("even".into())));
        }
        assert_eq!((holders.shown(), holders.known("even")), ("odd", None));
    }
}
