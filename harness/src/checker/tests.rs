use super::*;
use crate::history::{Input, Kind, Op, Outcome, Output};

/// Builds histories: times in ms.
struct H {
    ops: Vec<Op>,
}

impl H {
    fn new() -> H {
        H { ops: Vec::new() }
    }

    fn op(
        &mut self,
        kind: Kind,
        client: u32,
        input: Input,
        t: (u64, u64),
        outcome: Outcome,
    ) -> &mut H {
        let id = self.ops.len() as u64;
        self.ops.push(Op {
            id,
            client,
            node: Some(1),
            kind,
            key: 0,
            input,
            invoke_ns: t.0 * 1_000_000,
            complete_ns: t.1 * 1_000_000,
            outcome,
        });
        self
    }

    fn ok(
        &mut self,
        kind: Kind,
        client: u32,
        input: Input,
        t: (u64, u64),
        output: Output,
    ) -> &mut H {
        self.op(kind, client, input, t, Outcome::Ok { output })
    }

    fn info(&mut self, kind: Kind, client: u32, input: Input, t: (u64, u64)) -> &mut H {
        self.op(kind, client, input, t, Outcome::Info { reason: "timeout".into() })
    }

    fn check(&self) -> Report {
        check(&self.ops, Limits::default())
    }
}

fn read(value: i64, version: i32) -> Output {
    Output::Value { value, version }
}

fn enq(seq: u64) -> Output {
    Output::Enqueued { seq: Some(seq) }
}

#[test]
fn a_sequential_register_history_is_linearizable() {
    let mut h = H::new();
    h.ok(Kind::Register, 1, Input::Write { value: 5 }, (0, 1), Output::Written { version: 1 })
        .ok(Kind::Register, 2, Input::Read, (2, 3), read(5, 1))
        .ok(
            Kind::Register,
            1,
            Input::Cas { expect: 1, value: 7 },
            (4, 5),
            Output::CasOk { version: 2 },
        )
        .ok(Kind::Register, 2, Input::Cas { expect: 1, value: 9 }, (6, 7), Output::CasFailed)
        .ok(Kind::Register, 2, Input::Read, (8, 9), read(7, 2));
    let r = h.check();
    assert!(r.valid(), "{r:?}");
    assert!(r.unknown.is_empty());
    assert_eq!(r.ops[&Kind::Register], 5);
}

#[test]
fn concurrent_reads_may_see_either_side_of_a_concurrent_write() {
    let mut h = H::new();
    h.ok(Kind::Register, 1, Input::Write { value: 5 }, (0, 10), Output::Written { version: 1 })
        .ok(Kind::Register, 2, Input::Read, (1, 2), read(5, 1))
        .ok(Kind::Register, 3, Input::Read, (1, 9), read(5, 1))
        .ok(Kind::Register, 4, Input::Read, (3, 4), read(5, 1))
        .ok(Kind::Register, 5, Input::Read, (0, 1), read(0, 0));
    assert!(h.check().valid());
}

#[test]
fn a_stale_read_is_caught() {
    let mut h = H::new();
    h.ok(Kind::Register, 1, Input::Write { value: 5 }, (0, 1), Output::Written { version: 1 })
        // invoked after the write completed, yet sees the value before it
        .ok(Kind::Register, 2, Input::Read, (2, 3), read(0, 0));
    let r = h.check();
    assert_eq!(r.violations.len(), 1, "{r:?}");
    let v = &r.violations[0];
    assert_eq!((v.kind, v.key), (Kind::Register, 0));
    assert!(v.message.contains("not linearizable"), "{}", v.message);
}

#[test]
fn a_read_going_back_in_time_is_caught() {
    // Each read alone is fine, together they are not: the second sees the value the
    // first read had already seen overwritten.
    let mut h = H::new();
    h.ok(Kind::Register, 1, Input::Write { value: 5 }, (0, 100), Output::Written { version: 1 })
        .ok(Kind::Register, 2, Input::Read, (10, 20), read(5, 1))
        .ok(Kind::Register, 3, Input::Read, (30, 40), read(0, 0));
    assert_eq!(h.check().violations.len(), 1);
}

#[test]
fn a_lost_acknowledged_write_is_caught() {
    let mut h = H::new();
    h.ok(Kind::Set, 1, Input::Add { element: 1 }, (0, 1), Output::Added)
        .ok(Kind::Set, 2, Input::Add { element: 2 }, (0, 2), Output::Added)
        .ok(Kind::Set, 3, Input::ReadSet, (3, 4), Output::Elements { elements: vec![1, 2] })
        // the final read lost element 2
        .ok(Kind::Set, 3, Input::ReadSet, (10, 11), Output::Elements { elements: vec![1] });
    assert_eq!(h.check().violations.len(), 1);

    let mut h = H::new();
    h.ok(Kind::Counter, 1, Input::Inc, (0, 1), Output::Incremented { value: 1 })
        .ok(Kind::Counter, 2, Input::Inc, (2, 3), Output::Incremented { value: 2 })
        .ok(Kind::Counter, 1, Input::ReadCounter, (4, 5), Output::Count { value: 1 });
    assert_eq!(h.check().violations.len(), 1);
}

#[test]
fn a_duplicate_unique_id_is_caught() {
    let mut h = H::new();
    h.ok(Kind::Ids, 1, Input::NextId, (0, 5), Output::Id { id: 3 }).ok(
        Kind::Ids,
        2,
        Input::NextId,
        (1, 6),
        Output::Id { id: 3 },
    );
    let r = h.check();
    assert_eq!(r.violations.len(), 1, "{r:?}");
    assert_eq!(r.anomalies.len(), 1);
    assert!(r.anomalies[0].contains("twice"));
    // and ids that go back in real time
    let mut h = H::new();
    h.ok(Kind::Ids, 1, Input::NextId, (0, 1), Output::Id { id: 4 }).ok(
        Kind::Ids,
        2,
        Input::NextId,
        (2, 3),
        Output::Id { id: 2 },
    );
    assert_eq!(h.check().violations.len(), 1);
    // concurrent ids in either order are fine
    let mut h = H::new();
    h.ok(Kind::Ids, 1, Input::NextId, (0, 5), Output::Id { id: 4 })
        .ok(Kind::Ids, 2, Input::NextId, (1, 6), Output::Id { id: 2 })
        .ok(Kind::Ids, 2, Input::NextId, (7, 8), Output::Id { id: 9 });
    assert!(h.check().valid());
}

#[test]
fn a_double_dequeue_is_caught() {
    let mut h = H::new();
    h.ok(Kind::Queue, 1, Input::Enqueue { value: 10 }, (0, 1), enq(1))
        .ok(Kind::Queue, 1, Input::Enqueue { value: 11 }, (2, 3), enq(2))
        .ok(Kind::Queue, 2, Input::Dequeue, (4, 6), Output::Dequeued { value: Some(10) })
        .ok(Kind::Queue, 3, Input::Dequeue, (5, 7), Output::Dequeued { value: Some(10) });
    let r = h.check();
    assert_eq!(r.violations.len(), 1, "{r:?}");
    assert!(r.anomalies.iter().any(|a| a.contains("dequeued twice")), "{r:?}");
}

#[test]
fn a_queue_is_fifo_and_empty_only_when_drained() {
    let mut h = H::new();
    h.ok(Kind::Queue, 1, Input::Enqueue { value: 10 }, (0, 1), enq(2))
        .ok(Kind::Queue, 2, Input::Enqueue { value: 11 }, (0, 2), enq(1))
        .ok(Kind::Queue, 3, Input::Dequeue, (3, 4), Output::Dequeued { value: Some(11) })
        .ok(Kind::Queue, 3, Input::Dequeue, (5, 6), Output::Dequeued { value: Some(10) })
        .ok(Kind::Queue, 3, Input::Dequeue, (7, 8), Output::Dequeued { value: None });
    assert!(h.check().valid(), "concurrent enqueues take the server's order");
    // Without the node names, either order.
    for o in &mut h.ops {
        if let Outcome::Ok { output: Output::Enqueued { seq } } = &mut o.outcome {
            *seq = None;
        }
    }
    assert!(h.check().valid(), "concurrent enqueues without names may take either order");

    let mut h = H::new();
    h.ok(Kind::Queue, 1, Input::Enqueue { value: 10 }, (0, 1), enq(1))
        .ok(Kind::Queue, 2, Input::Enqueue { value: 11 }, (0, 2), enq(2))
        .ok(Kind::Queue, 3, Input::Dequeue, (3, 4), Output::Dequeued { value: Some(11) });
    assert_eq!(h.check().violations.len(), 1, "11 was numbered after 10 but came out first");

    let mut h = H::new();
    h.ok(Kind::Queue, 1, Input::Enqueue { value: 10 }, (0, 1), enq(1))
        .ok(Kind::Queue, 2, Input::Enqueue { value: 11 }, (2, 3), enq(2))
        .ok(Kind::Queue, 3, Input::Dequeue, (4, 5), Output::Dequeued { value: Some(11) });
    assert_eq!(h.check().violations.len(), 1, "11 came out before 10");

    let mut h = H::new();
    h.ok(Kind::Queue, 1, Input::Enqueue { value: 10 }, (0, 1), enq(1)).ok(
        Kind::Queue,
        3,
        Input::Dequeue,
        (4, 5),
        Output::Dequeued { value: None },
    );
    assert_eq!(h.check().violations.len(), 1, "an acknowledged enqueue is lost");
}

#[test]
fn an_indeterminate_write_may_explain_a_read() {
    let mut h = H::new();
    h.ok(Kind::Register, 1, Input::Write { value: 5 }, (0, 1), Output::Written { version: 1 })
        .info(Kind::Register, 2, Input::Write { value: 7 }, (2, 3))
        // long after the unknown write gave up, a read sees it
        .ok(Kind::Register, 3, Input::Read, (50, 51), read(7, 2))
        .ok(Kind::Register, 1, Input::Write { value: 8 }, (60, 61), Output::Written { version: 3 });
    let r = h.check();
    assert!(r.valid(), "{r:?}");
    assert_eq!(r.info[&Kind::Register], 1);

    // ... or may never have happened
    let mut h = H::new();
    h.ok(Kind::Register, 1, Input::Write { value: 5 }, (0, 1), Output::Written { version: 1 })
        .info(Kind::Register, 2, Input::Write { value: 7 }, (2, 3))
        .ok(Kind::Register, 3, Input::Read, (50, 51), read(5, 1));
    assert!(h.check().valid());

    // but it cannot take effect before it was invoked
    let mut h = H::new();
    h.ok(Kind::Register, 3, Input::Read, (0, 1), read(7, 1)).info(
        Kind::Register,
        2,
        Input::Write { value: 7 },
        (2, 3),
    );
    assert_eq!(h.check().violations.len(), 1);

    // an unknown enqueue explains a dequeue, an unknown increment a count
    let mut h = H::new();
    h.info(Kind::Queue, 1, Input::Enqueue { value: 10 }, (0, 1))
        .ok(Kind::Queue, 2, Input::Dequeue, (5, 6), Output::Dequeued { value: Some(10) })
        .info(Kind::Counter, 1, Input::Inc, (0, 1))
        .ok(Kind::Counter, 2, Input::ReadCounter, (5, 6), Output::Count { value: 1 });
    assert!(h.check().valid());
}

#[test]
fn failed_ops_and_unknown_reads_are_ignored() {
    let mut h = H::new();
    h.op(
        Kind::Register,
        1,
        Input::Write { value: 9 },
        (0, 1),
        Outcome::Fail { reason: "throttled".into() },
    )
    .info(Kind::Register, 2, Input::Read, (0, 1))
    .ok(Kind::Register, 3, Input::Read, (2, 3), read(0, 0));
    let r = h.check();
    assert!(r.valid(), "{r:?}");
    assert_eq!(r.ops[&Kind::Register], 2);
}

#[test]
fn many_concurrent_clients_check_quickly() {
    // 8 clients, 400 operations on one register with heavy overlap, every read
    // returning the latest write: linearizable, and answered well within the bound.
    let mut h = H::new();
    let (mut value, mut version) = (0i64, 0i32);
    for i in 0..400u64 {
        let c = u32::try_from(i % 8).unwrap();
        // each op overlaps the next seven
        let span = (i, i + 8);
        if i % 3 == 0 {
            value = i as i64 + 100;
            version += 1;
            h.ok(Kind::Register, c, Input::Write { value }, span, Output::Written { version });
        } else {
            h.ok(Kind::Register, c, Input::Read, span, read(value, version));
        }
    }
    // and a handful of unknown writes that nobody saw
    for k in 0..6 {
        h.info(Kind::Register, 9, Input::Write { value: -k }, (k as u64 * 50, k as u64 * 50 + 1));
    }
    let started = std::time::Instant::now();
    let r = h.check();
    assert!(r.valid(), "{r:?}");
    assert!(r.unknown.is_empty(), "{r:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

#[test]
fn the_search_is_bounded() {
    // Forty concurrent adds and a concurrent read that no order can explain: every
    // subset of the adds is a state of its own, and the bounds answer Unknown instead
    // of searching on.
    let mut h = H::new();
    for k in 0..40 {
        h.ok(Kind::Set, k, Input::Add { element: u64::from(k) }, (0, 100), Output::Added);
    }
    h.ok(Kind::Set, 99, Input::ReadSet, (0, 100), Output::Elements { elements: vec![1000] });
    let r =
        check(&h.ops, Limits { max_configs: 10_000, max_time: std::time::Duration::from_secs(5) });
    assert!(r.violations.is_empty());
    assert_eq!(r.unknown.len(), 1, "{r:?}");
    let r = check(
        &h.ops,
        Limits { max_configs: usize::MAX, max_time: std::time::Duration::from_millis(300) },
    );
    assert_eq!(r.unknown.len(), 1, "{r:?}");
    assert!(r.unknown[0].contains("no answer within"), "{r:?}");
}

#[test]
fn keys_are_checked_apart() {
    let mut h = H::new();
    h.ok(Kind::Register, 1, Input::Write { value: 5 }, (0, 1), Output::Written { version: 1 });
    h.ok(Kind::Register, 2, Input::Read, (2, 3), read(0, 0));
    h.ops[1].key = 1; // another register: it was never written
    let r = h.check();
    assert!(r.valid(), "{r:?}");
    assert_eq!(r.keys[&Kind::Register], 2);
}

#[test]
fn the_history_round_trips_as_json_lines() {
    let mut h = H::new();
    h.ok(Kind::Queue, 1, Input::Enqueue { value: 10 }, (0, 1), enq(7))
        .info(Kind::Register, 2, Input::Cas { expect: 1, value: 3 }, (0, 1))
        .ok(Kind::Set, 3, Input::ReadSet, (0, 1), Output::Elements { elements: vec![1, 2] });
    let mut buf = Vec::new();
    crate::history::write_jsonl(&h.ops, &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert_eq!(crate::history::read_jsonl(&text).unwrap(), h.ops);
    assert!(crate::history::read_jsonl("{\"id\":1}\n").is_err());
}

#[test]
fn many_indeterminate_operations_do_not_blow_up_the_search() {
    // A leader failure: 30 increments and 30 register writes lose their answers, one
    // of each took effect; then the work goes on and the final reads agree.
    let build = |final_count: i64| {
        let mut h = H::new();
        h.ok(Kind::Counter, 1, Input::Inc, (0, 1), Output::Incremented { value: 1 }).ok(
            Kind::Register,
            1,
            Input::Write { value: 1 },
            (0, 1),
            Output::Written { version: 1 },
        );
        for k in 0..30u64 {
            h.info(Kind::Counter, 2 + u32::try_from(k % 5).unwrap(), Input::Inc, (10 + k, 11 + k));
            h.info(
                Kind::Register,
                2 + u32::try_from(k % 5).unwrap(),
                Input::Write { value: 100 + k as i64 },
                (10 + k, 11 + k),
            );
        }
        h.ok(Kind::Counter, 1, Input::ReadCounter, (50, 51), Output::Count { value: 2 }).ok(
            Kind::Register,
            1,
            Input::Read,
            (50, 51),
            read(105, 2),
        );
        let mut v = 2;
        for k in 0..40u64 {
            v += 1;
            h.ok(
                Kind::Counter,
                1 + u32::try_from(k % 3).unwrap(),
                Input::Inc,
                (60 + 2 * k, 61 + 2 * k),
                Output::Incremented { value: v },
            );
            h.ok(
                Kind::Register,
                1,
                Input::Write { value: 1000 + k as i64 },
                (60 + 2 * k, 61 + 2 * k),
                Output::Written { version: i32::try_from(v).unwrap() },
            );
            h.ok(
                Kind::Counter,
                4,
                Input::ReadCounter,
                (61 + 2 * k, 62 + 2 * k),
                Output::Count { value: v },
            );
        }
        h.ok(
            Kind::Counter,
            9,
            Input::ReadCounter,
            (500, 501),
            Output::Count { value: final_count },
        );
        for o in &mut h.ops {
            o.key = 7;
        }
        h
    };
    let started = std::time::Instant::now();
    let r = build(42).check();
    assert!(r.valid() && r.unknown.is_empty(), "{r:?}");
    // a final count above what the unknown increments could explain is caught, as
    // fast
    let r = build(80).check();
    assert_eq!(r.violations.len(), 1, "{r:?}");
    assert_eq!(r.violations[0].kind, Kind::Counter);
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

#[test]
fn concurrent_enqueues_are_searched_in_the_servers_order() {
    // Rounds of six overlapping enqueues that the server numbered in the reverse of
    // their invocation order, then six dequeues in that order: without the node names
    // the search goes through most of each round's 6! orders (distinct queue states)
    // before it finds the server's; with them it tries one.
    let build = |named: bool| {
        let mut h = H::new();
        let (mut t, mut value) = (0u64, 100u64);
        for round in 0..20u64 {
            for c in 0..6u32 {
                let c64 = u64::from(c);
                let seq = round * 6 + (6 - c64);
                let output = Output::Enqueued { seq: named.then_some(seq) };
                h.ok(
                    Kind::Queue,
                    c,
                    Input::Enqueue { value: value + c64 },
                    (t + c64, t + 20),
                    output,
                );
            }
            for k in 0..6u64 {
                let t0 = t + 30 + 2 * k;
                let v = Some(value + 5 - k);
                h.ok(Kind::Queue, 9, Input::Dequeue, (t0, t0 + 1), Output::Dequeued { value: v });
            }
            t += 50;
            value += 6;
        }
        h
    };
    let limits = Limits { max_configs: 20_000, max_time: std::time::Duration::from_secs(10) };
    let r = check(&build(true).ops, limits);
    assert!(r.valid() && r.unknown.is_empty(), "{r:?}");
    let r = check(&build(false).ops, limits);
    assert!(r.valid());
    assert_eq!(r.unknown.len(), 1, "without names the search is far larger: {r:?}");
}
