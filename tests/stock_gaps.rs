//! Gaps of ours never hurt a buyer: a SKU mapped to no item, stock
//! recorded without a warehouse, an order waiting for stock. The real
//! daemon binary against the simulator over HTTP, with the bundled
//! `standard` workflow: such orders are held with the reason and one alert,
//! never cancelled on TikTok, and move on by themselves when stock arrives
//! (set through the API or imported from CSV, oldest ship-by first) or the
//! SKU is mapped. And the seller's items: multipacks and bundles take the
//! right units all or nothing, one item sold through two shops' listings
//! is one pool, and a large catalogue sync never delays order calls.

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
    /// The simulator's shops: (id, cipher).
    shops: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    rig_with(1, 1000, json!({})).await
}

/// A rig whose daemon runs `shops` simulated shops at `qps` each, after
/// `skus` was posted to the simulator's `/sim/skus` (its catalogue).
async fn rig_with(n_shops: u32, qps: u32, skus: Value) -> Rig {
    let listen = free_addr();
    let (sim, shops) = start_simulator_thread(SimulatorArgs {
        app_key: "gap-app-key".into(),
        app_secret: "gap-app-secret".into(),
        access_token: "gap-access-token".into(),
        webhook_url: Some(format!("http://{listen}/webhooks/tiktok")),
        buyer_cancel_rate: 0.0,
        manual_carrier: true,
        shops: n_shops,
        qps: 10_000,
        ..Default::default()
    });
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (st, v) = post_json(&c, &format!("{sim}/sim/skus"), &skus).await;
    assert_eq!(st, 200, "{v}");
    let dir = tempfile::tempdir().unwrap();
    let creator = Inbox::start();
    let wf = standard_workflows(dir.path());
    // The other shops of the same seller: same tokens, their own cipher.
    let more: String = shops[1..]
        .iter()
        .map(|(id, cipher)| {
            format!("[[tiktok.shops]]\nid = \"{id}\"\ncipher = \"{cipher}\"\naccess_token = \"gap-access-token\"\nrefresh_token = \"sim-refresh-token\"\nqps = {qps}.0\n")
        })
        .collect();
    let config = sim_daemon_config(
        dir.path(),
        &sim,
        &shops[0],
        ("gap-app-key", "gap-app-secret", "gap-access-token"),
        &format!(
            "[sync]\npoll_interval = \"1s\"\n[notify]\ndefault_channel = \"creator\"\n[notify.channels]\ncreator = \"{}\"\n{more}",
            creator.url()
        ),
    );
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "qps = 1000.0",
        &format!("qps = {qps}.0"),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start_with(
        &listen,
        Some(&config),
        &dir.path().join("data"),
        &wf,
        &dir.path().join("daemon.log"),
        &[],
    );
    wait_ready(&c, &daemon.base).await;
    let first = common::sim_first_sku(&c, &sim).await;
    Rig {
        sim,
        daemon,
        creator,
        c,
        first,
        shops,
        _dir: dir,
    }
}

impl Rig {
    /// Runs the real CLI against the daemon; its stdout.
    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(common::bin())
            .args(["--url", &self.daemon.base])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "orderflow {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn set_stock(&self, item: &str, on_hand: u32) {
        let (st, v) = post_json(
            &self.c,
            &format!("{}/api/v1/inventory/{item}", self.daemon.base),
            &json!({ "on_hand": on_hand }),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }

    /// Posts a CSV to `/api/v1/{what}/import`; it must be taken.
    async fn import(&self, what: &str, csv: &str) {
        let url = format!("{}/api/v1/{what}/import", self.daemon.base);
        let (st, v) = common::post_text(&self.c, &url, csv).await;
        assert_eq!(st, 200, "{v}");
    }

    async fn stock(&self, item: &str) -> Value {
        get_json(
            &self.c,
            &format!("{}/api/v1/inventory/{item}", self.daemon.base),
        )
        .await
        .1
    }

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
    r.import("inventory", &csv).await;
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
    r.import("inventory", &csv).await;
    r.shipped(&late).await;
    assert_eq!(r.cancels_on_tiktok().await, 0);
    for id in [&first, &urgent, &late] {
        assert!(
            !r.audit_text(id).await.contains("\"operator\""),
            "no operator touched {id}"
        );
    }
}

/// The ledger's last inventory quantity TikTok holds for `sku` in `shop`
/// (None: never pushed), and how many pushes of it there were.
async fn tiktok_quantity(r: &Rig, shop: &str, sku: &str) -> (Option<i64>, usize) {
    let (_, l) = get_json(
        &r.c,
        &format!("{}/sim/ledger?action=inventory_update", r.sim),
    )
    .await;
    let pushes: Vec<&Value> = l["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["shop_id"] == shop && e["sku_id"] == sku && e["ok"] == true)
        .collect();
    let last = pushes.last().and_then(|e| {
        e["detail"]
            .as_str()
            .and_then(|d| d.strip_prefix("quantity "))
            .and_then(|q| q.parse().ok())
    });
    (last, pushes.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_sku_is_listed_and_mapping_it_ships_the_held_order() {
    // A listing whose seller set no seller SKU: nothing can map it but a
    // person.
    let sku = "1739000000000000101";
    let r = rig_with(
        1,
        1000,
        json!({"skus": [{"id": sku, "product_id": "1739100000000000101", "product_name": "Enamel Mug", "sku_name": "Blue"}]}),
    )
    .await;
    r.set_stock("MUG-BLUE", 0).await;
    let id = r.order_of(sku, 1, 3 * 86_400).await;
    r.held_for_stock(&id).await;
    let audit = r.audit_text(&id).await;
    assert!(
        audit.contains(&format!("SKU {sku} (Enamel Mug)"))
            && audit.contains("is not mapped to stock"),
        "{audit}"
    );
    // Listed as unmapped, with its name and the order held for it; the
    // gauge the alert watches says 1.
    let listed = r.cli(&["mappings", "unmapped"]);
    assert!(
        listed.contains(sku) && listed.contains("Enamel Mug"),
        "{listed}"
    );
    let (_, u) = get_json(&r.c, &format!("{}/api/v1/mappings/unmapped", r.daemon.base)).await;
    let row = u["unmapped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["sku_id"] == sku)
        .cloned()
        .unwrap_or_else(|| panic!("{u}"));
    assert_eq!(row["orders_waiting"], 1, "{row}");
    assert_eq!(
        common::metric(
            &r.c,
            &r.daemon.base,
            "orderflow_inventory_unmapped_skus",
            ""
        )
        .await,
        1.0
    );
    // One alert; TikTok never told to cancel.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alerts = r
        .creator
        .delivered()
        .into_iter()
        .filter(|a| a["text"].as_str().is_some_and(|t| t.contains(&id)))
        .count();
    assert_eq!(alerts, 1);
    assert_eq!(r.cancels_on_tiktok().await, 0);

    // The seller maps it with the CLI, to an item with no stock yet: the
    // order keeps waiting; the stock arriving ships it, by itself.
    let out = r.cli(&["mappings", "set", sku, "MUG-BLUE"]);
    assert!(out.contains("MUG-BLUE"), "{out}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.order(&id).await["step"], "wait_restock");
    r.set_stock("MUG-BLUE", 5).await;
    r.shipped(&id).await;
    let s = r.stock("MUG-BLUE").await;
    assert_eq!(
        (s["on_hand"].as_u64(), s["reserved"].as_u64()),
        (Some(4), Some(0)),
        "{s}"
    );
    assert!(!r.audit_text(&id).await.contains("\"operator\""));
    assert_eq!(r.cancels_on_tiktok().await, 0);
    assert_eq!(
        common::metric(
            &r.c,
            &r.daemon.base,
            "orderflow_inventory_unmapped_skus",
            ""
        )
        .await,
        0.0
    );
    let (_, u) = get_json(&r.c, &format!("{}/api/v1/mappings/unmapped", r.daemon.base)).await;
    assert!(!u.to_string().contains(sku), "{u}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipacks_and_bundles_take_the_right_units_all_or_nothing() {
    let r = rig_with(
        1,
        1000,
        json!({"skus": [
            {"id": "1739000000000000201", "product_id": "1739100000000000201", "product_name": "Cup 3-pack", "seller_sku": "CUP-3PK"},
            {"id": "1739000000000000202", "product_id": "1739100000000000202", "product_name": "Cup with lid", "seller_sku": "CUP-LID"},
            {"id": "1739000000000000203", "product_id": "1739100000000000203", "product_name": "Spoon", "seller_sku": "SPOON"},
            {"id": "1739000000000000204", "product_id": "1739100000000000204", "product_name": "Breakfast set", "combined": [{"sku_id": "1739000000000000203", "quantity": 2}]}
        ]}),
    )
    .await;
    let (multipack, bundle, spoon_set) = (
        "1739000000000000201",
        "1739000000000000202",
        "1739000000000000204",
    );
    r.set_stock("CUP", 4).await;
    r.set_stock("LID", 0).await;
    r.set_stock("SPOON", 2).await;
    // The multipack takes 3 cups; the bundle a cup and a lid (CSV).
    let csv = format!("sku_id,item,units\n{multipack},CUP,3\n{bundle},CUP,1\n{bundle},LID,1\n");
    r.import("mappings", &csv).await;

    let mp = r.order_of(multipack, 1, 3 * 86_400).await;
    r.shipped(&mp).await;
    assert_eq!(r.stock("CUP").await["on_hand"], 1);

    // No lid: the bundle takes nothing, not even its cup.
    let bd = r.order_of(bundle, 1, 3 * 86_400).await;
    r.held_for_stock(&bd).await;
    let cup = r.stock("CUP").await;
    assert_eq!(
        (cup["on_hand"].as_u64(), cup["available"].as_u64()),
        (Some(1), Some(1)),
        "{cup}"
    );
    assert!(r.audit_text(&bd).await.contains("out of stock: item LID"));

    // A second multipack needs 3 cups, 1 is there: held, nothing taken.
    let mp2 = r.order_of(multipack, 1, 3 * 86_400).await;
    r.held_for_stock(&mp2).await;
    assert_eq!(r.stock("CUP").await["available"], 1);

    // TikTok's virtual bundle: its order line names 2 of the spoon SKU,
    // whose seller SKU is the item SPOON.
    let vb = r.order_of(spoon_set, 1, 3 * 86_400).await;
    r.shipped(&vb).await;
    // The catalogue knows it as a virtual bundle: it needs no mapping and
    // is never listed as unmapped.
    common::eventually(
        Duration::from_secs(20),
        "the bundle in the catalogue",
        || async {
            let (st, v) = get_json(
                &r.c,
                &format!("{}/api/v1/catalogue/{spoon_set}", r.daemon.base),
            )
            .await;
            (st == 200 && v["bundle"].as_array().is_some_and(|b| !b.is_empty())).then_some(())
        },
    )
    .await;
    let (_, u) = get_json(&r.c, &format!("{}/api/v1/mappings/unmapped", r.daemon.base)).await;
    assert!(!u.to_string().contains(spoon_set), "{u}");
    assert_eq!(r.stock("SPOON").await["on_hand"], 0);
    let o = r.order(&vb).await;
    assert!(o.to_string().contains("1739000000000000203"), "{o}");

    // A lid arrives: the bundle goes on and takes the last cup; the
    // second multipack still waits.
    r.set_stock("LID", 1).await;
    r.shipped(&bd).await;
    let (cup, lid) = (r.stock("CUP").await, r.stock("LID").await);
    assert_eq!(
        (cup["on_hand"].as_u64(), lid["on_hand"].as_u64()),
        (Some(0), Some(0))
    );
    let o = r.order(&mp2).await;
    assert_eq!(o["step"], "wait_restock", "{o}");
    assert_eq!(r.cancels_on_tiktok().await, 0);

    // The multipack's TikTok quantity is cups ÷ 3, the bundle's the least
    // of its items: both pushed as 0 now.
    let shop = &r.shops[0].0;
    common::eventually(Duration::from_secs(20), "quantities pushed", || async {
        let (a, _) = tiktok_quantity(&r, shop, multipack).await;
        let (b, _) = tiktok_quantity(&r, shop, bundle).await;
        (a == Some(0) && b == Some(0)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_item_sold_in_two_shops_ships_exactly_its_stock_to_1000_orders() {
    // Two listings, one per shop, of the same hoodie (seller SKU HOODIE).
    let r = rig_with(2, 1000, json!({})).await;
    let (shop_a, shop_b) = (r.shops[0].0.clone(), r.shops[1].0.clone());
    let (st, v) = post_json(
        &r.c,
        &format!("{}/sim/skus", r.sim),
        &json!({"skus": [
            {"id": "1739000000000000301", "product_id": "1739100000000000301", "product_name": "Hoodie", "seller_sku": "HOODIE", "shops": [shop_a]},
            {"id": "1739000000000000302", "product_id": "1739100000000000302", "product_name": "Hoodie (creator edition)", "seller_sku": "HOODIE", "shops": [shop_b]}
        ]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (la, lb) = ("1739000000000000301", "1739000000000000302");
    r.set_stock("HOODIE", 100).await;
    // 500 orders in each shop at once.
    let mut ids = Vec::new();
    for (shop, sku) in [(&shop_a, la), (&shop_b, lb)] {
        ids.extend(
            common::sim_create(
                &r.c,
                &r.sim,
                json!({"shop_id": shop, "items": [{"sku_id": sku}], "status": "AWAITING_SHIPMENT", "count": 500, "ship_by_in_secs": 3 * 86_400}),
            )
            .await,
        );
    }
    assert_eq!(ids.len(), 1000);
    let (shipped, held) = common::eventually(
        Duration::from_secs(240),
        "every order shipped or held",
        || async {
            let ships = common::ships_per_order(&r.c, &r.sim).await;
            let (_, h) = get_json(
                &r.c,
                &format!("{}/api/v1/orders?state=on_hold&limit=1000", r.daemon.base),
            )
            .await;
            let held = h["orders"].as_array().map_or(0, |a| a.len());
            (ships.len() + held == 1000).then_some((ships, held))
        },
    )
    .await;
    assert_eq!(shipped.len(), 100, "exactly the stock ships");
    assert!(shipped.values().all(|n| *n == 1), "each once: {shipped:?}");
    assert_eq!(held, 900);
    let s = r.stock("HOODIE").await;
    assert_eq!(
        (s["on_hand"].as_u64(), s["reserved"].as_u64()),
        (Some(0), Some(0)),
        "{s}"
    );
    assert_eq!(r.cancels_on_tiktok().await, 0);
    // Both shops' listings end at 0 on TikTok, each pushed to its own shop
    // (the simulator knows the shop by the cipher the call was signed for).
    common::eventually(
        Duration::from_secs(30),
        "both listings pushed as 0",
        || async {
            let a = tiktok_quantity(&r, &shop_a, la).await;
            let b = tiktok_quantity(&r, &shop_b, lb).await;
            (a.0 == Some(0) && b.0 == Some(0)).then_some(())
        },
    )
    .await;
    // Neither shop was sent the other's listing.
    assert_eq!(tiktok_quantity(&r, &shop_a, lb).await.1, 0);
    assert_eq!(tiktok_quantity(&r, &shop_b, la).await.1, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5000_sku_catalogue_sync_keeps_the_rate_limit_and_never_delays_order_calls() {
    // 500 products of 5 SKUs, listed by both shops: 5,000 SKU listings,
    // every tenth without a seller SKU. The shops run at 25 calls/s.
    let qps = 25;
    let r = rig_with(
        2,
        qps,
        json!({"generate": {"products": 500, "skus_per_product": 5}}),
    )
    .await;
    let sku = r.first.1.clone();
    r.set_stock(&sku, 1000).await;
    // Orders arrive while the sync runs (it started with the daemon).
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(r.order_of(&sku, 1, 3 * 86_400).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for id in &ids {
        r.shipped(id).await;
    }
    let synced = common::eventually(
        Duration::from_secs(240),
        "both catalogues synced",
        || async {
            let n = common::metric(
                &r.c,
                &r.daemon.base,
                "orderflow_catalogue_syncs_total",
                "outcome=\"ok\"",
            )
            .await;
            (n >= 2.0).then_some(n)
        },
    )
    .await;
    assert!(synced >= 2.0);
    // The last generated SKU, and one without a seller SKU, are in it.
    for (sku, seller) in [
        ("1732000000000500005", "GEN-00500-05"),
        ("1732000000000006005", ""),
    ] {
        let (st, v) = get_json(&r.c, &format!("{}/api/v1/catalogue/{sku}", r.daemon.base)).await;
        assert_eq!(st, 200, "{sku}: {v}");
        assert_eq!(v["seller_sku"], seller, "{v}");
    }
    // Within each shop's rate limit, per TikTok's own count.
    let (_, stats) = get_json(&r.c, &format!("{}/sim/stats", r.sim)).await;
    for (shop, _) in &r.shops {
        let max = stats["shops"][shop]["max_per_second"].as_u64().unwrap();
        assert!(
            max <= u64::from(qps) + 1,
            "shop {shop}: {max}/s against a limit of {qps}/s"
        );
    }
    // The order calls' queue wait, against the catalogue's.
    let m = |class: &'static str, what: &'static str| {
        let r = &r;
        async move {
            common::metric(
                &r.c,
                &r.daemon.base,
                &format!("orderflow_gateway_queue_wait_seconds_{what}"),
                &format!("class=\"{class}\""),
            )
            .await
        }
    };
    let mut line = String::new();
    for class in ["write", "sync", "background"] {
        let (n, sum) = (m(class, "count").await, m(class, "sum").await);
        line += &format!(
            "{class}: {n} calls, mean wait {:.1} ms; ",
            if n > 0.0 { 1000.0 * sum / n } else { 0.0 }
        );
    }
    println!("queue wait during a 5,000-SKU sync at {qps}/s per shop: {line}");
    let writes = m("write", "count").await;
    assert!(
        writes >= 10.0,
        "the orders' writes went through the gateway"
    );
    // Every order call started within a second of being asked (its
    // priority comes before the sync's; a second is ample for one
    // limiter slot on a loaded machine).
    for class in ["write", "sync"] {
        let (n, fast) = (
            m(class, "count").await,
            common::metric(
                &r.c,
                &r.daemon.base,
                "orderflow_gateway_queue_wait_seconds_bucket",
                &format!("class=\"{class}\",le=\"1\""),
            )
            .await,
        );
        assert_eq!(fast, n, "{class} calls waiting over a second: {line}");
    }
}
