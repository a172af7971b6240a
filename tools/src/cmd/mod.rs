//! One module per command.

pub mod diff;
pub mod dump;
pub mod inspect;
pub mod log;
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

/// A short, printable preview of a value for human output.
pub(crate) fn preview(data: Option<&[u8]>, max: usize) -> String {
    match data {
        None => "null".to_string(),
        Some([]) => "\"\"".to_string(),
        Some(d) => {
            let printable = std::str::from_utf8(d)
                .ok()
                .filter(|s| s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'));
            match printable {
                Some(s) => {
                    let mut t: String = s.chars().take(max).collect();
                    if t.len() < s.len() {
                        t.push('…');
                    }
                    format!("{:?}", t)
                }
                None => format!("<{} bytes binary>", d.len()),
            }
        }
    }
}
