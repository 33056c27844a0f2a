//! `orderflow loadtest` at tiny sizes, through the real binary: each
//! scenario starts its real daemon process and simulator, and prints its
//! table with every order accounted for. Speed is printed, not asserted.

mod common;

use std::collections::HashMap;
use std::process::Command;

/// Runs `orderflow loadtest ARGS` and returns its table's rows, each a map
/// from column to cell.
fn loadtest(args: &[&str]) -> Vec<HashMap<String, String>> {
    table(&loadtest_stdout(args))
}

/// Runs `orderflow loadtest ARGS`: what it printed.
fn loadtest_stdout(args: &[&str]) -> String {
    let out = Command::new(common::bin())
        .arg("loadtest")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stdout}\n{stderr}");
    stdout
}

/// The rows of the first table in `stdout`, each a map from column to
/// cell.
fn table(stdout: &str) -> Vec<HashMap<String, String>> {
    let stdout = stdout.split("\n\n").next().unwrap_or_default();
    let split = |l: &str| -> Vec<String> {
        l.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let mut lines = stdout.lines().filter(|l| l.starts_with('|'));
    let header = split(lines.next().unwrap_or_else(|| panic!("no table: {stdout}")));
    assert!(lines.next().unwrap().starts_with("|---"), "{stdout}");
    let rows: Vec<HashMap<String, String>> = lines
        .map(|l| header.iter().cloned().zip(split(l)).collect())
        .collect();
    assert!(!rows.is_empty(), "no rows: {stdout}");
    println!("{stdout}");
    rows
}

/// A cell's leading number ("12.5 ms" → 12.5).
fn num(row: &HashMap<String, String>, col: &str) -> f64 {
    let cell = row
        .get(col)
        .unwrap_or_else(|| panic!("no column {col:?} in {row:?}"));
    cell.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{col:?} = {cell:?} is not a number"))
}

/// What every order scenario's row must show: every order acknowledged
/// and shipped, at least one ship call per order, latencies and group
/// commits measured, the daemon's RSS read.
fn every_order_shipped(row: &HashMap<String, String>, orders: f64) {
    assert_eq!(num(row, "Orders"), orders, "{row:?}");
    assert_eq!(num(row, "Completed"), orders, "{row:?}");
    assert_eq!(num(row, "Non-200"), 0.0, "{row:?}");
    assert!(num(row, "Completed/s") > 0.0, "{row:?}");
    assert!(num(row, "Ack p50") > 0.0, "{row:?}");
    assert!(num(row, "p99") >= num(row, "Receipt→fulfil p50"), "{row:?}");
    assert!(num(row, "Receipt→fulfil p50") > 0.0, "{row:?}");
    assert!(num(row, "TikTok calls/order") >= 1.0, "{row:?}");
    assert!(num(row, "Batches/s") > 0.0, "{row:?}");
    assert!(num(row, "Mean batch") >= 1.0, "{row:?}");
    assert!(num(row, "Flushes/s") > 0.0, "{row:?}");
    assert!(num(row, "Daemon peak RSS") > 10.0, "{row:?}");
}

#[test]
fn steady_ships_every_order() {
    let rows = loadtest(&["--scenario", "steady", "--orders", "150", "--rate", "100"]);
    assert_eq!(rows.len(), 1);
    every_order_shipped(&rows[0], 150.0);
}

#[test]
fn spike_drains_within_the_rate_limit() {
    let rows = loadtest(&["--scenario", "spike", "--orders", "100", "--duration", "1s"]);
    let row = &rows[0];
    every_order_shipped(row, 100.0);
    // 100 ships and 2 detail calls at 50 QPS.
    assert_eq!(num(row, "Bound (calls ÷ QPS)"), 2.0, "{row:?}");
    assert!(num(row, "Drain") > 1.0, "{row:?}");
    assert!(num(row, "Drain ÷ bound") > 0.0, "{row:?}");
}

#[test]
fn max_steps_until_the_limit() {
    let rows = loadtest(&[
        "--scenario",
        "max",
        "--rate",
        "50",
        "--max-rate",
        "50",
        "--duration",
        "1s",
    ]);
    assert_eq!(rows.len(), 1, "one step: {rows:?}");
    every_order_shipped(&rows[0], 50.0);
}

#[test]
fn backlog_resumes_a_waiting_order() {
    let stdout = loadtest_stdout(&[
        "--scenario",
        "backlog",
        "--orders",
        "1000",
        "--settle",
        "0s",
        "--readers",
        "2",
    ]);
    let rows = table(&stdout);
    let row = &rows[0];
    // The readers' tables follow: every webhook answered 200, with and
    // without readers, and every read answered.
    let acks = stdout
        .split("\n\n")
        .nth(2)
        .unwrap_or_else(|| panic!("{stdout}"));
    let acks = table(acks);
    assert_eq!(acks.len(), 2, "{stdout}");
    for r in &acks {
        assert_eq!(num(r, "not 200"), 0.0, "{r:?}");
    }
    let reads = table(stdout.split("\n\n").nth(1).unwrap());
    assert_eq!(reads.len(), 4, "{stdout}");
    for r in &reads {
        assert!(num(r, "Reads done") > 0.0, "{r:?}");
    }
    assert_eq!(num(row, "Orders waiting"), 1000.0, "{row:?}");
    assert!(num(row, "Disk") > 0.0, "{row:?}");
    let ready = num(row, "Start → /readyz");
    assert!(ready > 0.0, "{row:?}");
    assert!(num(row, "Start → first order resumed") >= ready, "{row:?}");
    assert!(num(row, "Daemon peak RSS") > 10.0, "{row:?}");
}

#[test]
fn engine_finishes_every_flow() {
    let rows = loadtest(&[
        "--scenario",
        "engine",
        "--flows",
        "60",
        "--in-flight",
        "10,30",
    ]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, in_flight) in rows.iter().zip([10.0, 30.0]) {
        assert_eq!(num(row, "In flight"), in_flight, "{row:?}");
        assert_eq!(num(row, "Flows"), 60.0, "{row:?}");
        assert!(num(row, "Steps/s") >= num(row, "Flows/s"), "{row:?}");
        assert!(num(row, "Mean checkpoint batch") >= 1.0, "{row:?}");
    }
}

#[test]
fn retention_archives_what_is_old_and_finds_it_after_a_kill() {
    // 130 days of 30 orders: the 30 oldest days go to the archive (an
    // order is updated 10 days after it arrives; 90 days are kept).
    let rows = loadtest(&["--scenario", "retention", "--days", "130", "--orders", "30"]);
    let row = &rows[0];
    let (archived, hot) = (num(row, "Archived"), num(row, "Left hot"));
    assert!((archived - 900.0).abs() <= 30.0, "{row:?}");
    assert_eq!(archived + hot, 3900.0, "{row:?}");
    assert_eq!(
        row["Found after SIGKILL + restart"], "100 of 100",
        "{row:?}"
    );
}
