//! Requests into txns: ZooKeeper 3.8's `PrepRequestProcessor`, checked against the
//! tree every earlier txn was applied to, with its error codes in its order.
//!
//! Precedence, per request (the first failing check is the answer):
//!
//! - create: flags (BadArguments), TTL disabled (Unimplemented) or out of range
//!   (BadArguments), path shape (BadArguments), ACL (InvalidACL), parent (NoNode),
//!   CREATE on the parent (NoAuth), the path with its sequence suffix (BadArguments),
//!   the node (NodeExists), an ephemeral parent (NoChildrenForEphemerals);
//! - delete: path shape or a system path (BadArguments), parent (NoNode), DELETE on
//!   the parent (NoAuth), node (NoNode), version (BadVersion), children (NotEmpty);
//! - setData: path (BadArguments), node (NoNode), WRITE (NoAuth), version (BadVersion);
//! - setACL: path (BadArguments), ACL (InvalidACL), node (NoNode), ADMIN (NoAuth),
//!   ACL version (BadVersion);
//! - check: path (BadArguments), node (NoNode), READ (NoAuth), version (BadVersion).
//!
//! A multi preps its ops in order against a scratch copy of the tree (O(1) to make)
//! to which each op's txn is applied, so that later ops see earlier ones; the first
//! failure makes that op an error txn and every later one `RuntimeInconsistency`,
//! exactly what ZooKeeper logs.

use keeperkit_model::acl::Perms;
use keeperkit_model::node::{EphemeralOwner, TTL_MAX};
use keeperkit_model::txn::{CreateTxn, SetDataTxn};
use keeperkit_model::{path as zkpath, ErrorCode, Id, SessionId, Stat, Txn, TxnBody, TxnHeader};
use keeperkit_tree::{DataTree, NodeRef};

use crate::acl;
use crate::proto::{create_mode, CreateRequest, OpResult, Request, Response};

/// Who asks, and how the server is configured.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The session.
    pub session: SessionId,
    /// The connection's authenticated ids (its `ip` id first).
    pub auths: &'a [Id],
    /// TTL nodes enabled (`zookeeper.extendedTypesEnabled`).
    pub extended_types: bool,
}

/// The node at `p` as ZooKeeper's node map finds it: exact paths only (`""` and `/`
/// are the root).
pub fn node<'t>(tree: &'t DataTree, p: &str) -> Option<NodeRef<'t>> {
    if p.is_empty() || p == "/" {
        return tree.get("/");
    }
    if !p.starts_with('/') || p.ends_with('/') || p.contains("//") {
        return None;
    }
    tree.get(p)
}

fn validate(p: &str) -> Result<(), ErrorCode> {
    zkpath::validate(p).map_err(|_| ErrorCode::BadArguments)
}

/// `getParentPathAndValidate`.
fn parent_for_delete(p: &str) -> Result<&str, ErrorCode> {
    let i = p.rfind('/').ok_or(ErrorCode::BadArguments)?;
    if p.contains('\0')
        || matches!(p, "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config")
    {
        return Err(ErrorCode::BadArguments);
    }
    Ok(&p[..i])
}

fn check_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// What a prepared op will answer once applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// create (1): the path.
    Create,
    /// create2 / createTTL / createContainer: path and stat.
    Create2,
    /// ClickHouse createIfNotExists: the path.
    CreateIfNotExists,
    /// delete.
    Delete,
    /// setData: the stat.
    SetData,
    /// setACL: the stat.
    SetAcl,
    /// check.
    Check,
    /// ClickHouse checkNotExists.
    CheckNotExists,
    /// ClickHouse removeRecursive (its deletes).
    RemoveRecursive,
}

/// One prepared op: its txns (removeRecursive has several, createIfNotExists on an
/// existing node none) and what it answers.
#[derive(Debug, Clone)]
pub struct Op {
    /// Txns to log.
    pub txns: Vec<TxnBody>,
    /// The answer's shape.
    pub kind: Kind,
    /// The path answered (with its sequence suffix).
    pub path: String,
}

/// A prepared request.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// A single op.
    Single(Op),
    /// A multi: the txn to log and one result per op, already known (stats taken
    /// when each op was applied to the scratch tree).
    Multi {
        /// The multi txn (with error sub-txns when it failed).
        body: TxnBody,
        /// Results per op.
        results: Vec<OpResult>,
        /// Whether every op succeeded.
        ok: bool,
    },
}

fn create_parts(
    tree: &DataTree,
    ctx: &Ctx<'_>,
    c: &CreateRequest,
    opcode_ttl: bool,
    opcode_container: bool,
) -> Result<(CreateTxn, String, bool, bool), ErrorCode> {
    let (ephemeral, sequential, container, ttl_mode) = match c.flags {
        create_mode::PERSISTENT => (false, false, false, false),
        create_mode::EPHEMERAL => (true, false, false, false),
        create_mode::PERSISTENT_SEQUENTIAL => (false, true, false, false),
        create_mode::EPHEMERAL_SEQUENTIAL => (true, true, false, false),
        create_mode::CONTAINER => (false, false, true, false),
        create_mode::PERSISTENT_WITH_TTL => (false, false, false, true),
        create_mode::PERSISTENT_SEQUENTIAL_WITH_TTL => (false, true, false, true),
        _ => return Err(ErrorCode::BadArguments),
    };
    if ttl_mode && !ctx.extended_types {
        return Err(ErrorCode::Unimplemented);
    }
    let ttl = if opcode_ttl { c.ttl.unwrap_or(-1) } else { -1 };
    // EphemeralType.validateTTL.
    if ttl_mode {
        if ttl <= 0 || ttl > TTL_MAX {
            return Err(ErrorCode::BadArguments);
        }
    } else if ttl >= 0 {
        return Err(ErrorCode::BadArguments);
    }
    let p = c.path.as_str();
    let slash = p.rfind('/').ok_or(ErrorCode::BadArguments)?;
    if p.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    let parent_path = &p[..slash];
    let acl_list = acl::fixup(&c.acl, ctx.auths)?;
    let parent = node(tree, parent_path).ok_or(ErrorCode::NoNode)?;
    acl::check(parent.acl(), Perms::CREATE, ctx.auths)?;
    let seq = parent.seq();
    let full = if sequential { format!("{p}{seq:010}") } else { p.to_string() };
    validate(&full)?;
    if node(tree, &full).is_some() {
        return Err(ErrorCode::NodeExists);
    }
    if matches!(parent.owner(), EphemeralOwner::Session(_)) {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    let txn = CreateTxn {
        path: full.clone(),
        data: c.data.clone(),
        acl: acl_list,
        ephemeral: ephemeral && !opcode_container,
        parent_cversion: seq.wrapping_add(1),
        ttl: opcode_ttl.then_some(ttl),
        v0: false,
    };
    Ok((txn, full, container, ttl_mode))
}

/// Preps one op (top level or inside a multi).
pub fn prep_op(tree: &DataTree, ctx: &Ctx<'_>, req: &Request) -> Result<Op, ErrorCode> {
    let single = |txn: TxnBody, kind: Kind, path: String| Ok(Op { txns: vec![txn], kind, path });
    match req {
        Request::Create(c) | Request::Create2(c) | Request::CreateIfNotExists(c) => {
            if let Request::CreateIfNotExists(_) = req {
                if node(tree, &c.path).is_some() && c.flags & 2 == 0 {
                    return Ok(Op {
                        txns: vec![],
                        kind: Kind::CreateIfNotExists,
                        path: c.path.clone(),
                    });
                }
            }
            let (t, path, _, _) = create_parts(tree, ctx, c, false, false)?;
            let kind = match req {
                Request::Create(_) => Kind::Create,
                Request::Create2(_) => Kind::Create2,
                _ => Kind::CreateIfNotExists,
            };
            let body = if kind == Kind::Create2 { TxnBody::Create2(t) } else { TxnBody::Create(t) };
            single(body, kind, path)
        }
        Request::CreateContainer(c) => {
            let (t, path, _, _) = create_parts(tree, ctx, c, false, true)?;
            single(TxnBody::CreateContainer(t), Kind::Create2, path)
        }
        Request::CreateTtl(c) => {
            let (t, path, _, _) = create_parts(tree, ctx, c, true, false)?;
            single(TxnBody::CreateTtl(t), Kind::Create2, path)
        }
        Request::Delete { path, version } => {
            let parent_path = parent_for_delete(path)?;
            let parent = node(tree, parent_path).ok_or(ErrorCode::NoNode)?;
            acl::check(parent.acl(), Perms::DELETE, ctx.auths)?;
            let n = node(tree, path).ok_or(ErrorCode::NoNode)?;
            check_version(n.stat().version, *version)?;
            if n.num_children() > 0 {
                return Err(ErrorCode::NotEmpty);
            }
            single(TxnBody::Delete { path: path.clone() }, Kind::Delete, path.clone())
        }
        Request::DeleteContainer { path } => {
            let parent_path = parent_for_delete(path)?;
            let n = node(tree, path).ok_or(ErrorCode::NoNode)?;
            if n.num_children() > 0 {
                return Err(ErrorCode::NotEmpty);
            }
            if matches!(n.owner(), EphemeralOwner::Session(_)) {
                return Err(ErrorCode::BadVersion);
            }
            node(tree, parent_path).ok_or(ErrorCode::NoNode)?;
            single(TxnBody::DeleteContainer { path: path.clone() }, Kind::Delete, path.clone())
        }
        Request::SetData { path, data, version } => {
            validate(path)?;
            let n = node(tree, path).ok_or(ErrorCode::NoNode)?;
            acl::check(n.acl(), Perms::WRITE, ctx.auths)?;
            let v = check_version(n.stat().version, *version)?;
            let t = SetDataTxn { path: path.clone(), data: data.clone(), version: v };
            single(TxnBody::SetData(t), Kind::SetData, path.clone())
        }
        Request::SetAcl { path, acl: list, version } => {
            validate(path)?;
            let fixed = acl::fixup(list, ctx.auths)?;
            let n = node(tree, path).ok_or(ErrorCode::NoNode)?;
            acl::check(n.acl(), Perms::ADMIN, ctx.auths)?;
            let v = check_version(n.stat().aversion, *version)?;
            single(
                TxnBody::SetAcl { path: path.clone(), acl: fixed, version: v },
                Kind::SetAcl,
                path.clone(),
            )
        }
        Request::Check { path, version } => {
            validate(path)?;
            let n = node(tree, path).ok_or(ErrorCode::NoNode)?;
            acl::check(n.acl(), Perms::READ, ctx.auths)?;
            let v = check_version(n.stat().version, *version)?;
            single(TxnBody::Check { path: path.clone(), version: v }, Kind::Check, path.clone())
        }
        Request::CheckNotExists { path, version } => {
            validate(path)?;
            match node(tree, path) {
                Some(n) if *version == -1 || n.stat().version == *version => {
                    Err(if *version == -1 { ErrorCode::NodeExists } else { ErrorCode::BadVersion })
                }
                _ => Ok(Op { txns: vec![], kind: Kind::CheckNotExists, path: path.clone() }),
            }
        }
        Request::RemoveRecursive { path, limit } => {
            let parent_path = parent_for_delete(path)?;
            let parent = node(tree, parent_path).ok_or(ErrorCode::NoNode)?;
            acl::check(parent.acl(), Perms::DELETE, ctx.auths)?;
            node(tree, path).ok_or(ErrorCode::NoNode)?;
            // Pre-order walk; deletes go children first (reverse pre-order).
            let mut order = vec![path.clone()];
            let mut i = 0;
            while i < order.len() {
                let p = order[i].clone();
                i += 1;
                if *limit != 0 && order.len() > *limit as usize {
                    return Err(ErrorCode::NotEmpty);
                }
                let n = node(tree, &p).ok_or(ErrorCode::NoNode)?;
                let kids = tree.children(&p).unwrap_or_default();
                if !kids.is_empty() {
                    acl::check(n.acl(), Perms::DELETE, ctx.auths)?;
                }
                order.extend(kids.into_iter().map(|k| zkpath::join(&p, &k)));
            }
            if *limit != 0 && order.len() > *limit as usize {
                return Err(ErrorCode::NotEmpty);
            }
            let txns = order.into_iter().rev().map(|path| TxnBody::Delete { path }).collect();
            Ok(Op { txns, kind: Kind::RemoveRecursive, path: path.clone() })
        }
        _ => Err(ErrorCode::BadArguments),
    }
}

/// The answer of an op applied to `tree` (stats read after the apply).
pub fn answer(tree: &DataTree, op: &Op) -> Response {
    let stat = || node(tree, &op.path).map(|n| n.stat()).unwrap_or_default();
    match op.kind {
        Kind::Create | Kind::CreateIfNotExists => Response::Create { path: op.path.clone() },
        Kind::Create2 => Response::Create2 { path: op.path.clone(), stat: stat() },
        Kind::SetData | Kind::SetAcl | Kind::Check => Response::Stat(stat()),
        Kind::Delete | Kind::CheckNotExists | Kind::RemoveRecursive => Response::Empty,
    }
}

fn op_result(tree: &DataTree, op: &Op) -> OpResult {
    let stat = || -> Stat { node(tree, &op.path).map(|n| n.stat()).unwrap_or_default() };
    match op.kind {
        Kind::Create => OpResult::Create { path: op.path.clone() },
        Kind::CreateIfNotExists => OpResult::CreateIfNotExists { path: op.path.clone() },
        Kind::Create2 => OpResult::Create2 { path: op.path.clone(), stat: stat() },
        Kind::Delete => OpResult::Delete,
        Kind::SetData | Kind::SetAcl => OpResult::SetData(stat()),
        Kind::Check => OpResult::Check,
        Kind::CheckNotExists => OpResult::CheckNotExists,
        Kind::RemoveRecursive => OpResult::RemoveRecursive,
    }
}

/// A create inside a multi, as ZooKeeper's `MultiOperationRecord` rebuilds it
/// (`Op.create`): the op's type comes from its flags (invalid flags count as
/// persistent here, and fail later), so a create2 becomes a create, a container flag a
/// createContainer; a createTTL without a TTL mode becomes a create; TTL flags on a
/// non-TTL op make the whole multi fail (MarshallingError, a ClassCastException in
/// ZooKeeper).
fn normalize(req: &Request) -> Result<Request, ErrorCode> {
    let (c, from_ttl) = match req {
        Request::Create(c) | Request::Create2(c) | Request::CreateContainer(c) => (c, false),
        Request::CreateTtl(c) => (c, true),
        other => return Ok(other.clone()),
    };
    let mode = if (0..=6).contains(&c.flags) { c.flags } else { create_mode::PERSISTENT };
    match mode {
        create_mode::PERSISTENT_WITH_TTL | create_mode::PERSISTENT_SEQUENTIAL_WITH_TTL => {
            if from_ttl {
                Ok(Request::CreateTtl(c.clone()))
            } else {
                Err(ErrorCode::MarshallingError)
            }
        }
        create_mode::CONTAINER => {
            Ok(Request::CreateContainer(CreateRequest { ttl: None, ..c.clone() }))
        }
        _ => Ok(Request::Create(CreateRequest { ttl: None, ..c.clone() })),
    }
}

/// Preps a multi under `header` (its zxid and time are every op's). An error is a
/// failure of the whole request (logged as an error txn).
pub fn prep_multi(
    tree: &DataTree,
    ctx: &Ctx<'_>,
    header: &TxnHeader,
    ops: &[Request],
) -> Result<Prepared, ErrorCode> {
    let mut scratch = tree.clone();
    let mut subs: Vec<TxnBody> = Vec::with_capacity(ops.len());
    let mut results: Vec<OpResult> = Vec::with_capacity(ops.len());
    let mut failed: Option<usize> = None;
    for (i, req) in ops.iter().enumerate() {
        if failed.is_some() {
            subs.push(TxnBody::Error { err: ErrorCode::RuntimeInconsistency });
            continue;
        }
        // Rebuilt only when reached: ZooKeeper stops prepping at the first failure.
        let req = &normalize(req)?;
        match prep_op(&scratch, ctx, req) {
            Ok(op) => {
                for t in &op.txns {
                    let txn = Txn { header: *header, body: t.clone(), digest: None };
                    let r = scratch.apply(&txn);
                    debug_assert!(r.is_ok(), "a prepared txn applies: {r:?}");
                }
                results.push(op_result(&scratch, &op));
                subs.extend(op.txns);
            }
            Err(e) => {
                subs.push(TxnBody::Error { err: e });
                failed = Some(i);
            }
        }
    }
    if let Some(f) = failed {
        let code = subs
            .iter()
            .find_map(|s| match s {
                TxnBody::Error { err } => Some(err.as_i32()),
                _ => None,
            })
            .unwrap_or(0);
        let rs = (0..ops.len())
            .map(|i| {
                OpResult::Error(match i.cmp(&f) {
                    std::cmp::Ordering::Less => 0,
                    std::cmp::Ordering::Equal => code,
                    std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency.as_i32(),
                })
            })
            .collect();
        return Ok(Prepared::Multi { body: TxnBody::Multi(subs), results: rs, ok: false });
    }
    Ok(Prepared::Multi { body: TxnBody::Multi(subs), results, ok: true })
}
