//! The iteration order of ZooKeeper's Java hash collections, where ZooKeeper lets it
//! show to clients.
//!
//! - A closing session's ephemerals are deleted (and their events sent) in the order of
//!   a clone of the session's `java.util.HashSet<String>` of their paths
//!   ([`JavaStringSet`]).
//! - A connection's authenticated ids live in a `ConcurrentHashMap`-backed `Set<Id>`
//!   (`ServerCnxn.authInfo`): `whoAmI` lists them and an `auth` ACL entry expands to
//!   them in that set's order ([`AuthIds`]).
//!
//! Both come down to Java's `String.hashCode`, the `Id` record's `hashCode`, the hash
//! spreading of the two maps, and how each map grows.

use keeperkit_model::Id;

/// Java's `String.hashCode`: `s[0]*31^(n-1) + … + s[n-1]` over UTF-16 code units,
/// wrapping in 32 bits.
pub fn string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The jute-generated `Id.hashCode`: `37 * (37 * 17 + scheme.hashCode()) +
/// id.hashCode()`.
pub fn id_hash(id: &Id) -> i32 {
    let h = 37i32.wrapping_mul(17).wrapping_add(string_hash(&id.scheme));
    37i32.wrapping_mul(h).wrapping_add(string_hash(&id.id))
}

/// `h ^ (h >>> 16)` as an unsigned bucket selector (`HashMap.hash`).
fn hash_map_spread(h: i32) -> u32 {
    let h = h as u32;
    h ^ (h >> 16)
}

/// `ConcurrentHashMap.spread`: `(h ^ (h >>> 16)) & HASH_BITS`.
fn concurrent_spread(h: i32) -> u32 {
    hash_map_spread(h) & 0x7fff_ffff
}

/// `HashMap.tableSizeFor`.
fn table_size_for(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

/// `HashMap.TREEIFY_THRESHOLD`: a bin that reaches 9 entries grows a table under
/// `MIN_TREEIFY_CAPACITY` buckets (`treeifyBin` → `resize`).
const HASH_MAP_TREEIFY: usize = 8;

/// A `java.util.HashSet<String>` as ZooKeeper's `DataTree` keeps one per session for
/// its ephemeral paths: only what decides its iteration order. The table starts at 16
/// buckets on the first add and doubles when the count passes 3/4 of it, or when a bin
/// of a table under 64 buckets gets its 9th entry (`treeifyBin`); a doubling splits
/// each bin keeping its order; a removal keeps the order of the rest; the table never
/// shrinks. Bins become red-black trees only in tables of 64+ buckets with 9+ entries
/// in one bin (below one in a million bins at these loads): they are kept as lists
/// here, so a new entry goes last where Java would put it after its tree parent.
#[derive(Debug, Clone, Default)]
pub struct JavaStringSet {
    /// Bins of (spread hash, path), in iteration order; empty before the first add.
    table: Vec<Vec<(u32, String)>>,
    len: usize,
}

impl JavaStringSet {
    /// An empty set (`new HashSet<>()`: no table until the first add).
    pub fn new() -> JavaStringSet {
        JavaStringSet::default()
    }

    /// `HashSet.add`: false when `path` was there already.
    pub fn insert(&mut self, path: String) -> bool {
        if self.table.is_empty() {
            self.table = vec![Vec::new(); 16];
        }
        let h = hash_map_spread(string_hash(&path));
        let at = h as usize & (self.table.len() - 1);
        let bin = &mut self.table[at];
        if bin.iter().any(|(_, p)| *p == path) {
            return false;
        }
        let before = bin.len();
        bin.push((h, path));
        if before >= HASH_MAP_TREEIFY && self.table.len() < MIN_TREEIFY_CAPACITY {
            self.double();
        }
        self.len += 1;
        // The threshold: (int) (capacity * 0.75f).
        if self.len as f32 > self.table.len() as f32 * 0.75f32 {
            self.double();
        }
        true
    }

    /// `HashSet.remove`: false when `path` was not there.
    pub fn remove(&mut self, path: &str) -> bool {
        if self.table.is_empty() {
            return false;
        }
        let h = hash_map_spread(string_hash(path));
        let at = h as usize & (self.table.len() - 1);
        let bin = &mut self.table[at];
        match bin.iter().position(|(_, p)| p == path) {
            Some(i) => {
                bin.remove(i);
                self.len -= 1;
                true
            }
            None => false,
        }
    }

    /// `HashMap.resize` to twice the buckets: each bin splits into the same index and
    /// index + old size, both in the bin's order.
    fn double(&mut self) {
        let n = self.table.len();
        let mut next = vec![Vec::new(); 2 * n];
        for (i, bin) in std::mem::take(&mut self.table).into_iter().enumerate() {
            for (h, p) in bin {
                let to = if h as usize & n == 0 { i } else { i + n };
                next[to].push((h, p));
            }
        }
        self.table = next;
    }

    /// Whether `path` is in the set.
    pub fn contains(&self, path: &str) -> bool {
        if self.table.is_empty() {
            return false;
        }
        let h = hash_map_spread(string_hash(path));
        self.table[h as usize & (self.table.len() - 1)].iter().any(|(_, p)| p == path)
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The paths in this set's own iteration order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.table.iter().flat_map(|b| b.iter().map(|(_, p)| p.as_str()))
    }

    /// The iteration order of `clone()` (what `DataTree.getEphemerals` returns):
    /// `HashMap.putMapEntries` sizes the copy's table for the count
    /// (`tableSizeFor((int) (size / 0.75f + 1.0f))`) and adds the entries in this
    /// set's order.
    pub fn clone_order(&self) -> Vec<String> {
        if self.len == 0 {
            return Vec::new();
        }
        // Java's float arithmetic, then the (int) cast (a positive float far below
        // usize::MAX: nothing to truncate but the fraction).
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        let t = (self.len as f32 / 0.75f32 + 1.0f32) as usize;
        let mut copy = JavaStringSet { table: vec![Vec::new(); table_size_for(t)], len: 0 };
        for p in self.iter() {
            copy.insert(p.to_string());
        }
        copy.iter().map(str::to_string).collect()
    }
}

/// `ConcurrentHashMap.TREEIFY_THRESHOLD`, `UNTREEIFY_THRESHOLD`, `MIN_TREEIFY_CAPACITY`.
const TREEIFY_THRESHOLD: usize = 8;
const UNTREEIFY_THRESHOLD: usize = 6;
const MIN_TREEIFY_CAPACITY: usize = 64;

/// One bin of the table: its entries in iteration order (spread hash, index into
/// `AuthIds::ids`) and whether it is a `TreeBin` (new entries go first there).
#[derive(Debug, Clone, Default)]
struct Bin {
    tree: bool,
    entries: Vec<(u32, usize)>,
}

/// A connection's authenticated ids, iterated as ZooKeeper 3.8's
/// `Collections.newSetFromMap(new ConcurrentHashMap<>())` iterates them: bucket by
/// bucket (`spread(id.hashCode()) & (capacity - 1)`), ties in insertion order. The
/// table starts at 16 buckets and doubles when the count reaches 3/4 of it
/// (`addCount`), or when a bucket already holding 8 entries gets another while the
/// table is under 64 (`treeifyBin` → `tryPresize`). A doubling splits each bucket as
/// `transfer` does: the entries before the bucket's last run of same-side entries
/// come out reversed. Ids are never removed (ZooKeeper does not).
#[derive(Debug, Clone, Default)]
pub struct AuthIds {
    ids: Vec<Id>,
    table: Vec<Bin>,
}

impl AuthIds {
    /// An empty set (the table is allocated by the first insertion, as Java's).
    pub fn new() -> AuthIds {
        AuthIds::default()
    }

    /// Adds `id`; false when it was already there. Like `putVal`, adding an id that is
    /// already there still counts the entries before it in its bin, and may grow the
    /// table or turn the bin into a tree.
    pub fn insert(&mut self, id: Id) -> bool {
        if self.table.is_empty() {
            self.table = vec![Bin::default(); 16];
        }
        let h = concurrent_spread(id_hash(&id));
        let n = self.table.len();
        let at = h as usize & (n - 1);
        let existing = self.table[at].entries.iter().position(|&(_, i)| self.ids[i] == id);
        let bin = &mut self.table[at];
        // putVal's binCount: for a list bin, the position of the id (1-based) or the
        // number of entries before a new one; for a tree bin, 2.
        let bin_count = match existing {
            _ if bin.tree => 2,
            Some(pos) => pos + 1,
            None => bin.entries.len(),
        };
        if existing.is_none() {
            let index = self.ids.len();
            self.ids.push(id);
            if bin.tree {
                bin.entries.insert(0, (h, index));
            } else {
                bin.entries.push((h, index));
            }
        }
        if bin_count >= TREEIFY_THRESHOLD {
            if n < MIN_TREEIFY_CAPACITY {
                // tryPresize(n << 1): grow while the wanted size exceeds sizeCtl.
                let size = n << 1;
                let wanted = table_size_for(size + (size >> 1) + 1);
                while wanted > self.table.len() - (self.table.len() >> 2) {
                    self.double();
                }
            } else {
                bin.tree = true;
            }
        }
        if existing.is_some() {
            return false;
        }
        // addCount: grow while the count reached sizeCtl (3/4 of the table).
        while self.ids.len() >= self.table.len() - (self.table.len() >> 2) {
            self.double();
        }
        true
    }

    /// `transfer` to a table twice as large.
    fn double(&mut self) {
        let n = self.table.len();
        let mut next = vec![Bin::default(); 2 * n];
        for (i, bin) in std::mem::take(&mut self.table).into_iter().enumerate() {
            if bin.entries.is_empty() {
                continue;
            }
            let high = |h: u32| h as usize & n != 0;
            let (lo, hi) = if bin.tree {
                // Tree bins split in order; a half of at most 6 entries becomes a list.
                let (hi, lo): (Vec<_>, Vec<_>) = bin.entries.into_iter().partition(|e| high(e.0));
                (lo, hi)
            } else {
                // The last run of entries on one side moves as it is; every entry before
                // it is pushed onto the front of its side's list.
                let mut last = 0;
                let mut run_high = high(bin.entries[0].0);
                for (j, e) in bin.entries.iter().enumerate().skip(1) {
                    if high(e.0) != run_high {
                        run_high = high(e.0);
                        last = j;
                    }
                }
                let tail = bin.entries[last..].to_vec();
                let (mut lo, mut hi) =
                    if run_high { (Vec::new(), tail) } else { (tail, Vec::new()) };
                for e in &bin.entries[..last] {
                    if high(e.0) {
                        hi.insert(0, *e);
                    } else {
                        lo.insert(0, *e);
                    }
                }
                (lo, hi)
            };
            let tree_lo = bin.tree && lo.len() > UNTREEIFY_THRESHOLD;
            let tree_hi = bin.tree && hi.len() > UNTREEIFY_THRESHOLD;
            next[i] = Bin { tree: tree_lo, entries: lo };
            next[i + n] = Bin { tree: tree_hi, entries: hi };
        }
        self.table = next;
    }

    /// The ids in the set's iteration order.
    pub fn to_vec(&self) -> Vec<Id> {
        self.table
            .iter()
            .flat_map(|b| b.entries.iter().map(|&(_, i)| self.ids[i].clone()))
            .collect()
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(scheme: &str, id: &str) -> Id {
        Id { scheme: scheme.into(), id: id.into() }
    }

    fn bucket(i: &Id) -> u32 {
        concurrent_spread(id_hash(i)) & 15
    }

    #[test]
    fn java_string_hashes() {
        assert_eq!(string_hash(""), 0);
        assert_eq!(string_hash("a"), 97);
        assert_eq!(string_hash("hello"), 99_162_322);
        assert_eq!(string_hash("/t/d/d"), 1_454_196_367);
        // Beyond the BMP: two UTF-16 units ("\u{1F600}".hashCode() in Java).
        assert_eq!(string_hash("\u{1F600}"), 1_772_899);
    }

    fn clone_order_after(added: &[&str]) -> Vec<String> {
        let mut set = JavaStringSet::new();
        for p in added {
            set.insert(p.to_string());
        }
        set.clone_order()
    }

    #[test]
    fn close_order_is_bucket_order() {
        // What ZooKeeper 3.8 did with these (seen in a differential run).
        let v = ["/t/b/a", "/t/b/c", "/t/d/d", "/t/d/a/d", "/t/d/s0000000014"];
        assert_eq!(
            clone_order_after(&v),
            ["/t/b/c", "/t/d/d", "/t/d/a/d", "/t/d/s0000000014", "/t/b/a"]
        );
        // Seen too: /t/a/c's NodeDeleted before /t/a/b's.
        assert_eq!(clone_order_after(&["/t/a/b", "/t/a/c"]), ["/t/a/c", "/t/a/b"]);
    }

    /// Orders printed by Java 17's `HashSet<String>.clone()` after seeded adds and
    /// removes (`tests/data/HashSetOrder.java`): each line is the operations, `|`, the
    /// clone's order. Among them: tables grown by the count and by a bin of 9, and
    /// tables left large by removals.
    #[test]
    fn ephemeral_orders_match_java() {
        let text = include_str!("../tests/data/java_ephemeral_order.txt");
        let (mut grown, mut by_bin, mut sparse) = (0, 0, 0);
        for (n, line) in text.lines().enumerate() {
            let (ops, order) = line.split_once('|').expect("a | in every line");
            let mut set = JavaStringSet::new();
            for op in ops.split_whitespace() {
                let (sign, p) = op.split_at(1);
                match sign {
                    "+" => {
                        set.insert(p.to_string());
                    }
                    "-" => assert!(set.remove(p), "line {}: {p} not there", n + 1),
                    _ => panic!("line {}: bad operation {op}", n + 1),
                }
            }
            let want: Vec<&str> = order.split_whitespace().collect();
            assert_eq!(set.clone_order(), want, "line {}", n + 1);
            grown += usize::from(set.table.len() >= 64);
            by_bin += usize::from(set.len() <= 12 && set.table.len() > 16);
            sparse += usize::from(set.len() * 4 < set.table.len());
        }
        assert!(
            grown >= 20 && by_bin >= 5 && sparse >= 10,
            "coverage: {grown} grown to 64+, {by_bin} grown by a bin, {sparse} sparse"
        );
    }

    #[test]
    fn id_buckets_match_zookeeper() {
        // ZooKeeper lists `digest: alice` before `ip: 127.0.0.1` (whoAmI).
        assert_eq!(bucket(&id("ip", "127.0.0.1")), 12);
        let alice = id("digest", "alice:SQICbGEP3vUd4FffsXSLZ8/1XtI=");
        assert_eq!(bucket(&alice), 11);
        assert_eq!(bucket(&id("digest", "super:D/InIHSb7yEEbrWz8b9l71RjZJU=")), 14);
        assert_eq!(bucket(&id("super", "")), 7);
        let mut set = AuthIds::new();
        assert!(set.insert(id("ip", "127.0.0.1")));
        assert!(set.insert(alice.clone()));
        assert!(!set.insert(alice.clone()));
        assert_eq!(set.to_vec(), vec![alice, id("ip", "127.0.0.1")]);
    }

    /// Orders printed by Java 17's `ConcurrentHashMap` with ZooKeeper's `Id` class
    /// (`tests/data/ChmOrder.java`): each line is the ids added, `|`, the set's order.
    /// Among them: tables grown by the count and by `tryPresize`, bins turned into
    /// trees (also by re-adding an id), and trees split by a resize.
    #[test]
    fn orders_match_java() {
        let text = include_str!("../tests/data/java_auth_order.txt");
        let parse = |s: &str| {
            let (scheme, id) = s.split_once(':').expect("scheme:id");
            Id { scheme: scheme.into(), id: id.into() }
        };
        let (mut trees, mut big) = (0, 0);
        for (n, line) in text.lines().enumerate() {
            let (added, order) = line.split_once('|').expect("a | in every line");
            let mut set = AuthIds::new();
            for t in added.split_whitespace() {
                set.insert(parse(t));
            }
            let want: Vec<Id> = order.split_whitespace().map(parse).collect();
            assert_eq!(set.to_vec(), want, "line {}", n + 1);
            trees += usize::from(set.table.iter().any(|b| b.tree));
            big += usize::from(set.table.len() >= 128);
        }
        assert!(
            trees >= 3 && big >= 10,
            "coverage: {trees} with tree bins, {big} with >= 128 bins"
        );
    }
}
