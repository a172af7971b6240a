//! Keeper's authentication and ACL rules: the `digest` auth id, the ACL fix-up of
//! create / setACL, and the permission check. Checked against
//! `src/Coordination/KeeperStorage.cpp` (2024–2025 templated storage: `fixupACL`,
//! `checkACL`, `UncommittedState::hasACL`, the Auth `preprocess`, `generateDigest`).

use keeperkit_model::acl::Perms;
use keeperkit_model::{Acl, AclList, Id};

/// SHA-1 (FIPS 180-4) of `data`: what `Poco::SHA1Engine` computes for Keeper's digest
/// auth ids. Small and self-contained: the tree has no crypto dependency.
pub(crate) fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let bit_len = (data.len() as u64).wrapping_mul(8);
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, &wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t =
                a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Standard base64 with padding, no line breaks (`Poco::Base64Encoder` with line
/// length 0, as Keeper sets it).
pub(crate) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Keeper's `generateDigest`: for credentials `user:password`, the id
/// `user:base64(sha1(user:password))` that a `digest` ACL names. `None` when the user
/// part (before the first `:`) is not UTF-8 (an [`Id`] holds text).
pub fn keeper_digest_id(credentials: &[u8]) -> Option<String> {
    let user_len = credentials.iter().position(|&b| b == b':').unwrap_or(credentials.len());
    let user = std::str::from_utf8(&credentials[..user_len]).ok()?;
    Some(format!("{user}:{}", base64(&sha1(credentials))))
}

/// The scheme Keeper gives a session authenticated with the super digest.
pub(crate) const SUPER_SCHEME: &str = "super";

/// `fixupACL`: the ACL list Keeper stores for a create or setACL, or `None` for
/// ZINVALIDACL. `world:anyone` entries are dropped (whatever their permissions: Keeper
/// does not store default ACLs), `auth` entries become one entry per id of the
/// session (with the entry's permissions; none when the session has no auth),
/// `digest` entries are kept when their id has exactly one `:`, anything else (`ip`,
/// `sasl`, ...) is dropped. The request is valid when some entry was `world:anyone`,
/// a valid `digest`, or an `auth` that produced an entry; an empty request is valid
/// (stored as no ACL). With `block_acl` (`KeeperContext::shouldBlockACL`) nothing is
/// stored.
pub(crate) fn fixup_acl(request: &[Acl], session_auths: &[Id], block_acl: bool) -> Option<AclList> {
    let mut out = Vec::new();
    if block_acl || request.is_empty() {
        return Some(out);
    }
    let mut valid = false;
    for acl in request {
        match acl.id.scheme.as_str() {
            "auth" => {
                for id in session_auths.iter().filter(|id| !id.scheme.is_empty()) {
                    valid = true;
                    out.push(Acl { perms: acl.perms, id: id.clone() });
                }
            }
            "world" if acl.id.id == "anyone" => valid = true,
            "digest" => {
                if acl.id.id.bytes().filter(|&b| b == b':').count() != 1 {
                    return None;
                }
                valid = true;
                out.push(acl.clone());
            }
            _ => {}
        }
    }
    valid.then_some(out)
}

/// `checkACL`: whether a session with `auths` may do `perm` on a node whose ACL list is
/// `acl`. An empty list allows everything; a `super` session may do anything; else
/// some entry granting `perm` must be `world:anyone` or name one of the session's ids
/// (same scheme and id).
pub(crate) fn check_acl(acl: &[Acl], perm: Perms, auths: &[Id]) -> bool {
    if acl.is_empty() || auths.iter().any(|a| a.scheme == SUPER_SCHEME) {
        return true;
    }
    acl.iter().filter(|a| a.perms.0 & perm.0 != 0).any(|a| {
        (a.id.scheme == "world" && a.id.id == "anyone")
            || auths.iter().any(|s| s.scheme == a.id.scheme && s.id == a.id.id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha1_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(hex(&sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            hex(&sha1(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(hex(&sha1(&[b'a'; 1000])), "291e9a6c66994949b57ba5e650361e98fc36b1ba");
    }

    #[test]
    fn base64_vectors() {
        for (i, o) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn digest_id_matches_keeper_integration_test() {
        // tests/integration/test_keeper_auth (docs/formats/clickhouse.md, "Snapshot body").
        assert_eq!(
            keeper_digest_id(b"user1:password1").as_deref(),
            Some("user1:XDkd2dsEuhc9ImU3q8pa8UOdtpI=")
        );
    }
}
