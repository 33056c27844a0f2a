//! The interpreter's semantics (retries, catch, compensation, cancellation,
//! operator actions) and its properties: it never panics, it is
//! deterministic, and instances round-trip through the checkpoint codec.

use orderflow::workflow::interpreter::*;
use orderflow::workflow::value::Data;
use orderflow::workflow::{parse_workflow, Definition};
use proptest::prelude::*;

const FLOW: &str = r#"
name: saga
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: reserve
    call: inventory.reserve
    retry: { max_attempts: 3, initial_delay: 1s, factor: 2, max_delay: 10s, jitter: none }
    catch:
      out_of_stock: oos
    compensate:
      call: http.request
      with: { url: "http://undo/reserve" }
  - id: label
    call: shipping.buy_label
    with: { carrier: ups }
    compensate:
      call: shipping.void_label
      with: { label_id: "${{ steps.label.label_id }}" }
  - id: ship
    call: tiktok.mark_shipped
    with:
      tracking_number: "${{ steps.label.tracking_number }}"
      shipping_provider_id: p1
  - id: wait
    wait:
      until: "event.type == 'status' && event.status == 'DELIVERED'"
      timeout: 1h
      on_timeout: late
  - id: done
    end: fulfilled
  - id: late
    fail: "not delivered"
  - id: oos
    end: out_of_stock
"#;

fn def() -> Definition {
    parse_workflow("saga.yaml", FLOW).unwrap()
}

fn ctx(now_ms: i64) -> Ctx {
    Ctx {
        order: orderflow::workflow::expr::val(
            Data::from_json(&serde_json::json!({"id": "o1", "payment": {"total_amount": 10.0}}))
                .to_cel(),
        ),
        now_ms,
    }
}

fn calls(a: &Advance) -> Vec<(EffectId, String, Data)> {
    a.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Call {
                effect,
                action,
                args,
                ..
            } => Some((effect.clone(), action.clone(), args.clone())),
            _ => None,
        })
        .collect()
}

fn ok(effect: &EffectId, out: serde_json::Value) -> Input {
    Input::EffectResult {
        effect: effect.clone(),
        result: Ok(Data::from_json(&out)),
    }
}

fn err(effect: &EffectId, kind: &str) -> Input {
    Input::EffectResult {
        effect: effect.clone(),
        result: Err(ActionError {
            kind: kind.into(),
            message: "boom".into(),
        }),
    }
}

#[test]
fn retries_back_off_then_exception_keeps_progress_and_resume_uses_a_new_key() {
    let d = def();
    let c = ctx(1_000_000);
    let a = advance(&d, Instance::new(&d, "o1"), &Input::Start, &c);
    let (reserve, action, _) = calls(&a)[0].clone();
    assert_eq!(action, "inventory.reserve");
    assert_eq!(
        reserve.key("o1", &d.version),
        format!("o1:{}:reserve:1", d.version)
    );

    // Attempt 1 fails: a retry timer 1s out (no jitter).
    let a = advance(&d, a.instance, &err(&reserve, "transient"), &c);
    let Effect::StartTimer { timer, due_ms } = &a.effects[0] else {
        panic!("{:?}", a.effects)
    };
    assert_eq!(*due_ms, 1_001_000);
    assert_eq!(timer.kind, TimerKind::Retry(2));
    // A stale timer is ignored.
    let stale = TimerId {
        kind: TimerKind::Retry(9),
        ..timer.clone()
    };
    let same = advance(&d, a.instance.clone(), &Input::Timer(stale), &c);
    assert_eq!(same.instance, a.instance);
    assert!(same.effects.is_empty());

    // Attempt 2 reuses the idempotency key.
    let a = advance(&d, a.instance, &Input::Timer(timer.clone()), &c);
    let (again, _, _) = calls(&a)[0].clone();
    assert_eq!(again, reserve);
    let a = advance(&d, a.instance, &err(&reserve, "transient"), &c);
    let Effect::StartTimer { timer, due_ms } = &a.effects[0] else {
        panic!()
    };
    assert_eq!(*due_ms, 1_002_000, "second back-off doubles");
    let a = advance(&d, a.instance, &Input::Timer(timer.clone()), &c);
    let a = advance(&d, a.instance, &err(&reserve, "transient"), &c);
    let State::Exception { error } = &a.instance.state else {
        panic!("{:?}", a.instance.state)
    };
    assert_eq!(error.step, "reserve");
    assert_eq!(error.kind, "transient");

    // The operator resumes: a new visit, so a new key.
    let a = advance(&d, a.instance, &Input::Resume, &c);
    let (resumed, _, _) = calls(&a)[0].clone();
    assert_eq!(resumed.visit, 2);
    assert_ne!(resumed.key("o1", &d.version), reserve.key("o1", &d.version));
}

#[test]
fn non_retryable_error_is_caught() {
    let d = def();
    let c = ctx(0);
    let a = advance(&d, Instance::new(&d, "o1"), &Input::Start, &c);
    let (reserve, _, _) = calls(&a)[0].clone();
    let a = advance(&d, a.instance, &err(&reserve, "out_of_stock"), &c);
    assert_eq!(
        a.instance.state,
        State::Done(Terminal::Completed {
            outcome: "out_of_stock".into()
        })
    );
    assert_eq!(a.instance.error.as_ref().unwrap().kind, "out_of_stock");
}

fn run_to_wait(d: &Definition, c: &Ctx) -> Instance {
    let a = advance(d, Instance::new(d, "o1"), &Input::Start, c);
    let (reserve, _, _) = calls(&a)[0].clone();
    let a = advance(
        d,
        a.instance,
        &ok(
            &reserve,
            serde_json::json!({"reservation_id": "r1", "units": 1}),
        ),
        c,
    );
    let (label, action, args) = calls(&a)[0].clone();
    assert_eq!(action, "shipping.buy_label");
    assert_eq!(
        args,
        Data::from_json(&serde_json::json!({"carrier": "ups"}))
    );
    let a = advance(
        d,
        a.instance,
        &ok(
            &label,
            serde_json::json!({"label_id": "L1", "tracking_number": "T1"}),
        ),
        c,
    );
    let (ship, _, args) = calls(&a)[0].clone();
    assert_eq!(args.get("tracking_number"), Some(&Data::from("T1")));
    let a = advance(
        d,
        a.instance,
        &ok(&ship, serde_json::json!({"package_id": "P"})),
        c,
    );
    assert!(matches!(a.instance.state, State::Waiting { .. }));
    a.instance
}

#[test]
fn wait_matches_events_and_times_out_into_failure_with_reverse_compensation() {
    let d = def();
    let c = ctx(0);
    let inst = run_to_wait(&d, &c);
    let a = advance(
        &d,
        inst.clone(),
        &Input::Event(Data::from_json(
            &serde_json::json!({"type": "status", "status": "IN_TRANSIT"}),
        )),
        &c,
    );
    assert!(
        matches!(a.instance.state, State::Waiting { .. }),
        "non-matching event keeps waiting"
    );
    let a = advance(
        &d,
        a.instance,
        &Input::Event(Data::from_json(
            &serde_json::json!({"type": "status", "status": "DELIVERED"}),
        )),
        &c,
    );
    assert_eq!(
        a.instance.state,
        State::Done(Terminal::Completed {
            outcome: "fulfilled".into()
        })
    );

    // The timeout path fails the workflow: compensations in reverse order.
    let State::Waiting { timer, .. } = inst.state.clone() else {
        panic!()
    };
    let a = advance(&d, inst, &Input::Timer(timer), &c);
    let (void, action, args) = calls(&a)[0].clone();
    assert_eq!(action, "shipping.void_label");
    assert_eq!(args.get("label_id"), Some(&Data::from("L1")));
    assert!(void.compensation);
    let a = advance(
        &d,
        a.instance,
        &ok(&void, serde_json::json!({"voided": true})),
        &c,
    );
    let (undo, action, _) = calls(&a)[0].clone();
    assert_eq!(action, "http.request");
    assert_eq!(undo.step, "reserve");
    // A duplicate result for the finished compensation changes nothing.
    let dup = advance(
        &d,
        a.instance.clone(),
        &ok(&void, serde_json::json!({})),
        &c,
    );
    assert_eq!(dup.instance, a.instance);
    let a = advance(&d, a.instance, &ok(&undo, serde_json::json!({})), &c);
    assert_eq!(
        a.instance.state,
        State::Done(Terminal::Failed {
            reason: "not delivered".into()
        })
    );
    assert!(a.instance.compensations.is_empty());
}

#[test]
fn cancel_while_a_call_is_in_flight_waits_for_it_then_undoes_it() {
    let d = def();
    let c = ctx(0);
    let a = advance(&d, Instance::new(&d, "o1"), &Input::Start, &c);
    let (reserve, _, _) = calls(&a)[0].clone();
    let a = advance(
        &d,
        a.instance,
        &ok(&reserve, serde_json::json!({"reservation_id": "r1"})),
        &c,
    );
    let (label, _, _) = calls(&a)[0].clone();
    let a = advance(
        &d,
        a.instance,
        &Input::Cancel {
            reason: "buyer".into(),
        },
        &c,
    );
    assert!(matches!(a.instance.state, State::Cancelling { .. }));
    assert!(a.effects.is_empty());
    // The label was bought after all: it gets voided, then the reservation released.
    let a = advance(
        &d,
        a.instance,
        &ok(&label, serde_json::json!({"label_id": "L9"})),
        &c,
    );
    let (void, action, args) = calls(&a)[0].clone();
    assert_eq!(
        (action.as_str(), args.get("label_id")),
        ("shipping.void_label", Some(&Data::from("L9")))
    );
    let a = advance(&d, a.instance, &ok(&void, serde_json::json!({})), &c);
    let (undo, _, _) = calls(&a)[0].clone();
    let a = advance(&d, a.instance, &ok(&undo, serde_json::json!({})), &c);
    assert!(matches!(
        a.instance.state,
        State::Done(Terminal::Cancelled { .. })
    ));
}

#[test]
fn failing_compensation_is_retried_then_recorded_without_blocking() {
    let d = def();
    let c = ctx(0);
    let inst = run_to_wait(&d, &c);
    let mut a = advance(
        &d,
        inst,
        &Input::Cancel {
            reason: "buyer".into(),
        },
        &c,
    );
    let (void, _, _) = calls(&a)[0].clone();
    for _ in 0..COMPENSATION_ATTEMPTS {
        a = advance(&d, a.instance, &err(&void, "transient"), &c);
        if let Some(Effect::StartTimer { timer, .. }) = a.effects.first() {
            a = advance(&d, a.instance, &Input::Timer(timer.clone()), &c);
        }
    }
    assert_eq!(a.instance.failed_compensations.len(), 1);
    let (undo, action, _) = calls(&a)[0].clone();
    assert_eq!(action, "http.request");
    let a = advance(&d, a.instance, &ok(&undo, serde_json::json!({})), &c);
    assert!(matches!(
        a.instance.state,
        State::Done(Terminal::Cancelled { .. })
    ));
}

#[test]
fn goto_loops_without_io_stop_in_exception() {
    let d = parse_workflow(
        "loop.yaml",
        "name: loop\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: a\n    set: { x: 1 }\n    next: b\n  - id: b\n    set: { y: 2 }\n    next: a\n",
    )
    .unwrap();
    let a = advance(&d, Instance::new(&d, "o"), &Input::Start, &ctx(0));
    assert!(matches!(a.instance.state, State::Exception { .. }));
}

fn arb_data() -> impl Strategy<Value = Data> {
    let leaf = prop_oneof![
        Just(Data::Null),
        any::<bool>().prop_map(Data::Bool),
        any::<i64>().prop_map(Data::Int),
        (-1e9f64..1e9).prop_map(Data::Float),
        "[a-z]{0,6}".prop_map(Data::Str),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Data::List),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4).prop_map(Data::Map),
        ]
    })
}

const STEP_NAMES: &[&str] = &[
    "reserve", "label", "ship", "wait", "done", "late", "oos", "nope",
];

fn arb_step() -> impl Strategy<Value = String> {
    prop::sample::select(STEP_NAMES).prop_map(str::to_string)
}

fn arb_effect() -> impl Strategy<Value = EffectId> {
    (arb_step(), 0u32..3, any::<bool>()).prop_map(|(step, visit, compensation)| EffectId {
        step,
        visit,
        compensation,
    })
}

fn arb_timer() -> impl Strategy<Value = TimerId> {
    let kind = prop_oneof![
        (0u32..4).prop_map(TimerKind::Retry),
        Just(TimerKind::WaitTimeout),
        Just(TimerKind::Sleep),
        Just(TimerKind::ApprovalTimeout),
        (0u32..4).prop_map(TimerKind::CompensationRetry),
    ];
    (arb_step(), 0u32..3, kind).prop_map(|(step, visit, kind)| TimerId { step, visit, kind })
}

fn arb_state() -> impl Strategy<Value = State> {
    let terminal = prop_oneof![
        "[a-z]{1,5}".prop_map(|outcome| Terminal::Completed { outcome }),
        "[a-z]{1,5}".prop_map(|reason| Terminal::Failed { reason }),
        "[a-z]{1,5}".prop_map(|reason| Terminal::Cancelled { reason }),
    ];
    prop_oneof![
        Just(State::New),
        arb_effect().prop_map(|effect| State::Calling { effect }),
        (arb_timer(), any::<i64>()).prop_map(|(timer, due_ms)| State::Backoff { timer, due_ms }),
        (arb_timer(), any::<i64>()).prop_map(|(timer, due_ms)| State::Waiting { timer, due_ms }),
        (arb_timer(), any::<i64>()).prop_map(|(timer, due_ms)| State::Sleeping { timer, due_ms }),
        (arb_timer(), any::<i64>()).prop_map(|(timer, due_ms)| State::AwaitingApproval {
            timer,
            due_ms,
            message: String::new()
        }),
        arb_effect().prop_map(|effect| State::Cancelling { effect }),
        (terminal.clone(), 0u32..7, proptest::option::of(arb_timer())).prop_map(
            |(then, attempt, backoff)| State::Compensating {
                then,
                attempt,
                backoff
            }
        ),
        arb_step().prop_map(|step| State::Exception {
            error: StepError {
                kind: "transient".into(),
                message: "m".into(),
                step
            }
        }),
        terminal.prop_map(State::Done),
    ]
}

fn arb_instance(d: &Definition) -> impl Strategy<Value = Instance> {
    let base = Instance::new(d, "o1");
    (
        0u32..12,
        0u32..5,
        prop::collection::btree_map(arb_step(), 0u32..4, 0..4),
        prop::collection::btree_map("[a-z]{1,4}", arb_data(), 0..3),
        prop::collection::btree_map(arb_step(), arb_data(), 0..4),
        prop::collection::vec((arb_step(), 0u32..3, arb_data()), 0..3),
        arb_state(),
    )
        .prop_map(
            move |(pc, attempt, visits, vars, outputs, comps, state)| Instance {
                pc,
                attempt,
                visits,
                vars,
                outputs,
                compensations: comps
                    .into_iter()
                    .map(|(step, visit, args)| CompensationRecord {
                        step,
                        visit,
                        action: "http.request".into(),
                        args,
                    })
                    .collect(),
                state,
                ..base.clone()
            },
        )
}

fn arb_input() -> impl Strategy<Value = Input> {
    let result = prop_oneof![
        arb_data().prop_map(Ok),
        prop::sample::select(&["transient", "timeout", "out_of_stock", "invalid", "weird"][..])
            .prop_map(|k| Err(ActionError {
                kind: k.to_string(),
                message: "x".into()
            })),
    ];
    prop_oneof![
        Just(Input::Start),
        (arb_effect(), result).prop_map(|(effect, result)| Input::EffectResult { effect, result }),
        arb_data().prop_map(Input::Event),
        arb_timer().prop_map(Input::Timer),
        any::<bool>().prop_map(|approved| Input::Approval {
            approved,
            by: "op".into(),
            note: String::new()
        }),
        Just(Input::Cancel {
            reason: "buyer".into()
        }),
        Just(Input::Resume),
        Just(Input::Skip),
        arb_step().prop_map(|step| Input::RunFrom { step }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn advance_never_panics_and_is_deterministic(
        inst in arb_instance(&def()),
        inputs in prop::collection::vec(arb_input(), 1..8),
        now in 0i64..4_000_000_000_000,
    ) {
        let d = def();
        let c = ctx(now);
        let mut cur = inst;
        for input in &inputs {
            let a = advance(&d, cur.clone(), input, &c);
            let b = advance(&d, cur.clone(), input, &c);
            prop_assert_eq!(&a, &b);
            cur = a.instance;
        }
    }

    #[test]
    fn instances_round_trip_through_bincode(inst in arb_instance(&def())) {
        let cfg = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&inst, cfg).unwrap();
        let (back, used): (Instance, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(back, inst);
    }
}
