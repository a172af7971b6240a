//! One module per command.

pub mod bench;
pub mod convert;
pub mod diff;
pub mod dump;
pub mod inspect;
pub mod log;
pub mod members;
pub mod recover;
pub mod repair;
pub mod replicas;
pub mod serve;
pub mod sessions;
pub mod stats;
pub mod verify;

use std::io::Write;

use crate::Failure;

/// Writes one JSON value as a line.
pub(crate) fn json_line(out: &mut dyn Write, v: &impl serde::Serialize) -> Result<(), Failure> {
    serde_json::to_writer(&mut *out, v).map_err(|e| Failure::from(std::io::Error::from(e)))?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes one JSON document, pretty-printed.
pub(crate) fn json_doc(out: &mut dyn Write, v: &impl serde::Serialize) -> Result<(), Failure> {
    serde_json::to_writer_pretty(&mut *out, v)
        .map_err(|e| Failure::from(std::io::Error::from(e)))?;
    out.write_all(b"\n")?;
    Ok(())
}

pub(crate) use keeperkit_storage::dump::{escape, preview};

/// Formats ms since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), for human output.
pub(crate) fn iso_time(ms: i64) -> String {
    keeperkit_model::time::Civil::from_epoch_ms(ms).iso8601()
}

/// The outcome of an exit status decided by [`keeperkit_storage::findings::exit_status`].
pub(crate) fn outcome(status: u8) -> crate::Outcome {
    if status == 0 {
        crate::Outcome::Clean
    } else {
        crate::Outcome::Found
    }
}
