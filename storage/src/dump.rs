//! The lines of `keeperkit dump`: one line per znode in full-path byte order, as text
//! for people or as JSON Lines (the CLI contract's node shape), written on every core.
//!
//! Each part of the tree ([`DataTree::par_sorted`]) is rendered into its own buffer on
//! a worker thread and the buffers are written in order, so the output is byte for
//! byte the one-thread output. Numbers are formatted without `core::fmt` and the
//! common line (a printable path and value) without any allocation: a dump of a
//! million nodes is mostly formatting.

use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};

use base64::Engine;
use keeperkit_model::AclList;
use keeperkit_tree::{DataTree, NodeRef};

/// How many bytes of a value the text line shows.
pub const PREVIEW_CHARS: usize = 40;

/// The capacity each part's output starts with.
const PART_BUF: usize = 1 << 20;

/// Writes the dump of `tree` to `out`: text lines, or JSON lines when `json`, on
/// `threads` threads (the output does not depend on it).
pub fn write_dump(
    tree: &DataTree,
    json: bool,
    threads: usize,
    out: &mut dyn Write,
) -> io::Result<()> {
    // Nodes share interned ACL lists: each list in use is rendered once, by its id
    // (ids are the table's slots, so dense).
    let table = tree.acl_table();
    let mut acls = vec![String::new(); table.last().map_or(0, |&(id, _)| id as usize + 1)];
    for (id, list) in table {
        acls[id as usize] = if json { acl_json(list) } else { acl_text(list) };
    }
    // Written parts' buffers go back to the workers: the walk keeps a few parts per
    // thread in flight, so a handful of buffers serve the whole dump, and no part's
    // output lands in pages the kernel has to fault in and zero first.
    let spare: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    let take = || spare.lock().unwrap_or_else(PoisonError::into_inner).pop();
    tree.par_sorted(
        threads,
        |part| {
            // Big enough for most parts (a part is a few thousand lines): a buffer that
            // grows copies what it holds.
            let mut buf = take().unwrap_or_else(|| Vec::with_capacity(PART_BUF));
            buf.clear();
            let mut b64 = String::new();
            part.for_each(|path, node| {
                // Every node's list is in the table; a miss would be a bug in the tree,
                // and renders as no ACL rather than stopping the dump.
                let acl = acls.get(node.acl_id() as usize).map_or("", String::as_str);
                if json {
                    json_line(&mut buf, path, &node, acl, &mut b64);
                } else {
                    text_line(&mut buf, path, &node, acl);
                }
            });
            buf
        },
        |buf| {
            out.write_all(&buf)?;
            spare.lock().unwrap_or_else(PoisonError::into_inner).push(buf);
            Ok(())
        },
    )
}

/// Appends the text line of a node: `PATH  data=PREVIEW czxid=0x… mzxid=0x… pzxid=0x…
/// version=N cversion=N aversion=N owner=0x… children=N acl=ACL`; `acl` is
/// [`acl_text`] of the node's list.
pub fn text_line(buf: &mut Vec<u8>, path: &str, node: &NodeRef<'_>, acl: &str) {
    if plain(path.as_bytes()) {
        buf.extend_from_slice(path.as_bytes());
    } else {
        buf.extend_from_slice(escape(path).as_bytes());
    }
    buf.extend_from_slice(b"  data=");
    push_preview(buf, node.data());
    let s = node.stat();
    buf.extend_from_slice(b" czxid=");
    push_hex(buf, s.czxid);
    buf.extend_from_slice(b" mzxid=");
    push_hex(buf, s.mzxid);
    buf.extend_from_slice(b" pzxid=");
    push_hex(buf, s.pzxid);
    buf.extend_from_slice(b" version=");
    push_dec(buf, s.version);
    buf.extend_from_slice(b" cversion=");
    push_dec(buf, s.cversion);
    buf.extend_from_slice(b" aversion=");
    push_dec(buf, s.aversion);
    buf.extend_from_slice(b" owner=");
    push_hex(buf, s.ephemeral_owner);
    buf.extend_from_slice(b" children=");
    push_dec(buf, s.num_children);
    buf.extend_from_slice(b" acl=");
    buf.extend_from_slice(acl.as_bytes());
    buf.push(b'\n');
}

/// An ACL list as the text line shows it: `scheme:id:perms` entries, comma-separated,
/// control characters escaped.
pub fn acl_text(acl: &AclList) -> String {
    acl.iter()
        .map(|a| escape(&format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Appends the JSON line of a node: `{"path":…,"data":BASE64|null,"stat":{czxid, mzxid,
/// pzxid, ctime, mtime, version, cversion, aversion, ephemeralOwner, dataLength,
/// numChildren},"acl":ACL}`; `acl` is [`acl_json`] of the node's list and `b64` a
/// reused buffer.
pub fn json_line(buf: &mut Vec<u8>, path: &str, node: &NodeRef<'_>, acl: &str, b64: &mut String) {
    buf.extend_from_slice(b"{\"path\":");
    push_json_str(buf, path);
    match node.data() {
        None => buf.extend_from_slice(b",\"data\":null"),
        Some(d) => {
            b64.clear();
            base64::engine::general_purpose::STANDARD.encode_string(d, b64);
            // The base64 alphabet needs no JSON escaping.
            buf.extend_from_slice(b",\"data\":\"");
            buf.extend_from_slice(b64.as_bytes());
            buf.push(b'"');
        }
    }
    let s = node.stat();
    let fields: [(&[u8], i64); 11] = [
        (b",\"stat\":{\"czxid\":", s.czxid),
        (b",\"mzxid\":", s.mzxid),
        (b",\"pzxid\":", s.pzxid),
        (b",\"ctime\":", s.ctime),
        (b",\"mtime\":", s.mtime),
        (b",\"version\":", i64::from(s.version)),
        (b",\"cversion\":", i64::from(s.cversion)),
        (b",\"aversion\":", i64::from(s.aversion)),
        (b",\"ephemeralOwner\":", s.ephemeral_owner),
        (b",\"dataLength\":", i64::from(s.data_length)),
        (b",\"numChildren\":", i64::from(s.num_children)),
    ];
    for (name, v) in fields {
        buf.extend_from_slice(name);
        buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }
    buf.extend_from_slice(b"},\"acl\":");
    buf.extend_from_slice(acl.as_bytes());
    buf.extend_from_slice(b"}\n");
}

/// An ACL list as the JSON line shows it: `[{"perms":N,"scheme":S,"id":S},…]`.
pub fn acl_json(acl: &AclList) -> String {
    let mut buf = vec![b'['];
    for (i, a) in acl.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"perms\":");
        push_dec(&mut buf, a.perms.0);
        buf.extend_from_slice(b",\"scheme\":");
        push_json_str(&mut buf, &a.id.scheme);
        buf.extend_from_slice(b",\"id\":");
        push_json_str(&mut buf, &a.id.id);
        buf.push(b'}');
    }
    buf.push(b']');
    String::from_utf8(buf).unwrap_or_default()
}

/// `s` with control characters escaped (`\n`, `\u{1b}`, ...), so that text output
/// shows one item per line whatever a znode's name or value holds.
pub fn escape(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

/// A short, printable preview of a value for human output: `null`, `""`, the first
/// `max` characters quoted and escaped as Rust's `{:?}` does (`…` when cut), or
/// `<N bytes binary>`.
pub fn preview(data: Option<&[u8]>, max: usize) -> String {
    match data {
        None => "null".to_string(),
        Some([]) => "\"\"".to_string(),
        Some(d) => {
            // `{:?}` escapes every control character `as_text` lets through.
            match as_text(d) {
                Some(s) => {
                    let mut t: String = s.chars().take(max).collect();
                    if t.len() < s.len() {
                        t.push('…');
                    }
                    format!("{t:?}")
                }
                None => format!("<{} bytes binary>", d.len()),
            }
        }
    }
}

/// True when every byte is printable ASCII: such text needs no escaping anywhere.
fn plain(b: &[u8]) -> bool {
    b.iter().all(|&c| (0x20..0x7f).contains(&c))
}

/// [`preview`] of [`PREVIEW_CHARS`], appended; printable ASCII without quotes or
/// backslashes (nearly every value) is copied without building a string.
fn push_preview(buf: &mut Vec<u8>, data: Option<&[u8]>) {
    if let Some(d) = data.filter(|d| !d.is_empty()) {
        let head = &d[..d.len().min(PREVIEW_CHARS)];
        if plain(head) && !head.iter().any(|&c| c == b'"' || c == b'\\') {
            // ASCII: characters are bytes, so the cut is where `preview` makes it;
            // the rest must still be text `preview` would not call binary.
            let rest_is_text = d.len() == head.len() || as_text(&d[head.len()..]).is_some();
            if rest_is_text {
                buf.push(b'"');
                buf.extend_from_slice(head);
                if d.len() > head.len() {
                    buf.extend_from_slice("…".as_bytes());
                }
                buf.push(b'"');
                return;
            }
        }
    }
    match data {
        Some(d) if !d.is_empty() && as_text(d).is_none() => {
            buf.push(b'<');
            buf.extend_from_slice(itoa::Buffer::new().format(d.len()).as_bytes());
            buf.extend_from_slice(b" bytes binary>");
        }
        _ => buf.extend_from_slice(preview(data, PREVIEW_CHARS).as_bytes()),
    }
}

/// A value as the text [`preview`] shows (UTF-8 without control characters other than
/// newline and tab); `None` when it is shown as `<N bytes binary>`.
fn as_text(d: &[u8]) -> Option<&str> {
    std::str::from_utf8(d)
        .ok()
        .filter(|s| s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'))
}

/// A JSON string, escaped as serde_json does (`"`, `\`, control characters below 0x20).
fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|c| c >= 0x20 && c != b'"' && c != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        // Writing into a Vec cannot fail, and a str always serializes.
        let _ = serde_json::to_writer(&mut *buf, s);
    }
}

/// `{:#x}` of an i64 (two's complement for negative numbers, as Rust prints them).
fn push_hex(buf: &mut Vec<u8>, v: i64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut u = v as u64;
    let mut tmp = [0u8; 16];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = DIGITS[(u & 0xf) as usize];
        u >>= 4;
        if u == 0 {
            break;
        }
    }
    buf.extend_from_slice(b"0x");
    buf.extend_from_slice(&tmp[i..]);
}

fn push_dec(buf: &mut Vec<u8>, v: i32) {
    buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use keeperkit_model::{Acl, Id, Perms, StatPersisted};

    use super::*;

    /// The text line as first written, with `format!` and [`preview`].
    fn text_line_fmt(path: &str, node: &NodeRef<'_>) -> String {
        let s = node.stat();
        format!(
            "{}  data={} czxid={:#x} mzxid={:#x} pzxid={:#x} version={} cversion={} \
             aversion={} owner={:#x} children={} acl={}\n",
            escape(path),
            preview(node.data(), PREVIEW_CHARS),
            s.czxid,
            s.mzxid,
            s.pzxid,
            s.version,
            s.cversion,
            s.aversion,
            s.ephemeral_owner,
            s.num_children,
            acl_text(node.acl()),
        )
    }

    fn sample() -> DataTree {
        let mut t = DataTree::new();
        let acls = [
            vec![
                Acl {
                    perms: Perms(31),
                    id: Id { scheme: "digest".into(), id: "u:\"x\"\n".into() },
                },
                Acl { perms: Perms(1), id: Id::anyone() },
            ],
            Acl::open_unsafe(),
        ];
        let values: [Option<&[u8]>; 12] = [
            None,
            Some(b""),
            Some(b"plain"),
            Some(b"exactly forty characters long, no more!!"),
            Some(b"forty-one characters long, one too many!!"),
            Some(b"a \"quoted\" value"),
            Some(b"back\\slash"),
            Some(b"tab\tand\nnewline"),
            Some(&[0, 255, 10]),
            Some("caf\u{e9} \u{2603} beyond forty characters of unicode text…".as_bytes()),
            Some(b"0123456789012345678901234567890123456789\x01 binary after the cut"),
            Some(b"0123456789012345678901234567890123456789 \xff invalid after the cut"),
        ];
        let stats = [
            StatPersisted { czxid: 3, mzxid: -4, pzxid: i64::MIN, ..Default::default() },
            StatPersisted {
                czxid: i64::MAX,
                version: -1,
                cversion: i32::MIN,
                aversion: 7,
                ephemeral_owner: 0x1000_0000_abcd,
                ctime: -5,
                mtime: 1_700_000_000_000,
                ..Default::default()
            },
        ];
        for (i, v) in values.iter().enumerate() {
            for (j, path) in [format!("/n{i}"), format!("/q\"{i}\\\u{1}é"), format!("/n{i}/c")]
                .iter()
                .enumerate()
            {
                t.insert_loaded(path, *v, &acls[(i + j) % 2], stats[(i + j) % 2]).unwrap();
            }
        }
        t
    }

    #[test]
    fn text_lines_are_the_formatted_lines() {
        let t = sample();
        let mut want = String::new();
        t.for_each_sorted(|p, n| want.push_str(&text_line_fmt(p, &n)));
        for threads in [1, 2] {
            let mut got = Vec::new();
            write_dump(&t, false, threads, &mut got).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), want, "{threads} threads");
        }
    }

    #[test]
    fn json_lines_parse_to_the_node() {
        let t = sample();
        let mut got = Vec::new();
        write_dump(&t, true, 2, &mut got).unwrap();
        let mut n = 0;
        let lines: Vec<&str> = std::str::from_utf8(&got).unwrap().lines().collect();
        t.for_each_sorted(|p, node| {
            let v: serde_json::Value = serde_json::from_str(lines[n]).unwrap();
            n += 1;
            assert_eq!(v["path"], p);
            let data = node.data().map(|d| base64::engine::general_purpose::STANDARD.encode(d));
            assert_eq!(v["data"], serde_json::json!(data));
            let s = node.stat();
            assert_eq!(v["stat"]["czxid"], s.czxid);
            assert_eq!(v["stat"]["pzxid"], s.pzxid);
            assert_eq!(v["stat"]["mtime"], s.mtime);
            assert_eq!(v["stat"]["cversion"], s.cversion);
            assert_eq!(v["stat"]["ephemeralOwner"], s.ephemeral_owner);
            assert_eq!(v["stat"]["numChildren"], s.num_children);
            assert_eq!(v["acl"].as_array().unwrap().len(), node.acl().len());
            assert_eq!(v["acl"][0]["id"], node.acl()[0].id.id);
        });
        assert_eq!(n, lines.len());
    }

    #[test]
    fn hex_is_rusts_alternate_hex() {
        for v in [0, 1, 15, 16, -1, i64::MIN, i64::MAX, 0x1234_5678_9abc] {
            let mut b = Vec::new();
            push_hex(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), format!("{v:#x}"));
        }
    }
}
