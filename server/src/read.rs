//! Reads: ZooKeeper 3.8's `FinalRequestProcessor` for requests that change nothing,
//! run on a consistent tree. A read that leaves a watch says where; the caller adds it
//! to the watch tables at the read's place in the connection's order.

use keeperkit_model::acl::Perms;
use keeperkit_model::{ErrorCode, Id, NodeKind, SessionId};
use keeperkit_tree::DataTree;

use crate::acl;
use crate::prep::node;
use crate::proto::{ClientInfo, OpResult, Request, Response};
use crate::watch::Table;

/// The feature flags ClickHouse reads from `/keeper/feature_flags`: filtered list,
/// multi read, check-not-exists, create-if-not-exists, remove-recursive (bits 0..4
/// of the first byte).
pub const FEATURE_FLAGS: &[u8] = &[0b1_1111];
/// What `/keeper/api_version` holds (Keeper's `KeeperApiVersion::WITH_CHECK_NOT_EXISTS`,
/// the last version number ClickHouse still reads).
pub const API_VERSION: &[u8] = b"3";

/// A watch a read leaves.
pub type WatchReg = Option<(Table, String)>;

/// Who reads.
#[derive(Debug, Clone, Copy)]
pub struct ReadCtx<'a> {
    /// The session.
    pub session: SessionId,
    /// The connection's authenticated ids.
    pub auths: &'a [Id],
}

/// ClickHouse Keeper's virtual system nodes: `/keeper`, `/keeper/api_version`,
/// `/keeper/feature_flags`, served when the tree does not hold them.
fn virtual_data(tree: &DataTree, path: &str) -> Option<&'static [u8]> {
    // The name first: every other path is answered without a second tree lookup.
    let data = match path {
        "/keeper/api_version" => API_VERSION,
        "/keeper/feature_flags" => FEATURE_FLAGS,
        _ => return None,
    };
    node(tree, path).is_none().then_some(data)
}

fn virtual_stat(data: &[u8]) -> keeperkit_model::Stat {
    keeperkit_model::Stat {
        data_length: i32::try_from(data.len()).unwrap_or(i32::MAX),
        ..Default::default()
    }
}

fn get_data(
    tree: &DataTree,
    ctx: &ReadCtx<'_>,
    path: &str,
) -> Result<(Option<Vec<u8>>, keeperkit_model::Stat), ErrorCode> {
    if let Some(d) = virtual_data(tree, path) {
        return Ok((Some(d.to_vec()), virtual_stat(d)));
    }
    let n = node(tree, path).ok_or(ErrorCode::NoNode)?;
    acl::check(n.acl(), Perms::READ, ctx.auths)?;
    Ok((n.data().map(<[u8]>::to_vec), n.stat()))
}

fn children(
    tree: &DataTree,
    ctx: &ReadCtx<'_>,
    path: &str,
    list_type: u8,
) -> Result<(Vec<String>, keeperkit_model::Stat), ErrorCode> {
    let n = node(tree, path).ok_or(ErrorCode::NoNode)?;
    acl::check(n.acl(), Perms::READ, ctx.auths)?;
    let stat = n.stat();
    let mut kids = tree.children(if path.is_empty() { "/" } else { path }).unwrap_or_default();
    if list_type != 0 {
        kids.retain(|k| {
            let full = keeperkit_model::path::join(path, k);
            let eph = node(tree, &full).is_some_and(|c| c.kind() == NodeKind::Ephemeral);
            if list_type == 2 {
                eph
            } else {
                !eph
            }
        });
    }
    Ok((kids, stat))
}

/// Descendants of `path` (`DataTree.getAllChildrenNumber`).
fn all_children(tree: &DataTree, path: &str) -> i32 {
    if path == "/" {
        return i32::try_from(tree.node_count().saturating_sub(1)).unwrap_or(i32::MAX);
    }
    let mut stack = vec![path.to_string()];
    let mut n: usize = 0;
    while let Some(p) = stack.pop() {
        for k in tree.children(&p).unwrap_or_default() {
            n += 1;
            stack.push(keeperkit_model::path::join(&p, &k));
        }
    }
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Whether `req` is served by [`read`].
pub fn is_read(req: &Request) -> bool {
    matches!(
        req,
        Request::Exists { .. }
            | Request::GetData { .. }
            | Request::GetAcl { .. }
            | Request::GetChildren { .. }
            | Request::GetChildren2 { .. }
            | Request::FilteredList { .. }
            | Request::GetAllChildrenNumber { .. }
            | Request::GetEphemerals { .. }
            | Request::Sync { .. }
            | Request::WhoAmI
            | Request::MultiRead(_)
            | Request::Ping
    )
}

/// Runs a read on `tree`: the answer, and the watch it leaves.
pub fn read(
    tree: &DataTree,
    ctx: &ReadCtx<'_>,
    req: &Request,
) -> (Result<Response, ErrorCode>, WatchReg) {
    let data_watch = |p: &str, w: bool| w.then(|| (Table::Data, p.to_string()));
    let child_watch = |p: &str, w: bool| w.then(|| (Table::Child, p.to_string()));
    match req {
        Request::Ping => (Ok(Response::Empty), None),
        Request::Exists { path, watch } => {
            if path.contains('\0') {
                return (Err(ErrorCode::BadArguments), None);
            }
            // statNode leaves the watch whether or not the node exists.
            let w = data_watch(path, *watch);
            if let Some(d) = virtual_data(tree, path) {
                return (Ok(Response::Stat(virtual_stat(d))), w);
            }
            match node(tree, path) {
                Some(n) => (Ok(Response::Stat(n.stat())), w),
                None => (Err(ErrorCode::NoNode), w),
            }
        }
        Request::GetData { path, watch } => match get_data(tree, ctx, path) {
            Ok((data, stat)) => (Ok(Response::GetData { data, stat }), data_watch(path, *watch)),
            Err(e) => (Err(e), None),
        },
        Request::GetAcl { path } => {
            let Some(n) = node(tree, path) else { return (Err(ErrorCode::NoNode), None) };
            if let Err(e) = acl::check(n.acl(), Perms(Perms::READ.0 | Perms::ADMIN.0), ctx.auths) {
                return (Err(e), None);
            }
            let list = if acl::check(n.acl(), Perms::ADMIN, ctx.auths).is_ok() {
                n.acl().clone()
            } else {
                acl::redact(n.acl())
            };
            (Ok(Response::GetAcl { acl: list, stat: n.stat() }), None)
        }
        Request::GetChildren { path, watch } => match children(tree, ctx, path, 0) {
            Ok((c, _)) => (Ok(Response::Children(c)), child_watch(path, *watch)),
            Err(e) => (Err(e), None),
        },
        Request::GetChildren2 { path, watch } => match children(tree, ctx, path, 0) {
            Ok((children, stat)) => {
                (Ok(Response::Children2 { children, stat }), child_watch(path, *watch))
            }
            Err(e) => (Err(e), None),
        },
        Request::FilteredList { path, watch, list_type } => {
            match children(tree, ctx, path, *list_type) {
                Ok((children, stat)) => {
                    (Ok(Response::Children2 { children, stat }), child_watch(path, *watch))
                }
                Err(e) => (Err(e), None),
            }
        }
        Request::GetAllChildrenNumber { path } => {
            let Some(n) = node(tree, path) else { return (Err(ErrorCode::NoNode), None) };
            if let Err(e) = acl::check(n.acl(), Perms::READ, ctx.auths) {
                return (Err(e), None);
            }
            (Ok(Response::AllChildrenNumber(all_children(tree, path))), None)
        }
        Request::GetEphemerals { prefix } => {
            let all = tree.ephemerals(ctx.session);
            let p = prefix.trim();
            let list = if p.is_empty() || p == "/" {
                all
            } else {
                all.into_iter().filter(|e| e.starts_with(prefix.as_str())).collect()
            };
            (Ok(Response::Ephemerals(list)), None)
        }
        Request::Sync { path } => (Ok(Response::Sync { path: path.clone() }), None),
        Request::WhoAmI => {
            let infos = ctx
                .auths
                .iter()
                .map(|id| ClientInfo { scheme: id.scheme.clone(), user: acl::user_name(id) })
                .collect();
            (Ok(Response::WhoAmI(infos)), None)
        }
        Request::MultiRead(ops) => {
            // The ops of a multiRead never leave watches (`Op.toRequestRecord` asks for none).
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                let r = match op {
                    Request::GetData { path, .. } => get_data(tree, ctx, path)
                        .map(|(data, stat)| OpResult::GetData { data, stat }),
                    Request::GetChildren { path, .. } => {
                        children(tree, ctx, path, 0).map(|(c, _)| OpResult::GetChildren(c))
                    }
                    Request::GetChildren2 { path, .. } => children(tree, ctx, path, 0)
                        .map(|(children, stat)| OpResult::List { children, stat }),
                    Request::FilteredList { path, list_type, .. } => {
                        children(tree, ctx, path, *list_type)
                            .map(|(children, stat)| OpResult::FilteredList { children, stat })
                    }
                    Request::Exists { path, .. } => match virtual_data(tree, path) {
                        Some(d) => Ok(OpResult::Exists(virtual_stat(d))),
                        None => node(tree, path)
                            .map(|n| OpResult::Exists(n.stat()))
                            .ok_or(ErrorCode::NoNode),
                    },
                    _ => Err(ErrorCode::BadArguments),
                };
                results.push(r.unwrap_or_else(|e| OpResult::Error(e.as_i32())));
            }
            (Ok(Response::Multi(results)), None)
        }
        _ => (Err(ErrorCode::BadArguments), None),
    }
}
