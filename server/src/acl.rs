//! ZooKeeper 3.8's authentication and ACL rules, as the server applies them:
//! `ZooKeeperServer.checkACL`, `PrepRequestProcessor.fixupACL`, and the `digest` and
//! `ip` providers (`DigestAuthenticationProvider`, `IPAuthenticationProvider`).

use std::net::IpAddr;

use keeperkit_model::acl::Perms;
use keeperkit_model::{Acl, AclList, ErrorCode, Id};

/// The scheme of the id a session gets when it authenticates with the super digest.
pub const SUPER_SCHEME: &str = "super";

/// `DigestAuthenticationProvider.generateDigest`: for `user:password`, the id
/// `user:base64(sha1(user:password))`.
pub fn digest_id(credentials: &[u8]) -> Option<String> {
    keeperkit_tree::keeper_digest_id(credentials)
}

/// `DigestAuthenticationProvider.isValid`: exactly two parts around `:` as Java's
/// `String.split(":")` counts them (trailing empty parts dropped).
fn digest_valid(id: &str) -> bool {
    let mut parts: Vec<&str> = id.split(':').collect();
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    parts.len() == 2
}

/// The address and prefix length of an `ip` ACL id (`a.b.c.d` or `a.b.c.d/bits`).
fn ip_expr(expr: &str) -> Option<(Vec<u8>, usize)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (expr, None),
    };
    let bytes = addr_bytes(addr)?;
    let max = bytes.len() * 8;
    let bits = match bits {
        Some(b) => {
            b.parse::<i64>().ok().and_then(|n| usize::try_from(n).ok()).filter(|&n| n <= max)?
        }
        None => max,
    };
    Some((bytes, bits))
}

fn addr_bytes(s: &str) -> Option<Vec<u8>> {
    match s.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some(a.octets().to_vec()),
        IpAddr::V6(a) => Some(a.octets().to_vec()),
    }
}

fn masked(mut b: Vec<u8>, bits: usize) -> Vec<u8> {
    for (i, byte) in b.iter_mut().enumerate() {
        let start = i * 8;
        if start >= bits {
            *byte = 0;
        } else if bits - start < 8 {
            *byte &= 0xffu8 << (8 - (bits - start));
        }
    }
    b
}

/// `IPAuthenticationProvider.matches`: whether the client address `client` is in the
/// ACL's `expr`.
fn ip_matches(client: &str, expr: &str) -> bool {
    let Some((acl, bits)) = ip_expr(expr) else { return false };
    let Some(remote) = addr_bytes(client) else { return false };
    remote.len() == acl.len() && masked(remote, bits) == masked(acl, bits)
}

/// Whether a provider exists for `scheme` and finds `id` well formed.
fn provider_valid(scheme: &str, id: &str) -> bool {
    match scheme {
        "digest" => digest_valid(id),
        "ip" => ip_expr(id).is_some(),
        _ => false,
    }
}

/// Whether the authenticated id `auth` satisfies the ACL id `acl` (same scheme).
fn provider_matches(scheme: &str, auth: &str, acl: &str) -> bool {
    match scheme {
        "digest" => auth == acl,
        "ip" => ip_matches(auth, acl),
        _ => false,
    }
}

/// `checkACL`: may a connection with `auths` do `perm` on a node whose ACL is `acl`?
/// An empty list allows everything; a `super` id anything.
pub fn check(acl: &[Acl], perm: Perms, auths: &[Id]) -> Result<(), ErrorCode> {
    if acl.is_empty() || auths.iter().any(|a| a.scheme == SUPER_SCHEME) {
        return Ok(());
    }
    for a in acl.iter().filter(|a| a.perms.0 & perm.0 != 0) {
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return Ok(());
        }
        if auths
            .iter()
            .any(|s| s.scheme == a.id.scheme && provider_matches(&s.scheme, &s.id, &a.id.id))
        {
            return Ok(());
        }
    }
    Err(ErrorCode::NoAuth)
}

/// `fixupACL`: duplicates removed, each `auth` entry expanded to the connection's
/// authenticated digest ids in the order of `auths` (ZooKeeper's auth set order:
/// [`crate::javahash::AuthIds`]), every other id checked by its provider. Empty or
/// invalid: InvalidACL.
pub fn fixup(acl: &[Acl], auths: &[Id]) -> Result<AclList, ErrorCode> {
    let mut uniq: Vec<&Acl> = Vec::with_capacity(acl.len());
    for a in acl {
        if !uniq.contains(&a) {
            uniq.push(a);
        }
    }
    if uniq.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out = Vec::with_capacity(uniq.len());
    for a in uniq {
        if a.id.scheme == "world" && a.id.id == "anyone" {
            out.push(a.clone());
        } else if a.id.scheme == "auth" {
            // Only ids whose provider says `isAuthenticated` count: digest ones (the
            // ip provider says no; super has no provider).
            let mut any = false;
            for id in auths.iter().filter(|i| i.scheme == "digest") {
                any = true;
                out.push(Acl { perms: a.perms, id: id.clone() });
            }
            if !any {
                return Err(ErrorCode::InvalidAcl);
            }
        } else if provider_valid(&a.id.scheme, &a.id.id) {
            out.push(a.clone());
        } else {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    Ok(out)
}

/// The user name `whoAmI` reports for an id (`AuthenticationProvider.getUserName`).
pub fn user_name(id: &Id) -> String {
    match id.scheme.as_str() {
        "digest" => id.id.split(':').next().unwrap_or_default().to_string(),
        _ => id.id.clone(),
    }
}

/// Digest ids in an ACL with the password hash hidden (`getACL` without ADMIN).
pub fn redact(acl: &[Acl]) -> AclList {
    acl.iter()
        .map(|a| {
            if a.id.scheme == "digest" {
                let user = a.id.id.split(':').next().unwrap_or_default();
                Acl {
                    perms: a.perms,
                    id: Id { scheme: a.id.scheme.clone(), id: format!("{user}:x") },
                }
            } else {
                a.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl { perms: Perms(perms), id: Id { scheme: scheme.into(), id: id.into() } }
    }

    fn id(scheme: &str, id: &str) -> Id {
        Id { scheme: scheme.into(), id: id.into() }
    }

    #[test]
    fn checks_follow_zookeeper() {
        let ip = [id("ip", "127.0.0.1")];
        assert_eq!(check(&[], Perms::READ, &ip), Ok(()));
        assert_eq!(check(&[acl(1, "world", "anyone")], Perms::READ, &ip), Ok(()));
        assert_eq!(check(&[acl(2, "world", "anyone")], Perms::READ, &ip), Err(ErrorCode::NoAuth));
        assert_eq!(check(&[acl(31, "ip", "127.0.0.0/8")], Perms::READ, &ip), Ok(()));
        assert_eq!(check(&[acl(31, "ip", "10.0.0.0/8")], Perms::READ, &ip), Err(ErrorCode::NoAuth));
        assert_eq!(check(&[acl(31, "ip", "127.0.0.1")], Perms::ADMIN, &ip), Ok(()));
        let d = digest_id(b"u:p").unwrap();
        let with = [id("ip", "127.0.0.1"), id("digest", &d)];
        assert_eq!(check(&[acl(31, "digest", &d)], Perms::WRITE, &with), Ok(()));
        assert_eq!(check(&[acl(31, "digest", &d)], Perms::WRITE, &ip), Err(ErrorCode::NoAuth));
        let sup = [id("super", "")];
        assert_eq!(check(&[acl(1, "digest", &d)], Perms::ADMIN, &sup), Ok(()));
    }

    #[test]
    fn fixup_follows_zookeeper() {
        let ip = [id("ip", "127.0.0.1")];
        assert_eq!(fixup(&[], &ip), Err(ErrorCode::InvalidAcl));
        let open = [acl(31, "world", "anyone"), acl(31, "world", "anyone")];
        assert_eq!(fixup(&open, &ip), Ok(vec![acl(31, "world", "anyone")]));
        assert_eq!(fixup(&[acl(31, "world", "x")], &ip), Err(ErrorCode::InvalidAcl));
        assert_eq!(fixup(&[acl(31, "digest", "a:b:c")], &ip), Err(ErrorCode::InvalidAcl));
        assert_eq!(fixup(&[acl(31, "digest", "a:")], &ip), Err(ErrorCode::InvalidAcl));
        assert!(fixup(&[acl(31, "digest", "a:b")], &ip).is_ok());
        assert_eq!(fixup(&[acl(31, "ip", "1.2.3.4/33")], &ip), Err(ErrorCode::InvalidAcl));
        assert_eq!(fixup(&[acl(5, "auth", "")], &ip), Err(ErrorCode::InvalidAcl));
        let both = [id("ip", "127.0.0.1"), id("digest", "u:x")];
        assert_eq!(fixup(&[acl(5, "auth", "")], &both), Ok(vec![acl(5, "digest", "u:x")]));
        assert_eq!(digest_id(b"super:test").unwrap(), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
        assert_eq!(redact(&[acl(1, "digest", "u:abc")]), vec![acl(1, "digest", "u:x")]);
    }
}
