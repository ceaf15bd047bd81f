//! [`Table`]: one kind of record, keyed by bytes in sorted order, in whichever database the
//! installation uses. The services see keys and values; only this module and its backends name
//! sled or SQL.
//!
//! Reads that return many records return them collected: the callers scan small sets (one
//! conversation's messages, one visitor's pages) or rebuild an index once at start.

use std::ops::Bound;

use crate::error::Result;
use crate::storage::postgres::PgTable;

/// A key and its value.
pub type Record = (Vec<u8>, Vec<u8>);

/// One kind of record.
#[derive(Debug, Clone)]
pub struct Table {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Sled(sled::Tree),
    Postgres(PgTable),
}

impl Table {
    pub(crate) fn sled(tree: sled::Tree) -> Table {
        Table {
            inner: Inner::Sled(tree),
        }
    }

    pub(crate) fn postgres(table: PgTable) -> Table {
        Table {
            inner: Inner::Postgres(table),
        }
    }

    /// A table in a throw-away embedded database, for unit tests of the services.
    pub fn temporary() -> Result<Table> {
        let db = sled::Config::new().temporary(true).open()?;
        Ok(Table::sled(db.open_tree("temporary")?))
    }

    /// The PostgreSQL table behind this table, when it is one.
    pub(crate) fn as_postgres(&self) -> Option<&PgTable> {
        match &self.inner {
            Inner::Sled(_) => None,
            Inner::Postgres(table) => Some(table),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        match &self.inner {
            Inner::Sled(tree) => Ok(tree.get(key)?.map(|value| value.to_vec())),
            Inner::Postgres(table) => table.get(key.as_ref()),
        }
    }

    /// Whether `key` holds a value.
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        match &self.inner {
            Inner::Sled(tree) => Ok(tree.contains_key(key)?),
            Inner::Postgres(table) => table.contains_key(key.as_ref()),
        }
    }

    /// Writes `value` under `key` (insert or replace).
    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        match &self.inner {
            Inner::Sled(tree) => {
                tree.insert(key.as_ref(), value.as_ref())?;
                Ok(())
            }
            Inner::Postgres(table) => table.insert(key.as_ref(), value.as_ref()),
        }
    }

    /// Removes `key`; returns whether it held a value.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        match &self.inner {
            Inner::Sled(tree) => Ok(tree.remove(key)?.is_some()),
            Inner::Postgres(table) => table.remove(key.as_ref()),
        }
    }

    /// Every record, in key order.
    pub fn iter(&self) -> Result<Vec<Record>> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }

    /// Every key, in order.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>> {
        Ok(self.iter()?.into_iter().map(|(key, _)| key).collect())
    }

    /// Records whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<Vec<Record>> {
        let prefix = prefix.as_ref();
        match &self.inner {
            Inner::Sled(tree) => tree
                .scan_prefix(prefix)
                .map(|item| {
                    let (key, value) = item?;
                    Ok((key.to_vec(), value.to_vec()))
                })
                .collect(),
            Inner::Postgres(table) => table.range(
                Bound::Included(prefix.to_vec()),
                prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded),
                None,
                false,
            ),
        }
    }

    /// Keys that start with `prefix`, in order.
    pub fn scan_prefix_keys(&self, prefix: impl AsRef<[u8]>) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .scan_prefix(prefix)?
            .into_iter()
            .map(|(key, _)| key)
            .collect())
    }

    /// The record with the greatest key that starts with `prefix`.
    pub fn last_with_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<Option<Record>> {
        let prefix = prefix.as_ref();
        match &self.inner {
            Inner::Sled(tree) => match tree.scan_prefix(prefix).next_back() {
                Some(item) => {
                    let (key, value) = item?;
                    Ok(Some((key.to_vec(), value.to_vec())))
                }
                None => Ok(None),
            },
            Inner::Postgres(table) => Ok(table
                .range(
                    Bound::Included(prefix.to_vec()),
                    prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded),
                    Some(1),
                    true,
                )?
                .pop()),
        }
    }

    /// Records with keys between the bounds, in key order.
    pub fn range(&self, from: Bound<Vec<u8>>, to: Bound<Vec<u8>>) -> Result<Vec<Record>> {
        self.range_limited(from, to, None, false)
    }

    /// At most `limit` records between the bounds, from the greatest key down when `newest_first`.
    pub fn range_limited(
        &self,
        from: Bound<Vec<u8>>,
        to: Bound<Vec<u8>>,
        limit: Option<usize>,
        newest_first: bool,
    ) -> Result<Vec<Record>> {
        match &self.inner {
            Inner::Sled(tree) => {
                let items = tree.range::<Vec<u8>, _>((from, to));
                let take = limit.unwrap_or(usize::MAX);
                let collect = |item: sled::Result<(sled::IVec, sled::IVec)>| {
                    let (key, value) = item?;
                    Ok((key.to_vec(), value.to_vec()))
                };
                if newest_first {
                    items.rev().take(take).map(collect).collect()
                } else {
                    items.take(take).map(collect).collect()
                }
            }
            Inner::Postgres(table) => table.range(from, to, limit, newest_first),
        }
    }

    /// How many records the table holds.
    pub fn len(&self) -> Result<usize> {
        match &self.inner {
            Inner::Sled(tree) => Ok(tree.len()),
            Inner::Postgres(table) => table.len(),
        }
    }

    /// Whether the table holds no record (one key read, not a count).
    pub fn is_empty(&self) -> Result<bool> {
        match &self.inner {
            Inner::Sled(tree) => Ok(tree.is_empty()),
            Inner::Postgres(table) => Ok(table
                .range(Bound::Unbounded, Bound::Unbounded, Some(1), false)?
                .is_empty()),
        }
    }

    /// Bytes of every value together, without holding them all at once.
    pub fn value_bytes(&self) -> Result<u64> {
        match &self.inner {
            Inner::Sled(tree) => tree
                .iter()
                .values()
                .try_fold(0u64, |total, value| Ok(total + value?.len() as u64)),
            Inner::Postgres(table) => table.value_bytes(),
        }
    }

    /// Removes every record.
    pub fn clear(&self) -> Result<()> {
        match &self.inner {
            Inner::Sled(tree) => Ok(tree.clear()?),
            Inner::Postgres(table) => table.clear(),
        }
    }

    /// Writes `new` under `key` only when it holds `old` (`None`: absent); `new` of `None` removes.
    /// Returns whether the swap happened.
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool> {
        match &self.inner {
            Inner::Sled(tree) => Ok(tree.compare_and_swap(key, old, new)?.is_ok()),
            Inner::Postgres(table) => table.compare_and_swap(key.as_ref(), old, new),
        }
    }

    /// Replaces the value under `key` with `change(current)` atomically (`None` in or out: absent)
    /// and returns what was stored. `change` may run more than once when another writer got there
    /// first, so it must only compute.
    pub fn update_and_fetch(
        &self,
        key: impl AsRef<[u8]>,
        mut change: impl FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>> {
        match &self.inner {
            Inner::Sled(tree) => Ok(tree
                .update_and_fetch(key, &mut change)?
                .map(|value| value.to_vec())),
            Inner::Postgres(_) => {
                let key = key.as_ref();
                loop {
                    let current = self.get(key)?;
                    let next = change(current.as_deref());
                    if self.compare_and_swap(key, current.as_deref(), next.as_deref())? {
                        return Ok(next);
                    }
                }
            }
        }
    }
}

/// The smallest key greater than every key starting with `prefix` (`None`: there is none, the
/// prefix is all 0xff).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn sled_tables_scan_in_key_order_and_swap_atomically() {
        let table = Table::temporary().unwrap();
        table.insert(b"a\x00\x02", b"2").unwrap();
        table.insert(b"a\x00\x01", b"1").unwrap();
        table.insert(b"b", b"x").unwrap();
        let keys = table.scan_prefix_keys(b"a\x00").unwrap();
        assert_eq!(keys, vec![b"a\x00\x01".to_vec(), b"a\x00\x02".to_vec()]);
        assert_eq!(table.last_with_prefix(b"a").unwrap().unwrap().1, b"2");
        assert!(!table.compare_and_swap(b"b", None, Some(b"y")).unwrap());
        assert!(table
            .compare_and_swap(b"b", Some(b"x"), Some(b"y"))
            .unwrap());
        assert_eq!(table.get(b"b").unwrap().unwrap(), b"y");
        let newest = table
            .range_limited(Bound::Unbounded, Bound::Unbounded, Some(2), true)
            .unwrap();
        assert_eq!(newest[0].0, b"b");
        assert_eq!(newest.len(), 2);
    }
}
