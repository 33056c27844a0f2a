//! Reservations under contention, across SKUs, replayed, settled, imported
//! and reopened — against a real sled database in a temporary directory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use orderflow::inventory::{
    Error, Inventory, InventoryConfig, InventoryHandle, LowStock, ReservationState, SkuStock,
};

fn open(dir: &tempfile::TempDir) -> (sled::Db, InventoryHandle) {
    // sled's background flusher lets go of the directory's lock a moment
    // after the last handle is dropped (seen once in CI): a reopen right
    // after a drop waits for it.
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    let db = loop {
        match sled::open(dir.path()) {
            Ok(db) => break db,
            // The lock is an I/O error (EWOULDBLOCK inside an `Other`).
            Err(sled::Error::Io(_)) if Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("sled opens: {e:?}"),
        }
    };
    let inv = Inventory::open(&db, InventoryConfig::default()).expect("inventory opens");
    (db, inv)
}

fn units(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect()
}

/// The invariants every observable state must satisfy.
fn check(s: &SkuStock) {
    for w in &s.warehouses {
        assert!(
            w.reserved <= w.on_hand,
            "{}: reserved {} > on hand {}",
            s.sku,
            w.reserved,
            w.on_hand
        );
        assert_eq!(w.available, w.on_hand - w.reserved);
    }
    assert_eq!(s.available, s.on_hand - s.reserved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_orders_take_exactly_the_hundred_units() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, inv) = open(&dir);
    inv.set("SKU-A", None, 100).await.unwrap();

    // A checker reads the SKU continuously while the orders race.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let checker = {
        let (inv, stop, reads) = (inv.clone(), stop.clone(), reads.clone());
        tokio::spawn(async move {
            let mut last_reserved = 0;
            while !stop.load(Ordering::Relaxed) {
                let s = inv.get("SKU-A").await.unwrap().unwrap();
                check(&s);
                assert_eq!(s.on_hand, 100, "nothing commits during the race");
                assert!(s.reserved >= last_reserved, "reserved never goes back");
                last_reserved = s.reserved;
                reads.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };

    let started = Instant::now();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let inv = inv.clone();
            tokio::spawn(async move {
                inv.reserve(&format!("order-{i}"), &units(&[("SKU-A", 1)]), None)
                    .await
            })
        })
        .collect();
    let (mut ok, mut out) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                assert_eq!(r.state, ReservationState::Held);
                assert_eq!(r.total_units(), 1);
                ok += 1;
            }
            Err(Error::OutOfStock {
                sku,
                requested,
                available,
            }) => {
                assert_eq!((sku.as_str(), requested, available), ("SKU-A", 1, 0));
                out += 1;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
        // After every join the invariants hold.
        check(&inv.get("SKU-A").await.unwrap().unwrap());
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    checker.await.unwrap();
    println!(
        "1000 concurrent reservations in {elapsed:?}; checker read the SKU {} times",
        reads.load(Ordering::Relaxed)
    );
    assert_eq!((ok, out), (100, 900));
    let s = inv.get("SKU-A").await.unwrap().unwrap();
    assert_eq!((s.on_hand, s.reserved, s.available), (100, 100, 0));

    // Settle them concurrently, each twice (replays): 50 ship, 50 cancel.
    let mut held = Vec::new();
    for i in 0..1000 {
        if let Some(r) = inv.reservation(&format!("order-{i}")).await.unwrap() {
            held.push(r.order_id);
        }
    }
    assert_eq!(held.len(), 100);
    let tasks: Vec<_> = held
        .iter()
        .enumerate()
        .flat_map(|(i, id)| [(i, id.clone()), (i, id.clone())])
        .map(|(i, id)| {
            let inv = inv.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    inv.commit(&id).await
                } else {
                    inv.release(&id).await
                }
            })
        })
        .collect();
    let mut changed = 0;
    for t in tasks {
        changed += usize::from(t.await.unwrap().unwrap());
        check(&inv.get("SKU-A").await.unwrap().unwrap());
    }
    assert_eq!(changed, 100, "each settle took effect exactly once");
    let s = inv.get("SKU-A").await.unwrap().unwrap();
    assert_eq!((s.on_hand, s.reserved, s.available), (50, 0, 50));
}

#[tokio::test]
async fn all_or_nothing_across_skus_and_idempotent_per_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, inv) = open(&dir);
    inv.set("A", None, 5).await.unwrap();
    inv.set("B", None, 1).await.unwrap();

    // B is short: nothing is reserved, not even A.
    let e = inv
        .reserve("o1", &units(&[("A", 2), ("B", 2)]), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::OutOfStock { sku, requested: 2, available: 1 } if sku == "B"),
        "{e}"
    );
    assert_eq!(e.kind(), "out_of_stock");
    assert_eq!(inv.get("A").await.unwrap().unwrap().reserved, 0);
    assert_eq!(inv.get("B").await.unwrap().unwrap().reserved, 0);
    assert!(inv.reservation("o1").await.unwrap().is_none());

    // A SKU inventory has no record of is not "out of stock" (the buyer did
    // nothing wrong): its own kind, and nothing is reserved.
    let e = inv
        .reserve("o1", &units(&[("A", 1), ("NOPE", 1)]), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::UnmappedSku { sku } if sku == "NOPE"),
        "{e}"
    );
    assert_eq!(e.kind(), "unmapped_sku");
    assert!(inv.reservation("o1").await.unwrap().is_none());
    assert_eq!(inv.get("A").await.unwrap().unwrap().reserved, 0);

    let r1 = inv
        .reserve("o1", &units(&[("A", 2), ("B", 1)]), None)
        .await
        .unwrap();
    assert_eq!(r1.units(), units(&[("A", 2), ("B", 1)]));
    // A replay (even with different units) returns the same reservation and
    // takes nothing more.
    let r2 = inv
        .reserve("o1", &units(&[("A", 2), ("B", 1)]), None)
        .await
        .unwrap();
    assert_eq!(r1, r2);
    let r3 = inv.reserve("o1", &units(&[("A", 3)]), None).await.unwrap();
    assert_eq!(r1, r3);
    assert_eq!(inv.get("A").await.unwrap().unwrap().reserved, 2);
    assert_eq!(inv.get("B").await.unwrap().unwrap().available, 0);

    // Commit is idempotent; a replayed reserve after commit returns the
    // committed reservation and takes nothing.
    assert!(inv.commit("o1").await.unwrap());
    assert!(!inv.commit("o1").await.unwrap());
    let after = inv.reserve("o1", &units(&[("A", 2)]), None).await.unwrap();
    assert_eq!(after.state, ReservationState::Committed);
    // Release after commit is a no-op: shipped units do not come back.
    assert!(!inv.release("o1").await.unwrap());
    let a = inv.get("A").await.unwrap().unwrap();
    assert_eq!((a.on_hand, a.reserved, a.available), (3, 0, 3));
    let b = inv.get("B").await.unwrap().unwrap();
    assert_eq!((b.on_hand, b.reserved, b.available), (0, 0, 0));

    // Release arithmetic, release idempotency, and re-reserving afterwards.
    inv.reserve("o2", &units(&[("A", 3)]), None).await.unwrap();
    assert_eq!(inv.get("A").await.unwrap().unwrap().available, 0);
    assert!(inv.release("o2").await.unwrap());
    assert!(!inv.release("o2").await.unwrap());
    assert!(!inv.release("never-reserved").await.unwrap());
    let a = inv.get("A").await.unwrap().unwrap();
    assert_eq!((a.on_hand, a.reserved, a.available), (3, 0, 3));
    assert!(matches!(
        inv.commit("o2").await,
        Err(Error::Released { .. })
    ));
    assert!(matches!(
        inv.commit("never-reserved").await,
        Err(Error::NoReservation(_))
    ));
    let again = inv.reserve("o2", &units(&[("A", 1)]), None).await.unwrap();
    assert_eq!(again.state, ReservationState::Held);
    assert_eq!(inv.get("A").await.unwrap().unwrap().reserved, 1);
}

#[tokio::test]
async fn warehouses_split_and_settle_precisely() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, inv) = open(&dir);
    inv.set("A", Some("W1"), 2).await.unwrap();
    inv.set("A", Some("W2"), 3).await.unwrap();
    // Named warehouse: only its units count.
    let e = inv
        .reserve("o1", &units(&[("A", 3)]), Some("W1"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::OutOfStock { available: 2, .. }));
    // No warehouse: W1 then W2.
    let r = inv.reserve("o1", &units(&[("A", 4)]), None).await.unwrap();
    let got: Vec<_> = r
        .lines
        .iter()
        .map(|l| (l.warehouse.clone().unwrap(), l.units))
        .collect();
    assert_eq!(got, vec![("W1".to_string(), 2), ("W2".to_string(), 2)]);
    inv.reserve("o2", &units(&[("A", 1)]), Some("W2"))
        .await
        .unwrap();
    assert!(inv.commit("o1").await.unwrap());
    let a = inv.get("A").await.unwrap().unwrap();
    let w: Vec<_> = a
        .warehouses
        .iter()
        .map(|w| (w.on_hand, w.reserved))
        .collect();
    assert_eq!(w, vec![(0, 0), (1, 1)]);

    // set/adjust never go below what is reserved.
    let e = inv.set("A", Some("W2"), 0).await.unwrap_err();
    assert!(
        matches!(
            &e,
            Error::BelowReserved {
                on_hand: 0,
                reserved: 1,
                ..
            }
        ),
        "{e}"
    );
    let e = inv.adjust("A", Some("W2"), -1).await.unwrap_err();
    assert!(matches!(e, Error::BelowReserved { .. }));
    let e = inv.adjust("A", Some("W1"), -1).await.unwrap_err();
    assert!(matches!(e, Error::BelowReserved { on_hand: -1, .. }), "{e}");
    let s = inv.adjust("A", Some("W2"), 4).await.unwrap();
    assert_eq!((s.on_hand, s.reserved, s.available), (5, 1, 4));
    assert!(matches!(
        inv.adjust("A", Some("W2"), i64::MAX).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(inv.set("", None, 1).await, Err(Error::Invalid(_))));
    assert!(matches!(
        inv.reserve("o\u{7}", &units(&[("A", 1)]), None).await,
        Err(Error::Invalid(_))
    ));
    let list = inv.list().await.unwrap();
    assert_eq!(list.len(), 1);
    list.iter().for_each(check);
}

#[tokio::test]
async fn survives_reopening_the_database() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (db, inv) = open(&dir);
        inv.set("A", Some("W1"), 10).await.unwrap();
        inv.set_product_id("A", "P-1").await.unwrap();
        inv.reserve("o1", &units(&[("A", 4)]), Some("W1"))
            .await
            .unwrap();
        inv.reserve("o2", &units(&[("A", 1)]), None).await.unwrap();
        inv.commit("o2").await.unwrap();
        drop(inv);
        drop(db);
    }
    let (_db, inv) = open(&dir);
    let a = inv.get("A").await.unwrap().unwrap();
    assert_eq!((a.on_hand, a.reserved, a.available), (9, 4, 5));
    assert_eq!(a.product_id.as_deref(), Some("P-1"));
    let r = inv.reservation("o1").await.unwrap().unwrap();
    assert_eq!(r.state, ReservationState::Held);
    assert_eq!(r.units(), units(&[("A", 4)]));
    assert_eq!(
        inv.reservation("o2").await.unwrap().unwrap().state,
        ReservationState::Committed
    );
    // The replay after the restart is still idempotent.
    let again = inv.reserve("o1", &units(&[("A", 4)]), None).await.unwrap();
    assert_eq!(again, r);
    assert_eq!(inv.get("A").await.unwrap().unwrap().reserved, 4);
}

#[tokio::test]
async fn csv_import_reports_every_problem_with_its_line_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, inv) = open(&dir);
    let good = "sku_id,warehouse_id,on_hand,product_id\nA,W1,10,P1\nA,W2,5,\nB,,7,P2\n";
    let report = inv.import_csv(good).await.unwrap();
    assert_eq!(
        (report.rows, report.skus, report.created, report.products),
        (3, 2, 3, 2)
    );
    let a = inv.get("A").await.unwrap().unwrap();
    assert_eq!((a.on_hand, a.product_id.as_deref()), (15, Some("P1")));
    assert_eq!(inv.get("B").await.unwrap().unwrap().available, 7);

    inv.reserve("o1", &units(&[("A", 8)]), Some("W1"))
        .await
        .unwrap();
    let bad = "sku_id,warehouse_id,on_hand\nA,W1,abc\nA,W2,-3\n,W1,4\nC,W1,1,extra\nC,W1,2\nC,W1,3\nA,W1,2\n";
    let Err(Error::Import(problems)) = inv.import_csv(bad).await else {
        panic!("import must fail")
    };
    let text = problems.join("\n");
    println!("{text}");
    for needle in [
        "line 2: on_hand \"abc\" is not a whole number",
        "line 3: on_hand \"-3\"",
        "line 4: sku_id \"\"",
        "line 5: 4 fields, the header has 3",
        "line 7: SKU C warehouse \"W1\" appears more than once",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // Parse errors stop before the below-reserved check; a file that parses
    // but takes on hand below reservations is refused as a whole too.
    let below = "warehouse_id,sku_id,on_hand\nW2,A,1\nW1,A,2\n";
    let Err(Error::Import(problems)) = inv.import_csv(below).await else {
        panic!("import must fail")
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("line 3: on_hand 2 for SKU A is below the 8 units reserved"),
        "{problems:?}"
    );
    let a = inv.get("A").await.unwrap().unwrap();
    assert_eq!(
        (a.on_hand, a.reserved),
        (15, 8),
        "the valid W2 row was not applied either"
    );
    for text in [
        "",
        "sku,warehouse,qty\n",
        "sku_id,on_hand\nA,1\n",
        "sku_id,warehouse_id,on_hand\n\"A,W1,1\n",
    ] {
        let e = inv.import_csv(text).await.unwrap_err();
        assert!(matches!(e, Error::Import(ref p) if !p.is_empty()), "{e}");
    }
}

#[tokio::test]
async fn low_stock_fires_once_per_crossing() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let inv = Inventory::open(
        &db,
        InventoryConfig {
            low_stock_threshold: Some(3),
            watched_skus: vec!["A".into()],
            ..InventoryConfig::default()
        },
    )
    .unwrap();
    let seen: Arc<parking_lot::Mutex<Vec<LowStock>>> = Arc::default();
    let s2 = seen.clone();
    inv.on_low_stock(Arc::new(move |l| s2.lock().push(l)));
    inv.set("A", None, 5).await.unwrap();
    for i in 0..4 {
        inv.reserve(&format!("o{i}"), &units(&[("A", 1)]), None)
            .await
            .unwrap();
    }
    assert_eq!(
        *seen.lock(),
        vec![LowStock {
            sku: "A".into(),
            available: 3,
            threshold: 3
        }]
    );
    inv.set("A", None, 20).await.unwrap();
    inv.adjust("A", None, -15).await.unwrap();
    assert_eq!(seen.lock().len(), 2);
    assert_eq!(seen.lock()[1].available, 1);
}

#[tokio::test]
async fn an_unknown_warehouse_falls_back_to_the_default_stock() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, inv) = open(&dir);
    // Stock recorded without a warehouse serves an order naming one.
    inv.set("A", None, 2).await.unwrap();
    let r = inv
        .reserve("o1", &units(&[("A", 1)]), Some("W9"))
        .await
        .unwrap();
    assert_eq!(r.lines[0].warehouse, None, "{r:?}");
    // A SKU stocked in one warehouse only: that one.
    inv.set("B", Some("W1"), 2).await.unwrap();
    let r = inv
        .reserve("o2", &units(&[("B", 2)]), Some("W9"))
        .await
        .unwrap();
    assert_eq!(r.lines[0].warehouse.as_deref(), Some("W1"));
    // Several named warehouses, none of them the order's: nothing is
    // guessed (out of stock where the order ships from).
    inv.set("C", Some("W1"), 2).await.unwrap();
    inv.set("C", Some("W2"), 2).await.unwrap();
    let e = inv
        .reserve("o3", &units(&[("C", 1)]), Some("W9"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::OutOfStock { .. }), "{e}");
    // ...unless the configured default warehouse is one of them.
    let dir2 = tempfile::tempdir().unwrap();
    let db2 = sled::open(dir2.path()).unwrap();
    let inv2 = Inventory::open(
        &db2,
        InventoryConfig {
            default_warehouse: Some("W2".into()),
            ..InventoryConfig::default()
        },
    )
    .unwrap();
    inv2.set("C", Some("W1"), 2).await.unwrap();
    inv2.set("C", Some("W2"), 2).await.unwrap();
    let r = inv2
        .reserve("o3", &units(&[("C", 1)]), Some("W9"))
        .await
        .unwrap();
    assert_eq!(r.lines[0].warehouse.as_deref(), Some("W2"));
}

fn demand(sku: &str, seller: &str, n: u32) -> orderflow::order::Demand {
    orderflow::order::Demand {
        sku_id: sku.into(),
        seller_sku: seller.into(),
        product_id: String::new(),
        units: n,
    }
}

fn known(sku: &str, seller: &str) -> orderflow::inventory::KnownSku {
    orderflow::inventory::KnownSku {
        sku_id: sku.into(),
        seller_sku: seller.into(),
        product_id: "P".into(),
        name: String::new(),
        virtual_bundle: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappings_resolve_by_hand_then_own_id_then_seller_sku_and_survive_a_reopen() {
    use orderflow::inventory::Component;
    let dir = tempfile::tempdir().unwrap();
    {
        let (_db, inv) = open(&dir);
        inv.set("CUP", None, 10).await.unwrap();
        inv.set("LID", None, 10).await.unwrap();
        // A SKU whose seller SKU names an item takes it, once seen.
        inv.learn_sku(&known("T1", "CUP"), "shop-a").unwrap();
        assert_eq!(
            inv.mapping("T1").unwrap().unwrap().components[0].item,
            "CUP"
        );
        // An automatic mapping cannot be removed, only replaced by hand...
        assert!(matches!(
            inv.remove_mapping("T1").await,
            Err(Error::Invalid(_))
        ));
        inv.set_mapping(
            "T1",
            &[
                Component {
                    item: "CUP".into(),
                    units: 2,
                },
                Component {
                    item: "LID".into(),
                    units: 1,
                },
            ],
        )
        .await
        .unwrap();
        // ...and a later sighting never overwrites the one set by hand.
        inv.learn_sku(&known("T1", "CUP"), "shop-a").unwrap();
        let m = inv.mapping("T1").unwrap().unwrap();
        assert_eq!(m.components.len(), 2, "{m:?}");
        // A seller SKU that changes moves an automatic mapping with it.
        inv.learn_sku(&known("T2", "CUP"), "shop-a").unwrap();
        inv.learn_sku(&known("T2", "LID"), "shop-a").unwrap();
        assert_eq!(
            inv.mapping("T2").unwrap().unwrap().components[0].item,
            "LID"
        );
        // A seller SKU with a control character maps nothing.
        inv.learn_sku(&known("T3", "CUP\u{0}T9"), "shop-a").unwrap();
        assert!(inv.mapping("T3").unwrap().is_none());
        assert!(inv.mapping("T9").unwrap().is_none());
    }
    // Reopened: the bundle reserves 2 cups and a lid per unit, all or
    // nothing across both items.
    let (_db, inv) = open(&dir);
    let r = inv
        .reserve_demand("o1", &[demand("T1", "", 3)], None)
        .await
        .unwrap();
    assert_eq!(r.units(), units(&[("CUP", 6), ("LID", 3)]));
    let e = inv
        .reserve_demand("o2", &[demand("T1", "", 3)], None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::OutOfStock { sku, .. } if sku == "CUP"),
        "{e}"
    );
    assert_eq!(
        inv.get("LID").await.unwrap().unwrap().available,
        7,
        "nothing taken"
    );
    // Nothing maps a SKU with an unknown seller SKU: our gap.
    let e = inv
        .reserve_demand("o3", &[demand("T4", "NOPE", 1)], None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::UnmappedSku { sku } if sku == "T4"),
        "{e}"
    );
    assert_eq!(inv.sku_available("T1").unwrap(), 2, "4 cups ÷ 2, 7 lids");
}
