//! Gaps of ours never hurt a buyer: a SKU inventory has no record of, stock
//! recorded without a warehouse, an order waiting for stock. The real
//! daemon binary against the simulator over HTTP, with the bundled
//! `standard` workflow: such orders are held with the reason and one alert,
//! never cancelled on TikTok, and move on by themselves when stock arrives
//! (set through the API or imported from CSV), oldest ship-by first.

mod common;

use std::time::Duration;

use common::{
    free_addr, get_json, post_json, sim_daemon_config, standard_workflows, start_simulator_thread,
    wait_ready, Daemon, Inbox,
};
use orderflow::simulator::SimulatorArgs;
use serde_json::{json, Value};

struct Rig {
    sim: String,
    daemon: Daemon,
    creator: Inbox,
    c: reqwest::Client,
    /// (warehouse, sku, product) of the simulator's first shop and SKU.
    first: (String, String, String),
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let listen = free_addr();
    let (sim, shops) = start_simulator_thread(SimulatorArgs {
        app_key: "gap-app-key".into(),
        app_secret: "gap-app-secret".into(),
        access_token: "gap-access-token".into(),
        webhook_url: Some(format!("http://{listen}/webhooks/tiktok")),
        buyer_cancel_rate: 0.0,
        manual_carrier: true,
        shops: 1,
        qps: 10_000,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let creator = Inbox::start();
    let wf = standard_workflows(dir.path());
    let config = sim_daemon_config(
        dir.path(),
        &sim,
        &shops[0],
        ("gap-app-key", "gap-app-secret", "gap-access-token"),
        &format!(
            "[sync]\npoll_interval = \"1s\"\n[notify]\ndefault_channel = \"creator\"\n[notify.channels]\ncreator = \"{}\"\n",
            creator.url()
        ),
    );
    let daemon = Daemon::start_with(
        &listen,
        Some(&config),
        &dir.path().join("data"),
        &wf,
        &dir.path().join("daemon.log"),
        &[],
    );
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_ready(&c, &daemon.base).await;
    let first = common::sim_first_sku(&c, &sim).await;
    Rig {
        sim,
        daemon,
        creator,
        c,
        first,
        _dir: dir,
    }
}

impl Rig {
    async fn order_of(&self, sku: &str, qty: u32, ship_in_s: i64) -> String {
        common::sim_create(
            &self.c,
            &self.sim,
            json!({"items": [{"sku_id": sku, "quantity": qty}], "status": "AWAITING_SHIPMENT", "ship_by_in_secs": ship_in_s}),
        )
        .await
        .remove(0)
    }

    async fn order(&self, id: &str) -> Value {
        get_json(&self.c, &format!("{}/api/v1/orders/{id}", self.daemon.base))
            .await
            .1
    }

    async fn wait_for(&self, id: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        loop {
            let o = self.order(id).await;
            if ok(&o) {
                return o;
            }
            if std::time::Instant::now() >= deadline {
                let wakeups = common::metric(
                    &self.c,
                    &self.daemon.base,
                    "orderflow_inventory_restock_wakeups_total",
                    "",
                )
                .await;
                let log = std::fs::read_to_string(&self.daemon.log).unwrap_or_default();
                panic!(
                    "gave up waiting for {what}: {o}\nrestock wake-ups: {wakeups}\naudit: {}\nlog:\n{}",
                    self.audit_text(id).await,
                    log.lines().filter(|l| !l.contains(" INFO ")).collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn shipped(&self, id: &str) -> Value {
        self.wait_for(id, "the order shipped", |o| o["step"] == "wait_delivery")
            .await
    }

    async fn held_for_stock(&self, id: &str) -> Value {
        self.wait_for(id, "the order held, waiting for stock", |o| {
            o["step"] == "wait_restock" && o["lifecycle"] == "on_hold"
        })
        .await
    }

    async fn cancels_on_tiktok(&self) -> usize {
        let (_, l) = get_json(&self.c, &format!("{}/sim/ledger", self.sim)).await;
        l["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"].as_str().is_some_and(|a| a.contains("cancel")))
            .count()
    }

    async fn audit_text(&self, id: &str) -> String {
        get_json(
            &self.c,
            &format!("{}/api/v1/orders/{id}/audit", self.daemon.base),
        )
        .await
        .1
        .to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_sku_holds_the_order_and_stock_set_later_ships_it() {
    let r = rig().await;
    let (warehouse, sku, _) = r.first.clone();
    // Nothing recorded for the SKU at all: our gap.
    let id = r.order_of(&sku, 1, 3 * 86_400).await;
    let o = r.held_for_stock(&id).await;
    let audit = r.audit_text(&id).await;
    assert!(
        audit.contains(&format!("SKU {sku} (")) && audit.contains("is not mapped to stock"),
        "the hold names the SKU and its product: {audit}"
    );
    assert!(audit.contains("Cotton T-Shirt"), "{audit}");
    assert_eq!(o["lifecycle"], "on_hold", "{o}");
    // One alert, naming the SKU; no cancel on TikTok.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alerts: Vec<Value> = r
        .creator
        .delivered()
        .into_iter()
        .filter(|a| a["text"].as_str().is_some_and(|t| t.contains(&id)))
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0]["text"].as_str().unwrap().contains("not mapped"));
    assert_eq!(r.cancels_on_tiktok().await, 0);

    // The seller records the stock (without naming a warehouse, while the
    // order names one): the order goes on by itself and ships, from the
    // seller's default stock, said in the audit.
    let (st, v) = post_json(
        &r.c,
        &format!("{}/api/v1/inventory/{sku}", r.daemon.base),
        &json!({"on_hand": 5}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    r.shipped(&id).await;
    let audit = r.audit_text(&id).await;
    assert!(
        audit.contains(&format!("(the order names warehouse {warehouse}")),
        "the audit says where the unit came from: {audit}"
    );
    assert_eq!(r.cancels_on_tiktok().await, 0);
    let (_, s) = get_json(&r.c, &format!("{}/api/v1/inventory/{sku}", r.daemon.base)).await;
    assert_eq!(s["on_hand"], 4, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_waiting_for_stock_ship_after_a_csv_import_oldest_ship_by_first() {
    let r = rig().await;
    let (warehouse, sku, product) = r.first.clone();
    common::import_stock(&r.c, &r.daemon.base, &r.first, 1).await;
    // Three orders for one unit each; one unit in stock.
    let first = r.order_of(&sku, 1, 3 * 86_400).await;
    r.shipped(&first).await;
    let late = r.order_of(&sku, 1, 5 * 86_400).await;
    r.held_for_stock(&late).await;
    let urgent = r.order_of(&sku, 1, 2 * 86_400).await;
    r.held_for_stock(&urgent).await;
    assert_eq!(r.cancels_on_tiktok().await, 0);

    // One unit arrives by CSV: the order due first takes it; the other
    // keeps waiting, held.
    let csv = format!("sku_id,warehouse_id,on_hand,product_id\n{sku},{warehouse},1,{product}\n");
    let (st, v) = common::post_text(
        &r.c,
        &format!("{}/api/v1/inventory/import", r.daemon.base),
        &csv,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    r.shipped(&urgent).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let o = r.order(&late).await;
    assert_eq!(
        (o["step"].as_str(), o["lifecycle"].as_str()),
        (Some("wait_restock"), Some("on_hold")),
        "{o}"
    );
    // Another unit: the last one ships too. Nobody touched an order.
    let csv = format!("sku_id,warehouse_id,on_hand,product_id\n{sku},{warehouse},1,{product}\n");
    let (st, _) = common::post_text(
        &r.c,
        &format!("{}/api/v1/inventory/import", r.daemon.base),
        &csv,
    )
    .await;
    assert_eq!(st, 200);
    r.shipped(&late).await;
    assert_eq!(r.cancels_on_tiktok().await, 0);
    for id in [&first, &urgent, &late] {
        assert!(
            !r.audit_text(id).await.contains("\"operator\""),
            "no operator touched {id}"
        );
    }
}
