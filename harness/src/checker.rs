//! A linearizability checker: Wing and Gong's search with Lowe's memoisation, as
//! Porcupine runs it, over one sequential model per key.
//!
//! A history is linearizable when every operation can be given a point between its
//! invocation and its completion such that, taken in that order, the operations are
//! a legal run of the sequential object. Keys are independent objects, so the history
//! is split per key and each part is searched alone (P-compositionality).
//!
//! The search walks the list of invocation and completion events in time order. At an
//! invocation it tries to linearize that operation next (the model must accept it
//! with the output it returned); at a completion whose operation is not linearized
//! yet it backtracks. The pairs (set of linearized operations, model state) already
//! explored are remembered, so no configuration is searched twice.
//!
//! Operations with an unknown outcome (`info`) are treated as Jepsen treats them: their
//! completion is placed at the end of time and any output is accepted, so they may
//! take effect at any point after their invocation, or (linearized after everything
//! else) in effect never. Indeterminate reads tell nothing and are dropped; operations
//! that certainly failed are dropped.
//!
//! The search is bounded by a number of explored configurations and a deadline; past
//! either it answers [`Verdict::Unknown`] instead of running on.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::history::{Input, Kind, Op, Output};

/// The state of one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum State {
    /// A register's value and version.
    Register {
        /// The value.
        value: i64,
        /// The znode's version.
        version: i32,
    },
    /// A set's elements.
    Set(BTreeSet<u64>),
    /// A counter.
    Counter(i64),
    /// The largest id handed out (`None` before the first).
    Ids(Option<u64>),
    /// A queue's values, oldest first, and the sequence number of the last enqueue
    /// whose node name is known.
    Queue(VecDeque<u64>, Option<u64>),
}

impl State {
    /// The state of a fresh object of a kind (what the harness creates before the
    /// workloads start: registers and counters hold 0 at version 0).
    pub fn initial(kind: Kind) -> State {
        match kind {
            Kind::Register => State::Register { value: 0, version: 0 },
            Kind::Set => State::Set(BTreeSet::new()),
            Kind::Counter => State::Counter(0),
            Kind::Ids => State::Ids(None),
            Kind::Queue => State::Queue(VecDeque::new(), None),
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Register { value, version } => write!(f, "value {value} at version {version}"),
            State::Set(s) => write!(f, "{} elements {:?}", s.len(), s),
            State::Counter(c) => write!(f, "count {c}"),
            State::Ids(None) => write!(f, "no id yet"),
            State::Ids(Some(i)) => write!(f, "last id {i}"),
            State::Queue(q, _) => write!(f, "{} queued {:?}", q.len(), q),
        }
    }
}

/// One step of the sequential model: the state after `input` answered `output`
/// (`None`: unknown, any answer), or `None` when the model cannot answer that.
pub fn step(state: &State, input: &Input, output: Option<&Output>) -> Option<State> {
    match (state, input, output) {
        // register
        (
            State::Register { value, version },
            Input::Read,
            Some(Output::Value { value: v, version: ver }),
        ) => (v == value && ver == version).then(|| state.clone()),
        (State::Register { .. }, Input::Read, None) => Some(state.clone()),
        (
            State::Register { version, .. },
            Input::Write { value },
            Some(Output::Written { version: nv }),
        ) => (*nv == version.wrapping_add(1))
            .then_some(State::Register { value: *value, version: *nv }),
        (State::Register { version, .. }, Input::Write { value }, None) => {
            Some(State::Register { value: *value, version: version.wrapping_add(1) })
        }
        (
            State::Register { version, .. },
            Input::Cas { expect, value },
            Some(Output::CasOk { version: nv }),
        ) => (version == expect && *nv == expect.wrapping_add(1))
            .then_some(State::Register { value: *value, version: *nv }),
        (State::Register { version, .. }, Input::Cas { expect, .. }, Some(Output::CasFailed)) => {
            (version != expect).then(|| state.clone())
        }
        (State::Register { version, .. }, Input::Cas { expect, value }, None) => {
            Some(if version == expect {
                State::Register { value: *value, version: expect.wrapping_add(1) }
            } else {
                state.clone()
            })
        }
        // set
        (State::Set(s), Input::Add { element }, Some(Output::Added) | None) => {
            let mut s = s.clone();
            s.insert(*element);
            Some(State::Set(s))
        }
        (State::Set(s), Input::ReadSet, Some(Output::Elements { elements })) => {
            (s.len() == elements.len() && s.iter().eq(elements.iter())).then(|| state.clone())
        }
        (State::Set(_), Input::ReadSet, None) => Some(state.clone()),
        // counter
        (State::Counter(c), Input::Inc, Some(Output::Incremented { value })) => {
            (*value == c.wrapping_add(1)).then_some(State::Counter(*value))
        }
        (State::Counter(c), Input::Inc, None) => Some(State::Counter(c.wrapping_add(1))),
        (State::Counter(c), Input::ReadCounter, Some(Output::Count { value })) => {
            (value == c).then(|| state.clone())
        }
        (State::Counter(_), Input::ReadCounter, None) => Some(state.clone()),
        // unique ids: each new id is above every id handed out before it. An
        // indeterminate create may have used a number; that only makes later ids larger,
        // so leaving it out is a weaker, still sound, check.
        (State::Ids(last), Input::NextId, Some(Output::Id { id })) => {
            last.is_none_or(|l| *id > l).then_some(State::Ids(Some(*id)))
        }
        (State::Ids(_), Input::NextId, None) => Some(state.clone()),
        // queue
        // An enqueue whose node name is known takes effect after every enqueue with a
        // smaller sequence number: the server numbers the creations in the order it
        // applies them, so a correct server's own order is one of the orders this
        // allows, and concurrent acknowledged enqueues need no search over their
        // orders. An enqueue whose name is unknown may go anywhere.
        (State::Queue(q, last), Input::Enqueue { value }, Some(Output::Enqueued { seq })) => {
            if let (Some(s), Some(l)) = (seq, last) {
                if s <= l {
                    return None;
                }
            }
            let mut q = q.clone();
            q.push_back(*value);
            Some(State::Queue(q, seq.or(*last)))
        }
        (State::Queue(q, last), Input::Enqueue { value }, None) => {
            let mut q = q.clone();
            q.push_back(*value);
            Some(State::Queue(q, *last))
        }
        (State::Queue(q, last), Input::Dequeue, Some(Output::Dequeued { value: Some(v) })) => {
            (q.front() == Some(v)).then(|| {
                let mut q = q.clone();
                q.pop_front();
                State::Queue(q, *last)
            })
        }
        (State::Queue(q, _), Input::Dequeue, Some(Output::Dequeued { value: None })) => {
            q.is_empty().then(|| state.clone())
        }
        (State::Queue(q, last), Input::Dequeue, None) => {
            // It took effect: it deleted what was then the smallest.
            let mut q = q.clone();
            q.pop_front();
            Some(State::Queue(q, *last))
        }
        _ => None,
    }
}

/// Bounds of one key's search.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Explored configurations kept in memory at most.
    pub max_configs: usize,
    /// Wall time of one key's search at most.
    pub max_time: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_configs: 2_000_000, max_time: Duration::from_secs(20) }
    }
}

/// Why a key's history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The kind of object.
    pub kind: Kind,
    /// The key.
    pub key: u32,
    /// The operation whose completion no linearization could reach (in the deepest
    /// attempt), with the state the model was in then.
    pub blocked: u64,
    /// Operations linearized in the deepest attempt.
    pub depth: usize,
    /// A description for people.
    pub message: String,
}

/// The answer for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A linearization exists.
    Linearizable,
    /// None exists.
    Violation(Violation),
    /// The search hit a bound.
    Unknown(String),
}

const NIL: usize = usize::MAX;

fn describe(op: &Op) -> String {
    let out = match &op.outcome {
        crate::history::Outcome::Ok { output } => format!("{output:?}"),
        crate::history::Outcome::Info { reason } => format!("unknown ({reason})"),
        crate::history::Outcome::Fail { reason } => format!("failed ({reason})"),
    };
    format!(
        "op {} of client {} on node {}: {:?} -> {} [{:.3} s .. {:.3} s]",
        op.id,
        op.client,
        op.node.map_or("?".to_string(), |n| n.to_string()),
        op.input,
        out,
        op.invoke_ns as f64 / 1e9,
        op.complete_ns as f64 / 1e9
    )
}

/// A value no operation writes: what an indeterminate write's value becomes when no
/// read ever returned it.
const UNSEEN: i64 = i64::MIN;

/// The inputs the search uses: an indeterminate write whose value no read returned
/// writes [`UNSEEN`] instead (no read can tell the two apart), so such writes become
/// interchangeable.
fn canonical_inputs(ops: &[&Op]) -> Vec<Input> {
    let mut seen: HashSet<u64> = HashSet::new();
    let mut seen_reg: HashSet<i64> = HashSet::new();
    for o in ops {
        match o.output() {
            Some(Output::Value { value, .. }) => {
                seen_reg.insert(*value);
            }
            Some(Output::Elements { elements }) => seen.extend(elements.iter().copied()),
            Some(Output::Dequeued { value: Some(v) }) => {
                seen.insert(*v);
            }
            _ => {}
        }
    }
    let unseen = UNSEEN.unsigned_abs();
    ops.iter()
        .map(|o| match &o.input {
            Input::Write { value } if o.is_info() && !seen_reg.contains(value) => {
                Input::Write { value: UNSEEN }
            }
            Input::Cas { expect, value } if o.is_info() && !seen_reg.contains(value) => {
                Input::Cas { expect: *expect, value: UNSEEN }
            }
            Input::Add { element } if o.is_info() && !seen.contains(element) => {
                Input::Add { element: unseen }
            }
            Input::Enqueue { value } if o.is_info() && !seen.contains(value) => {
                Input::Enqueue { value: unseen }
            }
            i => i.clone(),
        })
        .collect()
}

/// Checks one key's operations (all of the same kind and key).
pub fn check_key(kind: Kind, key: u32, ops: &[&Op], limits: Limits) -> Verdict {
    let ops: Vec<&Op> =
        ops.iter().copied().filter(|o| !(o.is_fail() || o.is_info() && o.is_read())).collect();
    let n = ops.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    let inputs = canonical_inputs(&ops);
    // Indeterminate operations with the same (canonical) input are interchangeable: of
    // those not linearized yet, only the earliest invoked is tried. Any order using a
    // later one could use the earliest instead (it was invoked before, and neither has
    // a completion or an output to honour), so the search stays complete, and k such
    // operations cost k + 1 configurations instead of 2^k.
    let mut before_in_class = vec![NIL; n];
    {
        let mut by_invoke: Vec<usize> = (0..n).filter(|&i| ops[i].is_info()).collect();
        by_invoke.sort_by_key(|&i| (ops[i].invoke_ns, i));
        let mut last: std::collections::HashMap<&Input, usize> = Default::default();
        for i in by_invoke {
            if let Some(p) = last.insert(&inputs[i], i) {
                before_in_class[i] = p;
            }
        }
    }
    // Events: (time, is_return, op). Calls sort before returns at the same time: two
    // operations touching in time are taken as concurrent (the more permissive order).
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        events.push((o.invoke_ns, false, i));
        let ret = if o.is_info() { u64::MAX } else { o.complete_ns.max(o.invoke_ns) };
        events.push((ret, true, i));
    }
    events.sort_by_key(|&(t, r, i)| (t, r, i));
    // A doubly linked list over the events; node 0 is the head sentinel.
    let len = events.len() + 1;
    let mut next = vec![NIL; len];
    let mut prev = vec![NIL; len];
    let mut is_ret = vec![false; len];
    let mut op_of = vec![0usize; len];
    let mut ret_node = vec![0usize; n];
    for (k, &(_, r, i)) in events.iter().enumerate() {
        let node = k + 1;
        is_ret[node] = r;
        op_of[node] = i;
        if r {
            ret_node[i] = node;
        }
        prev[node] = k;
        next[k] = node;
    }
    let lift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, call: usize, ret: usize| {
        for x in [call, ret] {
            let (p, nx) = (prev[x], next[x]);
            next[p] = nx;
            if nx != NIL {
                prev[nx] = p;
            }
        }
    };
    let unlift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, call: usize, ret: usize| {
        for x in [ret, call] {
            let (p, nx) = (prev[x], next[x]);
            next[p] = x;
            if nx != NIL {
                prev[nx] = x;
            }
        }
    };

    let words = n.div_ceil(64);
    let mut bits = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack: Vec<(usize, State, bool)> = Vec::new();
    let mut state = State::initial(kind);
    let mut cur = next[0];
    // Two passes over the operations that may go next: those with a known outcome
    // first, the indeterminate ones only when none of those fits. Both passes together
    // try every candidate, so the search stays complete; a valid history is found
    // without dragging every indeterminate operation through every position.
    let mut late = false;
    let started = Instant::now();
    let mut steps = 0u64;
    let mut deepest: (usize, usize, State) = (0, NIL, state.clone());
    loop {
        if next[0] == NIL {
            return Verdict::Linearizable;
        }
        steps += 1;
        if steps.is_multiple_of(4096) && started.elapsed() > limits.max_time {
            return Verdict::Unknown(format!(
                "{} key {key}: no answer within {:?} ({} ops, {} configurations explored)",
                kind.name(),
                limits.max_time,
                n,
                seen.len()
            ));
        }
        if cur == NIL {
            // Unreachable for a well-formed list (every call has a later return); treat
            // it as a dead end.
            let Some((call, s, pass)) = stack.pop() else {
                return Verdict::Unknown(format!(
                    "{} key {key}: malformed event list",
                    kind.name()
                ));
            };
            let i = op_of[call];
            bits[i / 64] &= !(1 << (i % 64));
            unlift(&mut next, &mut prev, call, ret_node[i]);
            state = s;
            late = pass;
            cur = next[call];
            continue;
        }
        let i = op_of[cur];
        if !is_ret[cur] {
            let o = ops[i];
            let p = before_in_class[i];
            let eligible = o.is_info() == late && (p == NIL || bits[p / 64] & (1 << (p % 64)) != 0);
            let fits = if eligible { step(&state, &inputs[i], o.output()) } else { None };
            if let Some(ns) = fits {
                bits[i / 64] |= 1 << (i % 64);
                if seen.len() >= limits.max_configs {
                    return Verdict::Unknown(format!(
                        "{} key {key}: more than {} configurations ({} ops)",
                        kind.name(),
                        limits.max_configs,
                        n
                    ));
                }
                if seen.insert((bits.clone(), ns.clone())) {
                    stack.push((cur, std::mem::replace(&mut state, ns), late));
                    lift(&mut next, &mut prev, cur, ret_node[i]);
                    cur = next[0];
                    late = false;
                    continue;
                }
                bits[i / 64] &= !(1 << (i % 64));
            }
            cur = next[cur];
        } else if !late {
            // The known operations that may go next are tried: now the indeterminate ones.
            late = true;
            cur = next[0];
        } else {
            // The operation completing here is not linearized yet: backtrack.
            if deepest.1 == NIL || stack.len() > deepest.0 {
                deepest = (stack.len(), i, state.clone());
            }
            let Some((call, s, pass)) = stack.pop() else {
                let (depth, blocked, st) = deepest;
                let b = ops[blocked];
                return Verdict::Violation(Violation {
                    kind,
                    key,
                    blocked: b.id,
                    depth,
                    message: format!(
                        "{} key {key} is not linearizable: at best {depth} of {n} operations can be ordered, \
                         then {} cannot take effect before it completed (the object then holds {st})",
                        kind.name(),
                        describe(b)
                    ),
                });
            };
            let j = op_of[call];
            bits[j / 64] &= !(1 << (j % 64));
            unlift(&mut next, &mut prev, call, ret_node[j]);
            state = s;
            late = pass;
            cur = next[call];
        }
    }
}

/// The checker's answer for a whole history.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Keys checked, per kind.
    pub keys: BTreeMap<Kind, usize>,
    /// Operations considered (not failed), per kind.
    pub ops: BTreeMap<Kind, usize>,
    /// Indeterminate operations, per kind.
    pub info: BTreeMap<Kind, usize>,
    /// Non-linearizable keys.
    pub violations: Vec<Violation>,
    /// Other anomalies found without a search (duplicate ids, dequeued twice).
    pub anomalies: Vec<String>,
    /// Keys whose search hit a bound.
    pub unknown: Vec<String>,
}

impl Report {
    /// Whether nothing wrong was found (unknown keys are not failures by themselves).
    pub fn valid(&self) -> bool {
        self.violations.is_empty() && self.anomalies.is_empty()
    }
}

/// Direct checks that need no search: an id handed out twice, a value dequeued twice
/// or one never enqueued.
fn anomalies(ops: &[Op]) -> Vec<String> {
    let mut out = Vec::new();
    let mut ids: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    let mut dequeued: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    let mut enqueued: HashSet<(u32, u64)> = HashSet::new();
    for o in ops {
        if let Input::Enqueue { value } = o.input {
            if !o.is_fail() {
                enqueued.insert((o.key, value));
            }
        }
    }
    for o in ops {
        match (o.kind, o.output()) {
            (Kind::Ids, Some(Output::Id { id })) => {
                if let Some(first) = ids.insert((o.key, *id), o.id) {
                    out.push(format!(
                        "ids key {}: id {id} handed out twice (ops {first} and {})",
                        o.key, o.id
                    ));
                }
            }
            (Kind::Queue, Some(Output::Dequeued { value: Some(v) })) => {
                if let Some(first) = dequeued.insert((o.key, *v), o.id) {
                    out.push(format!(
                        "queue key {}: value {v} dequeued twice (ops {first} and {})",
                        o.key, o.id
                    ));
                }
                if !enqueued.contains(&(o.key, *v)) {
                    out.push(format!(
                        "queue key {}: value {v} dequeued by op {} was never enqueued",
                        o.key, o.id
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

/// Checks a whole history, key by key.
pub fn check(ops: &[Op], limits: Limits) -> Report {
    let mut by_key: BTreeMap<(Kind, u32), Vec<&Op>> = BTreeMap::new();
    let mut r = Report { anomalies: anomalies(ops), ..Report::default() };
    for o in ops {
        if o.is_fail() {
            continue;
        }
        by_key.entry((o.kind, o.key)).or_default().push(o);
        *r.ops.entry(o.kind).or_default() += 1;
        if o.is_info() {
            *r.info.entry(o.kind).or_default() += 1;
        }
    }
    // The whole check is bounded too: keys left when ten keys' worth of time is spent
    // are reported unknown.
    let started = Instant::now();
    for ((kind, key), list) in &by_key {
        *r.keys.entry(*kind).or_default() += 1;
        if started.elapsed() > limits.max_time * 10 {
            r.unknown.push(format!(
                "{} key {key}: not searched (the check's time is spent)",
                kind.name()
            ));
            continue;
        }
        match check_key(*kind, *key, list, limits) {
            Verdict::Linearizable => {}
            Verdict::Violation(v) => r.violations.push(v),
            Verdict::Unknown(why) => r.unknown.push(why),
        }
    }
    r
}

#[cfg(test)]
mod tests;
