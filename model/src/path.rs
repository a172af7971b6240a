//! Znode path helpers and ZooKeeper's path validation rules (`PathUtils.validatePath`).

/// The parent of a path (`"/"` for a top-level node); `None` for the root.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" || path.is_empty() {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The last component of a path (`""` for the root).
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Depth of a path: 0 for the root, 1 for `/a`, ...
pub fn depth(path: &str) -> usize {
    if path == "/" {
        0
    } else {
        path.bytes().filter(|&b| b == b'/').count()
    }
}

/// Whether `path` has more than `max` components. Cheap for every path of at most
/// `max` bytes (a component takes at least one byte), which are never deeper.
#[inline]
pub fn deeper_than(path: &str, max: usize) -> bool {
    path.len() > max && depth(path) > max
}

/// Why ZooKeeper would refuse a path.
pub fn validate(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("path is empty");
    }
    if !path.starts_with('/') {
        return Err("path must start with /");
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err("path must not end with /");
    }
    let mut last = '/';
    for (i, c) in path.char_indices().skip(1) {
        if c == '\0' {
            return Err("null character not allowed");
        }
        if c == '/' && last == '/' {
            return Err("empty node name");
        }
        if c == '.' && last == '.' {
            let prev2 = path[..i - 1].chars().last();
            let next = path[i + 1..].chars().next();
            if prev2 == Some('/') && (next.is_none() || next == Some('/')) {
                return Err("relative paths not allowed");
            }
        }
        if c == '.' && last == '/' {
            let next = path[i + 1..].chars().next();
            if next.is_none() || next == Some('/') {
                return Err("relative paths not allowed");
            }
        }
        let u = c as u32;
        if (u > 0 && u <= 0x1f)
            || (0x7f..=0x9f).contains(&u)
            || (0xd800..=0xf8ff).contains(&u)
            || (0xfff0..=0xffff).contains(&u)
            || u > 0xffff
        {
            return Err("invalid character");
        }
        last = c;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_and_names() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(name("/a/b"), "b");
        assert_eq!(name("/"), "");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(depth("/"), 0);
        assert_eq!(depth("/a/b"), 2);
    }

    #[test]
    fn deeper_than_agrees_with_depth() {
        for p in ["/", "/a", "/a/b", "/a/b/c", "////", "/abc/d/e/f/g", "//////////"] {
            for max in 0..12 {
                assert_eq!(deeper_than(p, max), depth(p) > max, "{p} {max}");
            }
        }
    }

    #[test]
    fn validation_matches_zookeeper() {
        assert!(validate("/").is_ok());
        assert!(validate("/a/b-\u{e9}").is_ok());
        assert!(validate("a").is_err());
        assert!(validate("/a/").is_err());
        assert!(validate("/a//b").is_err());
        assert!(validate("/a/./b").is_err());
        assert!(validate("/a/../b").is_err());
        assert!(validate("/a/..b").is_ok());
        assert!(validate("/\u{1F600}").is_err());
        assert!(validate("/a\u{1}").is_err());
    }
}
