//! No dead ends, through the daemon's own surfaces (simulator over HTTP,
//! real label API, polling off):
//!
//! - an order a workflow ended `held` (a rejected approval) ships after one
//!   `release` (admin API, and the CLI's `orders release`);
//! - an order whose workflow failed ships after one `run_from` (the CLI)
//!   or one `move` to another workflow (admin API);
//! - what the server offers is what works: each dead end's order view
//!   offers the action that moves it and refuses the ones that would not,
//!   with why, and a refused action answers 409 with that reason;
//! - an approval nobody answers holds the order with one alert and
//!   cancels nothing on TikTok (the simulator's ledger), and a late
//!   approval still ships it;
//! - interventions mean what they say: each one offered names its
//!   consequence from the order's state (the stock it releases, the label
//!   it voids, what TikTok is told), and does that; Hold on a shipped
//!   order and Cancel on a delivered one are refused with the reason
//!   (409), never "accepted"; an operator's hold on an order waiting for
//!   approval refuses Approve, naming the hold and offering Release.
//!
//! (The console's side is in `console_e2e.rs`: a failed order run from a
//! step with one tap, and only the buttons the server allows.)

mod common;

use std::process::Command;
use std::time::Duration;

use common::{eventually, get_json, post_json, Inbox, SimRig};
use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use serde_json::{json, Value};

/// Reserve and buy a label (the first steps of every workflow here).
macro_rules! reserve_and_label {
    () => {
        r#"
  - id: reserve
    call: inventory.reserve
    compensate:
      call: inventory.release
  - id: buy_label
    call: shipping.buy_label
    with:
      carrier: USPS
    compensate:
      call: shipping.void_label
      with:
        label_id: "${{ steps.buy_label.label_id }}"
"#
    };
}

/// Ship on TikTok with that label, commit the stock, end fulfilled.
macro_rules! ship_and_commit {
    () => {
        r#"
  - id: mark_shipped
    call: tiktok.mark_shipped
    with:
      tracking_number: "${{ steps.buy_label.tracking_number }}"
      shipping_provider_id: "${{ steps.buy_label.shipping_provider_id }}"
  - id: commit
    call: inventory.commit
  - id: done
    end: fulfilled
"#
    };
}

/// Reserve, buy a label, ship on TikTok, commit the stock: the steps both
/// dead-end workflows end with.
const SHIP: &str = concat!(reserve_and_label!(), ship_and_commit!());

/// Two units of a kind need a person (`fail`); others ask for an approval,
/// whose rejection holds the order (`end: held`, released at `reserve`).
fn dead_ends() -> String {
    format!(
        r#"
name: dead_ends
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: route
    switch:
      - when: "order.line_items.size() > 1"
        goto: refuse
      - default: approve
  - id: approve
    approval:
      message: "ship ${{{{ order.id }}}}?"
      timeout: 1h
      on_reject: rejected
{SHIP}
  - id: refuse
    fail: "two of a kind: a person checks the order"
  - id: rejected
    call: order.hold
    with:
      reason: "approval rejected"
  - id: rejected_end
    end: held
    release: reserve
"#
    )
}

/// Another workflow in force (it triggers on nothing it will see), for
/// `move`.
fn alt() -> String {
    format!(
        r#"
name: alt
trigger:
  on: AWAITING_SHIPMENT
  when: "order.id == 'never'"
steps:
{SHIP}"#
    )
}

struct World {
    rig: SimRig,
    daemon: Daemon,
    base: String,
    sim: String,
    sku: String,
    c: reqwest::Client,
}

async fn world(tag: &str, clock: Clock, alerts: Option<&Inbox>) -> World {
    world_on(tag, clock, alerts, ("dead_ends.yaml", &dead_ends())).await
}

async fn world_on(
    tag: &str,
    clock: Clock,
    alerts: Option<&Inbox>,
    workflow: (&str, &str),
) -> World {
    let mut rig = common::sim_rig(
        tag,
        orderflow::simulator::SimulatorArgs {
            shops: 1,
            ..common::quiet_sim()
        },
        200.0,
        workflow,
    )
    .await;
    std::fs::write(rig.cfg.workflows.dir.join("alt.yaml"), alt()).unwrap();
    let sim = rig.sim.base_url();
    common::sim_labels(&mut rig.cfg, &sim, &[("USPS", "6617675021119438849")]);
    rig.cfg.sync.poll_interval = orderflow::config::Dur(Duration::from_secs(3600));
    if let Some(inbox) = alerts {
        common::alerts_to(&mut rig.cfg, inbox.url());
    }
    let c = common::http();
    let daemon = Daemon::start(rig.cfg.clone(), clock).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    common::wait_ready(&c, &base).await;
    let sku = common::stock_first_sku(&c, &sim, &base, 20).await;
    World {
        rig,
        daemon,
        base,
        sim,
        sku,
        c,
    }
}

impl World {
    async fn create(&self, units: u32) -> String {
        common::sim_create(
            &self.c,
            &self.sim,
            json!({"items": [{"sku_id": self.sku, "quantity": units}],
                   "status": "AWAITING_SHIPMENT", "ship_by_in_secs": 30 * 86_400}),
        )
        .await
        .remove(0)
    }

    async fn order(&self, id: &str) -> Value {
        get_json(&self.c, &format!("{}/api/v1/orders/{id}", self.base))
            .await
            .1
    }

    async fn until(&self, id: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        eventually(Duration::from_secs(40), what, || {
            let f = self.order(id);
            let ok = &ok;
            async move {
                let o = f.await;
                ok(&o).then_some(o)
            }
        })
        .await
    }

    async fn act(&self, id: &str, action: &str, body: Value) -> (u16, Value) {
        post_json(
            &self.c,
            &format!("{}/api/v1/orders/{id}/actions/{action}", self.base),
            &body,
        )
        .await
    }

    /// Runs the CLI against the daemon; its exit status and output.
    fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(common::bin())
            .args(args)
            .args(["--url", &self.base])
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Shipped on TikTok: the simulator's ledger has the order's
    /// successful ship call, and orderflow counts it fulfilled.
    async fn shipped(&self, id: &str) {
        let o = self
            .until(id, "shipped and its workflow done", |o| {
                o["lifecycle"] == "fulfilled" && o["instance_state"] == "completed:fulfilled"
            })
            .await;
        assert!(o["fulfillment_ms"].is_i64(), "{o}");
        let (_, l) = get_json(&self.c, &format!("{}/sim/ledger?order_id={id}", self.sim)).await;
        let ships = l["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ok"] == true && e["action"] == "mark_shipped")
            .count();
        assert_eq!(ships, 1, "{l}");
    }

    async fn ledger_has(&self, id: &str, action: &str) -> bool {
        let (_, l) = get_json(&self.c, &format!("{}/sim/ledger?order_id={id}", self.sim)).await;
        l["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"].as_str().is_some_and(|a| a.contains(action)))
    }
}

/// The offer for `action` in the order view.
fn offer<'a>(o: &'a Value, action: &str) -> &'a Value {
    o["interventions"]
        .as_array()
        .unwrap_or_else(|| panic!("no interventions in {o}"))
        .iter()
        .find(|x| x["action"] == action)
        .unwrap_or_else(|| panic!("no offer for {action} in {o}"))
}

fn allowed(o: &Value, action: &str) -> bool {
    offer(o, action)["allowed"] == true
}

#[actix_rt::test]
async fn each_dead_end_ships_with_one_action_from_the_api_and_the_cli() {
    let w = world("dead-ends", Clock::system(), None).await;

    // --- A rejected approval: the workflow ends held. Before, only cancel
    // worked; now release is offered, says where it goes on, and ships.
    let held = w.create(1).await;
    let held_by_cli = w.create(1).await;
    for id in [&held, &held_by_cli] {
        w.until(id, "waiting for approval", |o| {
            o["waiting"]["approval"].is_string()
        })
        .await;
        let (s, v) = w.act(id, "reject", json!({"by": "ana"})).await;
        assert_eq!(s, 202, "{v}");
    }
    let o = w
        .until(&held, "held by its workflow", |o| {
            o["lifecycle"] == "on_hold" && o["instance_state"] == "completed:held"
        })
        .await;
    assert!(allowed(&o, "release"), "{o}");
    let why = offer(&o, "release")["why"].as_str().unwrap();
    assert!(why.contains("reserve"), "says where it goes on: {why}");
    for refused in ["resume", "approve", "skip"] {
        assert!(!allowed(&o, refused), "{refused} offered: {o}");
        assert!(
            !offer(&o, refused)["why"].as_str().unwrap().is_empty(),
            "{refused} refused without a reason"
        );
    }
    // A refused action answers 409 with the reason the view gave.
    let (s, v) = w.act(&held, "resume", json!({})).await;
    assert_eq!(s, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains(offer(&o, "resume")["why"].as_str().unwrap()),
        "{v} / {o}"
    );
    let (s, v) = w.act(&held, "release", json!({"by": "ana"})).await;
    assert_eq!(s, 202, "{v}");
    w.shipped(&held).await;

    // The same from the CLI.
    w.until(&held_by_cli, "held by its workflow", |o| {
        o["instance_state"] == "completed:held"
    })
    .await;
    let (ok, out) = w.cli(&["orders", "show", &held_by_cli]);
    assert!(ok, "{out}");
    assert!(
        out.contains("release"),
        "`orders show` says release works: {out}"
    );
    let (ok, out) = w.cli(&["orders", "release", &held_by_cli]);
    assert!(ok, "{out}");
    w.shipped(&held_by_cli).await;

    // --- A failed workflow: run it again from a step (CLI), or move it to
    // another workflow (API). Resume is refused: nothing failed to re-run.
    let failed = w.create(2).await;
    let moved = w.create(2).await;
    for id in [&failed, &moved] {
        let o = w
            .until(id, "failed", |o| o["instance_state"] == "failed")
            .await;
        assert!(allowed(&o, "run_from"), "{o}");
        let steps = offer(&o, "run_from")["steps"].to_string();
        assert!(steps.contains("reserve"), "{steps}");
        assert!(allowed(&o, "move"), "{o}");
        let to = offer(&o, "move")["workflows"].to_string();
        assert!(to.contains("alt@"), "{to}");
        assert!(
            !to.contains("dead_ends@"),
            "not to the version it runs: {to}"
        );
    }
    let (ok, out) = w.cli(&["orders", "run-from", &failed, "nowhere"]);
    assert!(!ok, "an unknown step is refused: {out}");
    assert!(out.contains("no step"), "{out}");
    let (ok, out) = w.cli(&["orders", "run-from", &failed, "reserve"]);
    assert!(ok, "{out}");
    w.shipped(&failed).await;

    let (s, v) = w
        .act(&moved, "move", json!({"workflow": "alt", "step": "refuse"}))
        .await;
    assert_eq!(s, 400, "alt has no step `refuse`: {v}");
    let (s, v) = w
        .act(&moved, "move", json!({"workflow": "dead_ends"}))
        .await;
    assert_eq!(s, 400, "not to the version it runs: {v}");
    // Without a step, a finished workflow's order starts the new one from
    // its first step.
    let (s, v) = w.act(&moved, "move", json!({"workflow": "alt"})).await;
    assert_eq!(s, 202, "{v}");
    w.shipped(&moved).await;
    let o = w.order(&moved).await;
    assert!(o["workflow"].as_str().unwrap().starts_with("alt@"), "{o}");

    // Four labels bought, one per order, none wasted.
    let labels = get_json(&w.c, &format!("{}/sim/labels/ledger", w.sim))
        .await
        .1;
    assert_eq!(
        (labels["bought"].as_u64(), labels["voided"].as_u64()),
        (Some(4), Some(0)),
        "{labels}"
    );
    let s = get_json(&w.c, &format!("{}/api/v1/inventory/{}", w.base, w.sku))
        .await
        .1;
    // Six units shipped (1 + 1 + 2 + 2): each reserved once and
    // committed, nothing left reserved by the runs that failed.
    assert_eq!(
        (s["on_hand"].as_u64(), s["reserved"].as_u64()),
        (Some(14), Some(0)),
        "{s}"
    );
    w.daemon.shutdown().await;
    w.rig.sim.stop().await;
}

#[actix_rt::test]
async fn an_unanswered_approval_holds_the_order_with_one_alert_and_cancels_nothing() {
    let inbox = Inbox::start();
    let (clock, control) = common::manual_clock();
    let w = world("unanswered", clock, Some(&inbox)).await;
    let id = w.create(1).await;
    w.until(&id, "waiting for approval", |o| {
        o["waiting"]["approval"].is_string()
    })
    .await;
    let overdue = |inbox: &Inbox| {
        inbox
            .delivered()
            .into_iter()
            .filter(|m| m.to_string().contains("approval_overdue"))
            .collect::<Vec<_>>()
    };
    // The hour passes, and then a day: one alert, with the ship-by time.
    control.advance(Duration::from_secs(3600 + 60));
    let alerts = eventually(Duration::from_secs(30), "the alert", || {
        let a = overdue(&inbox);
        async move { (!a.is_empty()).then_some(a) }
    })
    .await;
    assert!(alerts[0].to_string().contains("ship by"), "{:?}", alerts);
    control.advance(Duration::from_secs(24 * 3600));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(overdue(&inbox).len(), 1, "one alert, not one per check");
    let o = w.order(&id).await;
    assert_eq!(o["lifecycle"], "on_hold", "{o}");
    assert!(o["waiting"]["approval"].is_string(), "still asking: {o}");
    assert!(allowed(&o, "approve") && allowed(&o, "reject"), "{o}");
    assert!(
        !w.ledger_has(&id, "cancel").await,
        "nothing cancelled on TikTok"
    );
    let m = common::metric(&w.c, &w.base, "orderflow_approvals_overdue_total", "").await;
    assert_eq!(m, 1.0);
    // A late answer still ships it.
    let (s, v) = w.act(&id, "approve", json!({"by": "ana"})).await;
    assert_eq!(s, 202, "{v}");
    w.shipped(&id).await;
    w.daemon.shutdown().await;
    w.rig.sim.stop().await;
}

/// Reserve and buy a label, then ask a person: an order stopped with its
/// stock and label held. A rejection holds it (`end: held`), still holding
/// both, for a person to cancel or release.
const SECOND_LOOK: &str = concat!(
    r#"
name: second_look
trigger:
  on: AWAITING_SHIPMENT
steps:"#,
    reserve_and_label!(),
    r#"
  - id: look
    approval:
      message: "ship ${{ order.id }}?"
      timeout: 1h
      on_reject: rejected"#,
    ship_and_commit!(),
    r#"
  - id: rejected
    call: order.hold
    with:
      reason: "a second look said no"
  - id: rejected_end
    end: held
    release: mark_shipped
"#
);

/// Every intervention the view allows names what it will do: a summary
/// (its `why`) and the words of the button that confirms it.
fn every_offer_says_what_it_does(o: &Value) {
    for x in o["interventions"].as_array().unwrap() {
        if x["allowed"] != true {
            assert!(
                !x["why"].as_str().unwrap_or_default().is_empty(),
                "refused without a reason: {x}"
            );
            assert!(x["consequence"].is_null(), "a refused offer promises: {x}");
            continue;
        }
        let c = &x["consequence"];
        let summary = c["summary"].as_str().unwrap_or_default();
        assert!(!summary.is_empty(), "no consequence: {x}");
        assert!(!c["confirm"].as_str().unwrap_or_default().is_empty(), "{x}");
        assert_eq!(x["why"].as_str(), Some(summary), "{x}");
    }
}

/// A refusal: 409, with the reason the order view gives.
async fn refused(w: &World, id: &str, action: &str, body: Value) -> Value {
    let o = w.order(id).await;
    assert!(!allowed(&o, action), "{action} offered: {o}");
    let why = offer(&o, action)["why"].as_str().unwrap().to_string();
    let (s, v) = w.act(id, action, body).await;
    assert_eq!(s, 409, "{action} on {id}: {v}");
    assert_eq!(v["reason"].as_str(), Some(why.as_str()), "{v}");
    assert!(v["error"].as_str().unwrap().contains(&why), "{v}");
    assert_eq!(v["action"], action, "{v}");
    v
}

#[actix_rt::test]
async fn interventions_say_what_they_do_and_refuse_what_they_cannot() {
    let w = world_on(
        "say-what",
        Clock::system(),
        None,
        ("second_look.yaml", SECOND_LOOK),
    )
    .await;
    let waiting = |o: &Value| o["waiting"]["approval"].is_string();

    // --- An order stopped for approval, its stock and label held: the
    // cancel offer names both, and that TikTok is told.
    let shipped = w.create(1).await;
    let rejected = w.create(1).await;
    for id in [&shipped, &rejected] {
        let o = w.until(id, "waiting for approval", waiting).await;
        every_offer_says_what_it_does(&o);
        let c = &offer(&o, "cancel")["consequence"];
        assert_eq!(c["confirm"], "Cancel order on TikTok", "{o}");
        assert!(
            c["tiktok"].as_str().is_some_and(|t| t.contains("TikTok")),
            "{c}"
        );
        let releases = c["releases"].to_string();
        assert!(
            releases.contains(&format!("1 × {}", w.sku)) && releases.contains("reserve"),
            "{c}"
        );
        assert_eq!(c["voids"].as_array().map(Vec::len), Some(1), "{c}");
        assert!(c["voids"][0].as_str().unwrap().contains("buy_label"), "{c}");
    }

    // --- An operator's hold on it: Approve is refused, naming the hold
    // and offering Release; released, the approval goes through.
    let (s, v) = w.act(&shipped, "hold", json!({"reason": "checking"})).await;
    assert_eq!(s, 202, "{v}");
    let o = w
        .until(&shipped, "held by an operator", |o| {
            allowed(o, "release") && !allowed(o, "approve")
        })
        .await;
    every_offer_says_what_it_does(&o);
    let release = offer(&o, "release")["why"].as_str().unwrap().to_string();
    assert!(
        release.contains("waiting for approval at look"),
        "{release}"
    );
    let v = refused(&w, &shipped, "approve", json!({"by": "ana"})).await;
    assert!(v["reason"].as_str().unwrap().contains("held"), "{v}");
    assert!(
        v["instead"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "release"),
        "{v}"
    );
    let (s, v) = w.act(&shipped, "release", json!({})).await;
    assert_eq!(s, 202, "{v}");
    w.until(&shipped, "approvable again", |o| allowed(o, "approve"))
        .await;
    let (s, v) = w.act(&shipped, "approve", json!({"by": "ana"})).await;
    assert_eq!(s, 202, "{v}");
    w.shipped(&shipped).await;

    // --- Shipped: Hold and Cancel are refused with the reason, and so
    // they are once delivered; nothing reaches TikTok.
    let o = w.order(&shipped).await;
    every_offer_says_what_it_does(&o);
    let v = refused(&w, &shipped, "hold", json!({})).await;
    assert!(v["reason"].as_str().unwrap().contains("shipped"), "{v}");
    refused(
        &w,
        &shipped,
        "cancel",
        json!({"cancel_reason": "out_of_stock"}),
    )
    .await;
    let (s, v) = post_json(
        &w.c,
        &format!("{}/sim/carrier", w.sim),
        &json!({"order_ids": [shipped], "to": "DELIVERED"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let o = w
        .until(&shipped, "delivered", |o| o["lifecycle"] == "delivered")
        .await;
    every_offer_says_what_it_does(&o);
    let v = refused(&w, &shipped, "cancel", json!({})).await;
    assert!(v["reason"].as_str().unwrap().contains("shipped"), "{v}");
    refused(&w, &shipped, "hold", json!({})).await;
    assert!(
        !w.ledger_has(&shipped, "cancel").await,
        "TikTok told nothing"
    );
    assert_eq!(w.order(&shipped).await["lifecycle"], "delivered");

    // --- Rejected, the workflow ends held with the stock and the label
    // still held: cancel does what it named (stock released, label
    // voided, TikTok told).
    let (s, v) = w.act(&rejected, "reject", json!({"by": "ana"})).await;
    assert_eq!(s, 202, "{v}");
    let o = w
        .until(&rejected, "held by its workflow", |o| {
            o["instance_state"] == "completed:held"
        })
        .await;
    every_offer_says_what_it_does(&o);
    let c = offer(&o, "cancel")["consequence"].clone();
    assert_eq!(c["confirm"], "Cancel order on TikTok", "{c}");
    assert_eq!(
        (
            c["releases"].as_array().map(Vec::len),
            c["voids"].as_array().map(Vec::len)
        ),
        (Some(1), Some(1)),
        "{c}"
    );
    let (s, v) = w
        .act(
            &rejected,
            "cancel",
            json!({"reason": "a second look", "cancel_reason": "pricing_error"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    w.until(&rejected, "cancelled, its workflow undone", |o| {
        o["lifecycle"] == "cancelled"
            && o["instance_state"]
                .as_str()
                .is_some_and(|s| s.starts_with("cancelled"))
    })
    .await;
    assert!(w.ledger_has(&rejected, "cancel").await, "TikTok told");
    let labels = eventually(Duration::from_secs(20), "the label voided", || {
        let (c, u) = (w.c.clone(), format!("{}/sim/labels/ledger", w.sim));
        async move {
            let l = get_json(&c, &u).await.1;
            (l["voided"].as_u64() == Some(1)).then_some(l)
        }
    })
    .await;
    assert_eq!(labels["bought"].as_u64(), Some(2), "{labels}");
    let s = get_json(&w.c, &format!("{}/api/v1/inventory/{}", w.base, w.sku))
        .await
        .1;
    assert_eq!(
        (s["on_hand"].as_u64(), s["reserved"].as_u64()),
        (Some(19), Some(0)),
        "one shipped, the cancelled one's unit released: {s}"
    );
    w.daemon.shutdown().await;
    w.rig.sim.stop().await;
}
