//! Inputs the `ch_changelog` fuzz target found, reduced to what triggered them: guards
//! against panics (overflow, slicing) on hostile changelog contents.

use std::path::Path;

use keeperkit_wal::clickhouse::startup::{plan_startup, Resume};
use keeperkit_wal::clickhouse::{read_bytes, ChangelogRecord, ReadOptions, VALUE_TYPE_APP_LOG};

/// fuzz `crash-1c4305ef…`: a clean file whose last record has index `u64::MAX` made the
/// "resume at last + 1" computation overflow.
#[test]
fn record_index_u64_max_does_not_overflow() {
    let mut bytes = Vec::new();
    ChangelogRecord::new(u64::MAX, 1, VALUE_TYPE_APP_LOG, vec![]).encode_into(&mut bytes);
    let f = read_bytes(Path::new("/x/changelog_1_100.bin"), &bytes, false, ReadOptions::default())
        .expect("reads");
    assert_eq!(f.records.len(), 1);
    let plan = plan_startup(&[f], 0, 100_000, false).expect("plan");
    assert_eq!(plan.last_index(), Some(u64::MAX));
    assert_eq!(plan.resume, Resume::AppendTo(0));
    let mut g =
        read_bytes(Path::new("/x/changelog_1_1.bin"), &bytes, false, ReadOptions::default())
            .expect("reads");
    g.records[0].record.index = u64::MAX;
    let plan = plan_startup(&[g], 0, 100_000, false).expect("plan");
    assert_eq!(plan.resume, Resume::NewFile { from: u64::MAX });
}
