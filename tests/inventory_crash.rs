//! Durability under SIGKILL: a child process reserves as fast as it can and
//! reports each acknowledged reservation; the parent kills it mid-stream,
//! reopens the database, and finds every acknowledged reservation — and no
//! unit reserved without its reservation record.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use orderflow::inventory::{Inventory, InventoryConfig, ReservationState};

const DIR_VAR: &str = "ORDERFLOW_INVENTORY_CRASH_DIR";

fn units(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect()
}

/// The child: run only by the parent test (ignored otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by acknowledged_reservations_survive_sigkill"]
async fn crash_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let db = sled::open(&dir).unwrap();
    let inv = Inventory::open(&db, InventoryConfig::default()).unwrap();
    inv.set("A", None, 1_000_000).await.unwrap();
    inv.set("B", None, 1_000_000).await.unwrap();
    println!("ready");
    // Eight concurrent writers so the kill lands between many in-flight
    // transactions and flushes.
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let inv = inv.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let id = format!("w{w}-o{i}");
                    inv.reserve(&id, &units(&[("A", 1), ("B", 2)]), None)
                        .await
                        .unwrap();
                    println!("acked {id}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn acknowledged_reservations_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "crash_child", "--nocapture"])
        .env(DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let started = Instant::now();
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(id) = line.strip_prefix("acked ") {
            acked.push(id.to_string());
            if acked.len() == 400 {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "child too slow"
        );
    }
    child.wait().unwrap();
    assert_eq!(acked.len(), 400, "the child acknowledged 400 reservations");

    let db = sled::open(dir.path()).unwrap();
    let inv = Inventory::open(&db, InventoryConfig::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for id in &acked {
            let r = inv
                .reservation(id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged reservation {id} lost"));
            assert_eq!(r.state, ReservationState::Held);
        }
        // Whatever was in flight either fully happened or not at all: the
        // reserved counts equal what the surviving reservations hold.
        let a = inv.get("A").await.unwrap().unwrap();
        let b = inv.get("B").await.unwrap().unwrap();
        assert_eq!(b.reserved, 2 * a.reserved, "all or nothing across SKUs");
        let mut held = 0u64;
        for w in 0..8 {
            for i in 0.. {
                match inv.reservation(&format!("w{w}-o{i}")).await.unwrap() {
                    Some(_) => held += 1,
                    None => break,
                }
            }
        }
        println!(
            "killed after 400 acks; {held} reservations survived, A reserved {}",
            a.reserved
        );
        assert_eq!(a.reserved, held);
        assert!(held >= 400);
    });
}
