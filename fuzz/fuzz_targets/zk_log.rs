//! `LogReader` over an arbitrary file: never panics, never loops, and what it reports is
//! consistent (records back to back inside the file, the end where the last record
//! ends). The first input byte picks a mode: odd = fix up every record's checksum first
//! so that the payload decoder is reached; the rest of the input is the file.
#![no_main]

use keeperkit_fuzz::{fix_log_checksums, MemFs};
use keeperkit_wal::zookeeper::{LogEnd, LogReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, file)) = data.split_first() else { return };
    let mut bytes = file.to_vec();
    if mode & 1 == 1 {
        fix_log_checksums(&mut bytes);
    }
    let len = bytes.len() as u64;
    let fs = MemFs::new("log.1", bytes);
    let Ok(mut reader) = LogReader::open(&fs, &fs.path()) else { return };
    assert_eq!(reader.file_len(), len);
    let mut next = if reader.header().is_some() { 16 } else { 0 };
    loop {
        match reader.next_record() {
            Ok(Some(rec)) => {
                assert_eq!(rec.offset, next);
                assert!(rec.end_offset() <= len);
                assert!(rec.checksum <= u64::from(u32::MAX));
                next = rec.end_offset();
            }
            Ok(None) => {
                let end = reader.end().expect("end is set after the last record");
                assert_eq!(end.offset(), next);
                if let LogEnd::Eof { offset } = end {
                    assert_eq!(*offset, len);
                }
                assert!(reader.next_record().expect("the end repeats").is_none());
                return;
            }
            Err(e) => {
                let c = e.corruption().expect("MemFs never fails a read");
                assert!(c.offset <= len);
                return;
            }
        }
    }
});
