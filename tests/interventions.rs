//! Every stuck order has a way forward, and the server says which.
//!
//! A property test walks orders through the bundled workflows (and one
//! that can fail) by random sequences of what the world does: action
//! results, success or each error kind, timers firing, restocks, TikTok's
//! status changes and a buyer's cancellation request, and the
//! interventions offered. At every state it reaches, each intervention the
//! server offers must work (the order moves: its instance, lifecycle, hold,
//! calls or note change, and nothing is merely deferred), and each it
//! refuses must say why.
//!
//! The walk uses `runtime::core::process`, the step the order actors run,
//! over real workflow definitions in a real registry.

use std::sync::Arc;

use orderflow::actions::ActionName;
use orderflow::lifecycle::Lifecycle;
use orderflow::order::{CancelRequest, Order, TiktokStatus};
use orderflow::runtime::core::{self, Env, Msg};
use orderflow::runtime::event::{EventKind, OperatorAction, OrderEvent, Source};
use orderflow::runtime::interventions::{self, Context, ALL};
use orderflow::runtime::Registry;
use orderflow::store::{OrderRecord, Store, TimerEntry};
use orderflow::tiktok::dto::WireOrder;
use orderflow::workflow::interpreter::{stub_result, ActionError, State};
use orderflow::workflow::value::Data;
use orderflow::workflow::Definition;
use proptest::prelude::*;

const T0: i64 = 1_764_000_000_000;

/// A workflow whose approval rejects at its timeout without a rejection
/// path, and whose payment check fails the workflow: the `failed` states.
const FRAGILE: &str = r#"
name: fragile
trigger:
  on: AWAITING_SHIPMENT
  when: "order.id.startsWith('F')"
  priority: 100
steps:
  - id: reserve
    call: inventory.reserve
    compensate:
      call: inventory.release
  - id: approve
    approval:
      timeout: 1h
      default: reject
  - id: check
    call: order.validate
    catch:
      payment_mismatch: give_up
  - id: ship
    call: tiktok.mark_shipped
    with:
      tracking_number: T1
      shipping_provider_id: P1
  - id: done
    end: fulfilled
  - id: give_up
    fail: "payment does not add up"
"#;

struct World {
    _dir: tempfile::TempDir,
    registry: Registry,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("workflows");
    std::fs::create_dir_all(&wf).unwrap();
    for f in std::fs::read_dir("workflows").unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&p, wf.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(wf.join("fragile.yaml"), FRAGILE).unwrap();
    let store = Store::open(&dir.path().join("data"), 16 << 20, 256).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = rt.block_on(Registry::load(wf, store)).unwrap();
    World {
        _dir: dir,
        registry,
    }
}

/// The order kinds: seller shipping, above the approval threshold, cash on
/// delivery (high_value), TikTok Shipping, and the fragile workflow.
fn order(kind: u8) -> Order {
    let (id, total, cod, shipping) = match kind % 5 {
        0 => ("S1", "45.98", false, "SELLER"),
        1 => ("S2", "750.00", false, "SELLER"),
        2 => ("S3", "45.98", true, "SELLER"),
        3 => ("S4", "45.98", false, "TIKTOK"),
        _ => ("F1", "45.98", false, "SELLER"),
    };
    let w: WireOrder = serde_json::from_value(serde_json::json!({
        "id": id, "status": "AWAITING_SHIPMENT", "create_time": 1_764_000_000, "update_time": 1_764_000_000,
        "is_cod": cod, "shipping_type": shipping, "fulfillment_type": "FULFILLMENT_BY_SELLER",
        "rts_sla_time": 1_764_200_000,
        "payment": {"currency": "USD", "total_amount": total, "sub_total": total},
        "line_items": [{"id": "li1", "sku_id": "S1", "sale_price": total}],
    }))
    .unwrap();
    Order::from_wire("shop", &w).unwrap()
}

fn event(rec: &OrderRecord, n: &mut u32, kind: EventKind) -> Msg {
    *n += 1;
    Msg::Event {
        inbox_seq: None,
        event: OrderEvent {
            id: format!("e{n}"),
            order_id: rec.order_id.clone(),
            shop_id: "shop".into(),
            source: match kind {
                EventKind::Operator(_) => Source::Operator,
                _ => Source::Api,
            },
            received_ms: T0,
            kind,
        },
    }
}

fn step(w: &World, rec: &OrderRecord, msg: &Msg, now_ms: i64) -> OrderRecord {
    let env = Env {
        registry: &w.registry,
        now_ms,
        running_marker: None,
        order_val: None,
        projection: None,
    };
    core::process(rec.clone(), msg, &env)
        .expect("a step processes")
        .record
}

/// A snapshot of the order with what TikTok changed.
fn snapshot(rec: &OrderRecord, f: impl FnOnce(&mut Order)) -> EventKind {
    let mut o = rec.order.clone().expect("the order is known");
    o.update_time += 1;
    f(&mut o);
    EventKind::Snapshot(Box::new(o))
}

/// Everything the world may do next.
fn world_moves(rec: &OrderRecord, n: &mut u32) -> Vec<(String, Msg)> {
    let mut out = Vec::new();
    for s in &rec.in_flight {
        out.push((
            format!("{} ok", s.action),
            Msg::EffectDone {
                effect: s.effect.clone(),
                result: stub_result(&s.action, &rec.order_id),
            },
        ));
        for kind in [
            "transient",
            "rejected",
            "out_of_stock",
            "unmapped_sku",
            "payment_mismatch",
            "order_cancelled",
        ] {
            out.push((
                format!("{} {kind}", s.action),
                Msg::EffectDone {
                    effect: s.effect.clone(),
                    result: Err(ActionError {
                        kind: kind.into(),
                        message: format!("test: {kind}"),
                    }),
                },
            ));
        }
    }
    for t in &rec.timers {
        out.push((
            format!("timer {:?}", t.timer.kind),
            Msg::Timer {
                key: orderflow::store::timer_key(&rec.order_id, &t.timer, t.due_ms),
                entry: TimerEntry {
                    order_id: rec.order_id.clone(),
                    timer: t.timer.clone(),
                    due_ms: t.due_ms,
                },
            },
        ));
    }
    let restock =
        Data::from_json(&serde_json::json!({"type": "restock", "sku_id": "S1", "available": 5}));
    out.push(("restock".into(), event(rec, n, EventKind::Signal(restock))));
    if rec.order.is_some() {
        for status in [
            TiktokStatus::InTransit,
            TiktokStatus::Delivered,
            TiktokStatus::Cancelled,
        ] {
            out.push((
                format!("status {status}"),
                event(rec, n, snapshot(rec, |o| o.status = status.clone())),
            ));
        }
        out.push((
            "buyer asks to cancel".into(),
            event(
                rec,
                n,
                snapshot(rec, |o| {
                    o.buyer_cancel_requested = true;
                    o.cancel_request = Some(CancelRequest {
                        cancel_id: "c1".into(),
                        reason: "seller_cancel_reason_buyer_requested".into(),
                        reason_text: "changed my mind".into(),
                        requested_at: 1_764_000_100,
                        respond_by: Some(1_764_100_000),
                    });
                }),
            ),
        ));
    }
    out
}

/// The action an offered intervention stands for, with the arguments it
/// needs (the first step or workflow it offers).
fn action_for(
    w: &World,
    rec: &OrderRecord,
    offer: &interventions::Offer,
    n: u32,
) -> OperatorAction {
    let step = offer
        .steps
        .first()
        .cloned()
        .unwrap_or_else(|| "nope".into());
    match offer.action {
        "approve" => OperatorAction::Approve {
            by: "prop".into(),
            note: String::new(),
        },
        "reject" => OperatorAction::Reject {
            by: "prop".into(),
            note: String::new(),
        },
        "release" => OperatorAction::Release,
        "resume" => OperatorAction::Resume,
        "run_from" => OperatorAction::RunFrom { step },
        "skip" => OperatorAction::Skip,
        "move" => {
            let workflow = offer
                .workflows
                .first()
                .cloned()
                .unwrap_or_else(|| "nope".into());
            // Where it goes on: by default (the step it is at) when the
            // target has it, else the target's first step, named.
            let target = if workflow.contains('@') {
                w.registry.get(&workflow).ok()
            } else {
                w.registry.current().get(&workflow).cloned()
            };
            let here = rec.instance.as_ref().and_then(|i| {
                let def = definition(w, rec)?;
                i.current_step(&def).map(str::to_string)
            });
            let step = match target {
                Some(t) if here.as_deref().is_some_and(|h| t.step_index(h).is_some()) => None,
                Some(t) => t.steps.first().map(|s| s.id.clone()),
                None => None,
            };
            OperatorAction::Move { workflow, step }
        }
        "hold" => OperatorAction::Hold {
            reason: "prop".into(),
        },
        "approve_cancel_request" => OperatorAction::AnswerCancelRequest {
            approve: true,
            reason: None,
            by: "prop".into(),
        },
        "reject_cancel_request" => OperatorAction::AnswerCancelRequest {
            approve: false,
            reason: None,
            by: "prop".into(),
        },
        "cancel" if offer.needs == Some("cancel_reason") => OperatorAction::SellerCancel {
            reason: "prop".into(),
            cancel_reason: "out_of_stock".into(),
        },
        "cancel" => OperatorAction::Cancel {
            reason: "prop".into(),
        },
        _ => OperatorAction::Note {
            text: format!("note {n}"),
        },
    }
}

/// What an intervention may change; an effective one changes some of it.
fn visible(rec: &OrderRecord) -> String {
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        rec.instance
            .as_ref()
            .map(|i| (&i.state, i.pc, &i.workflow, &i.version)),
        rec.lifecycle,
        rec.held_from,
        rec.note,
        rec.in_flight.iter().map(|s| &s.key).collect::<Vec<_>>(),
        rec.workflow,
        rec.timers
            .iter()
            .map(|t| (&t.timer, t.due_ms))
            .collect::<Vec<_>>(),
    )
}

fn definition(w: &World, rec: &OrderRecord) -> Option<Arc<Definition>> {
    rec.workflow.as_deref().and_then(|k| w.registry.get(k).ok())
}

/// Checks every intervention at this state: offered ones work, refused
/// ones say why.
fn check_all(w: &World, rec: &OrderRecord, tiktok: bool, n: &mut u32, trail: &[String]) {
    with_context(w, rec, tiktok, |cx| {
        let offers = interventions::offers(rec, cx);
        check_offers(w, rec, cx, &offers, n, trail)
    })
}

/// Runs `f` with the interventions' context for `rec`, as the API builds
/// it: its definition and the workflows in force.
fn with_context<T>(w: &World, rec: &OrderRecord, tiktok: bool, f: impl FnOnce(&Context) -> T) -> T {
    let def = definition(w, rec);
    let in_force: Vec<String> = w
        .registry
        .current()
        .definitions
        .iter()
        .map(|d| d.key())
        .collect();
    let resolve = |name: &str| -> Option<Arc<Definition>> {
        if name.contains('@') {
            w.registry.get(name).ok()
        } else {
            w.registry.current().get(name).cloned()
        }
    };
    let cx = Context {
        def: def.as_deref(),
        in_force,
        tiktok,
        resolve: &resolve,
    };
    f(&cx)
}

fn check_offers(
    w: &World,
    rec: &OrderRecord,
    cx: &Context,
    offers: &[interventions::Offer],
    n: &mut u32,
    trail: &[String],
) {
    assert_eq!(offers.len(), ALL.len());
    for offer in offers {
        let action = action_for(w, rec, offer, *n);
        let checked = interventions::check(rec, cx, &action);
        if !offer.allowed {
            assert!(
                !offer.why.is_empty(),
                "{} refused without a reason",
                offer.action
            );
            let err = checked.expect_err("a refused intervention fails the check");
            assert!(!err.to_string().is_empty());
            continue;
        }
        checked.unwrap_or_else(|e| {
            panic!(
                "{} is offered but its check refuses it: {e}\n  after: {}",
                offer.action,
                trail.join(" → ")
            )
        });
        let consequence = offer
            .consequence
            .as_ref()
            .unwrap_or_else(|| panic!("{} is offered without its consequence", offer.action));
        assert!(
            !consequence.summary.is_empty() && !consequence.confirm.is_empty(),
            "{} is offered with an empty consequence: {consequence:?}",
            offer.action
        );
        assert_eq!(offer.why, consequence.summary);
        let before = visible(rec);
        let deferred = rec.deferred.len();
        let msg = event(rec, n, EventKind::Operator(action));
        let after = step(w, rec, &msg, T0 + 1);
        assert!(
            visible(&after) != before && after.deferred.len() <= deferred,
            "{} was offered ({}) but changed nothing\n  state: {before}\n  after: {}",
            offer.action,
            offer.why,
            trail.join(" → ")
        );
        if matches!(offer.action, "cancel" | "approve_cancel_request") {
            check_undo(w, rec, after, offer, n, trail);
        }
    }
}

/// A cancellation does what its consequence says, no more and no less:
/// once every call answers (and, for a buyer's request, TikTok cancels),
/// one release per stock it names, one void per label, and TikTok told
/// exactly when it says so.
fn check_undo(
    w: &World,
    before: &OrderRecord,
    after: OrderRecord,
    offer: &interventions::Offer,
    n: &mut u32,
    trail: &[String],
) {
    let c = offer.consequence.as_ref().expect("an allowed offer");
    let old: Vec<String> = before.in_flight.iter().map(|s| s.key.clone()).collect();
    let mut after = after;
    if offer.action == "approve_cancel_request" {
        // TikTok cancels the order as it takes the approval.
        let msg = event(
            &after,
            n,
            snapshot(&after, |o| o.status = TiktokStatus::Cancelled),
        );
        after = step(w, &after, &msg, T0 + 2);
    }
    let (rec, called) = drain(w, after, &old);
    let count = |a: ActionName| called.iter().filter(|c| *c == a.as_str()).count();
    let told = match offer.action {
        "cancel" => count(ActionName::TiktokCancelOrder),
        _ => count(ActionName::TiktokApproveCancellation),
    };
    assert_eq!(
        (
            count(ActionName::InventoryRelease),
            count(ActionName::ShippingVoidLabel),
            told
        ),
        (
            c.releases.len(),
            c.voids.len(),
            usize::from(c.tiktok.is_some())
        ),
        "{} promised {c:?}; it called {called:?}\n  after: {}",
        offer.action,
        trail.join(" → ")
    );
    assert_eq!(rec.lifecycle, Lifecycle::Cancelled, "{rec:?}");
}

/// Answers every call with success, and fires every timer (a
/// compensation's retry), until nothing is in flight or armed; the record
/// then, and the actions called that were not in flight in `old` (or were
/// compensations).
fn drain(w: &World, mut rec: OrderRecord, old: &[String]) -> (OrderRecord, Vec<String>) {
    let mut called = Vec::new();
    for _ in 0..32 {
        let msg = if let Some(s) = rec.in_flight.first().cloned() {
            // A compensation already running counts: it is part of the
            // undoing promised.
            if !old.contains(&s.key) || s.effect.compensation {
                called.push(s.action.clone());
            }
            Msg::EffectDone {
                effect: s.effect.clone(),
                result: stub_result(&s.action, &rec.order_id),
            }
        } else if let Some(t) = rec.timers.first().cloned() {
            Msg::Timer {
                key: orderflow::store::timer_key(&rec.order_id, &t.timer, t.due_ms),
                entry: TimerEntry {
                    order_id: rec.order_id.clone(),
                    timer: t.timer.clone(),
                    due_ms: t.due_ms,
                },
            }
        } else {
            break;
        };
        let now = rec.timers.iter().map(|t| t.due_ms).max().unwrap_or(0);
        rec = step(w, &rec, &msg, now.max(T0 + 2));
    }
    assert!(rec.in_flight.is_empty(), "calls still in flight: {rec:?}");
    (rec, called)
}

/// An operator's rejection of the pending approval.
fn reject(rec: &OrderRecord, n: &mut u32) -> Msg {
    let by = "ops".into();
    event(
        rec,
        n,
        EventKind::Operator(OperatorAction::Reject {
            by,
            note: String::new(),
        }),
    )
}

/// The dead ends of the issue, one action each: an order a workflow ended
/// held (payment, stock after approval, rejected approval) is released
/// into its release step; an order whose workflow failed runs again from a
/// step; an order moves to another version and on.
#[test]
fn each_dead_end_has_one_action_forward() {
    let w = world();
    let mut n = 0;
    let ship_after = |rec: OrderRecord, n: &mut u32| -> OrderRecord {
        // Answer every call with success until nothing is in flight.
        let mut rec = rec;
        for _ in 0..20 {
            let Some(s) = rec.in_flight.first().cloned() else {
                break;
            };
            let msg = Msg::EffectDone {
                effect: s.effect.clone(),
                result: stub_result(&s.action, &rec.order_id),
            };
            rec = step(&w, &rec, &msg, T0 + 2);
            let _ = n;
        }
        rec
    };
    let start = |kind: u8, n: &mut u32| {
        let rec = OrderRecord::new(order(kind).id.as_str(), "shop", T0);
        let msg = event(&rec, n, EventKind::Snapshot(Box::new(order(kind))));
        step(&w, &rec, &msg, T0)
    };
    let fail_first = |rec: OrderRecord, kind: &str| {
        let s = rec.in_flight.first().cloned().expect("a call in flight");
        let msg = Msg::EffectDone {
            effect: s.effect,
            result: Err(ActionError {
                kind: kind.into(),
                message: "test".into(),
            }),
        };
        step(&w, &rec, &msg, T0 + 1)
    };
    let shipped = |rec: &OrderRecord| rec.lifecycle == Lifecycle::Fulfilled;

    // Payment that does not add up: held at payment_hold_end; release ships.
    let rec = fail_first(start(0, &mut n), "payment_mismatch");
    let rec = ship_after(rec, &mut n);
    assert_eq!(rec.lifecycle, Lifecycle::OnHold, "{rec:?}");
    assert!(matches!(
        rec.instance.as_ref().unwrap().state,
        State::Done(_)
    ));
    let msg = event(&rec, &mut n, EventKind::Operator(OperatorAction::Release));
    let rec = ship_after(step(&w, &rec, &msg, T0 + 3), &mut n);
    assert!(shipped(&rec), "released, it ships: {:?}", rec.lifecycle);

    // A rejected approval (high_value): held; release ships.
    let rec = ship_after(start(2, &mut n), &mut n);
    let msg = reject(&rec, &mut n);
    let rec = ship_after(step(&w, &rec, &msg, T0 + 3), &mut n);
    assert_eq!(rec.lifecycle, Lifecycle::OnHold);
    let msg = event(&rec, &mut n, EventKind::Operator(OperatorAction::Release));
    let rec = ship_after(step(&w, &rec, &msg, T0 + 3), &mut n);
    assert!(shipped(&rec), "released, it ships: {:?}", rec.lifecycle);

    // A failed workflow (fragile): run it from a step, it ships.
    let rec = ship_after(start(4, &mut n), &mut n);
    let msg = reject(&rec, &mut n);
    let rec = ship_after(step(&w, &rec, &msg, T0 + 3), &mut n);
    assert!(matches!(
        rec.instance.as_ref().unwrap().state,
        State::Done(orderflow::workflow::interpreter::Terminal::Failed { .. })
    ));
    assert_eq!(rec.lifecycle, Lifecycle::Exception);
    let msg = event(
        &rec,
        &mut n,
        EventKind::Operator(OperatorAction::RunFrom {
            step: "check".into(),
        }),
    );
    let rec = ship_after(step(&w, &rec, &msg, T0 + 3), &mut n);
    assert!(shipped(&rec), "run again, it ships: {:?}", rec.lifecycle);

    // Moved to another workflow (fragile, waiting for approval → standard,
    // from its reservation): it ships on the new one.
    let rec = ship_after(start(4, &mut n), &mut n);
    assert!(matches!(
        rec.instance.as_ref().unwrap().state,
        State::AwaitingApproval { .. }
    ));
    let msg = event(
        &rec,
        &mut n,
        EventKind::Operator(OperatorAction::Move {
            workflow: "standard".into(),
            step: Some("choose_carrier".into()),
        }),
    );
    let rec = ship_after(step(&w, &rec, &msg, T0 + 3), &mut n);
    assert!(rec.workflow.as_deref().unwrap().starts_with("standard@"));
    assert!(shipped(&rec), "moved, it ships: {:?}", rec.lifecycle);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_offered_intervention_works_and_every_refusal_says_why(
        kind in 0u8..5,
        tiktok in any::<bool>(),
        choices in prop::collection::vec(any::<u16>(), 1..24),
    ) {
        let w = WORLD.get_or_init(world);
        let mut n = 0;
        let first = order(kind);
        let mut rec = OrderRecord::new(first.id.as_str(), "shop", T0);
        let msg = event(&rec, &mut n, EventKind::Snapshot(Box::new(first)));
        rec = step(w, &rec, &msg, T0);
        let mut trail = vec![format!("order kind {kind}")];
        check_all(w, &rec, tiktok, &mut n, &trail);
        for (i, c) in choices.iter().enumerate() {
            let mut moves = world_moves(&rec, &mut n);
            // Offered interventions are moves too: the walk goes through
            // the states they lead to.
            let def = definition(w, &rec);
            let resolve = |name: &str| w.registry.current().get(name).cloned();
            let cx = Context { def: def.as_deref(), in_force: vec!["standard".into()], tiktok, resolve: &resolve };
            for offer in interventions::offers(&rec, &cx).into_iter().filter(|o| o.allowed) {
                let a = action_for(w, &rec, &offer, n);
                moves.push((format!("operator {}", offer.action), event(&rec, &mut n, EventKind::Operator(a))));
            }
            let (name, msg) = moves.swap_remove(*c as usize % moves.len());
            trail.push(name);
            // Timers fire when due: time moves on with the walk.
            rec = step(w, &rec, &msg, T0 + (i as i64 + 1) * 3_600_000 * 13);
            check_all(w, &rec, tiktok, &mut n, &trail);
        }
    }
}

/// One registry for every case (loading the workflows is the slow part).
static WORLD: std::sync::OnceLock<World> = std::sync::OnceLock::new();

/// What could hurt a buyer is refused, with why: moving an unpaid order
/// into a workflow that ships, and cancelling while a ship call is out to
/// TikTok. An intervention that arrives after the order moved on (the API
/// checked it before the ship call went out) is ignored by the actor, with
/// the reason in the audit.
#[test]
fn what_could_hurt_a_buyer_is_refused_and_a_late_one_ignored() {
    let w = world();
    let mut n = 0;
    let why = |rec: &OrderRecord, action: &str| {
        with_context(&w, rec, true, |cx| {
            interventions::offers(rec, cx)
                .into_iter()
                .find(|o| o.action == action)
                .map(|o| (o.allowed, o.why))
                .unwrap()
        })
    };

    // Unpaid: no workflow has it, and none may be forced on it.
    let mut unpaid = order(0);
    unpaid.status = orderflow::order::TiktokStatus::Unpaid;
    let rec = OrderRecord::new(unpaid.id.as_str(), "shop", T0);
    let msg = event(&rec, &mut n, EventKind::Snapshot(Box::new(unpaid)));
    let rec = step(&w, &rec, &msg, T0);
    assert_eq!(rec.lifecycle, Lifecycle::Pending);
    let (allowed, reason) = why(&rec, "move");
    assert!(
        !allowed && reason.contains("does not let it ship yet"),
        "{reason}"
    );

    // Paid: answer every call until the ship call is out.
    let first = order(0);
    let mut rec = OrderRecord::new(first.id.as_str(), "shop", T0);
    let msg = event(&rec, &mut n, EventKind::Snapshot(Box::new(first)));
    rec = step(&w, &rec, &msg, T0);
    let before_cancel = loop {
        let s = rec.in_flight.first().cloned().expect("a call in flight");
        if s.action == "tiktok.mark_shipped" {
            break rec;
        }
        let msg = Msg::EffectDone {
            effect: s.effect.clone(),
            result: stub_result(&s.action, &rec.order_id),
        };
        rec = step(&w, &rec, &msg, T0 + 1);
    };
    let (allowed, reason) = why(&before_cancel, "cancel");
    assert!(!allowed && reason.contains("ship call is out"), "{reason}");
    let msg = event(
        &before_cancel,
        &mut n,
        EventKind::Operator(OperatorAction::Cancel {
            reason: "late".into(),
        }),
    );
    let after = step(&w, &before_cancel, &msg, T0 + 2);
    assert_eq!(visible(&after), visible(&before_cancel), "nothing changed");
    assert_ne!(after.lifecycle, Lifecycle::Cancelled);
}
