//! The workflow language from the outside: every class of mistake gives the
//! exact `file:line:col: message`, hostile files are refused, the bundled
//! workflows validate, and dry-run shows the paths an order would take.

use std::path::Path;
use std::process::Command;

use orderflow::workflow::parse_workflow;

fn diagnostics(file: &str) -> Vec<String> {
    let path = format!("tests/fixtures/invalid/{file}");
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    match parse_workflow(&path, &text) {
        Ok(_) => vec![],
        Err(report) => report.to_string().lines().map(str::to_string).collect(),
    }
}

fn assert_diags(file: &str, expected: &[&str]) {
    let got = diagnostics(file);
    let want: Vec<String> = expected
        .iter()
        .map(|e| format!("tests/fixtures/invalid/{file}:{e}"))
        .collect();
    assert_eq!(got, want, "diagnostics for {file}");
}

#[test]
fn every_mistake_class_is_reported_with_its_position() {
    assert_diags(
        "yaml_syntax.yaml",
        &["7:4: invalid YAML: while parsing a block collection, did not find expected '-' indicator"],
    );
    assert_diags(
        "unknown_key.yaml",
        &["7:5: unknown key \"retyr\" in a step; did you mean \"retry\"?"],
    );
    assert_diags(
        "duplicate_step_id.yaml",
        &["7:5: duplicate step id \"reserve\" (first defined at 5:5)"],
    );
    assert_diags(
        "goto_missing.yaml",
        &["8:15: unknown step \"shp\"; did you mean \"ship\"?"],
    );
    assert_diags(
        "next_catch_missing.yaml",
        &[
            "8:21: unknown step \"backordr\"; did you mean \"backorder\"?",
            "9:11: unknown step \"shipp\"; did you mean \"ship\"?",
        ],
    );
    assert_diags(
        "unreachable.yaml",
        &["8:5: step \"orphan\" is unreachable: the step before it (reserve) never continues to it and nothing jumps to it"],
    );
    assert_diags(
        "after_end.yaml",
        &["7:5: step \"after\" is unreachable: the step before it (done) ends the workflow and nothing jumps to it"],
    );
    assert_diags(
        "unknown_action.yaml",
        &["6:11: unknown action \"inventory.reserv\"; did you mean \"inventory.reserve\"?"],
    );
    assert_diags(
        "missing_arg.yaml",
        &["6:11: tiktok.mark_shipped needs argument \"shipping_provider_id\" (TikTok's id for the carrier)"],
    );
    assert_diags(
        "mistyped_arg.yaml",
        &["9:17: argument \"quantity\" of tiktok.update_inventory must be an integer, not a string"],
    );
    let cel = diagnostics("cel_syntax.yaml");
    assert_eq!(cel.len(), 1, "{cel:?}");
    assert!(
        cel[0].starts_with("tests/fixtures/invalid/cel_syntax.yaml:6:9: if: CEL syntax error: mismatched input '<EOF>'"),
        "{cel:?}"
    );
    assert!(
        cel[0].ends_with("(at column 30 of the expression)"),
        "{cel:?}"
    );
    assert_diags(
        "step_ref_not_guaranteed.yaml",
        &["11:16: steps.choose: \"choose\" is not guaranteed to have finished before \"label\" (it may be skipped, caught, timed out or jumped over); guard it with has(steps.choose)"],
    );
    assert_diags(
        "wait_without_timeout.yaml",
        &["7:7: wait has no timeout: every wait needs one, so no order waits forever"],
    );
    assert_diags(
        "retry_out_of_range.yaml",
        &[
            "8:21: retry.max_attempts must be an integer from 1 to 100",
            "9:15: retry.factor must be a number from 1 to 10",
        ],
    );
    assert_diags(
        "bad_duration.yaml",
        &[
            "6:12: sleep: `5 minutes later` is not a duration (expected number at 10); write e.g. 30s, 5m, 1h30m, 2d",
            "9:14: timeout: `30` has no unit; write e.g. 30s or 30m",
        ],
    );
    assert_diags("duplicate_yaml_key.yaml", &["7:5: duplicate key \"call\""]);
    assert_diags(
        "bad_trigger.yaml",
        &[
            "3:7: unknown order status \"AWAITING_SHIPING\"; did you mean \"AWAITING_SHIPMENT\"?",
            "4:9: unknown name `ordr` in expression; did you mean `order`?",
        ],
    );
}

fn refused(text: &str) -> String {
    match parse_workflow("hostile.yaml", text) {
        Ok(_) => panic!("hostile input accepted"),
        Err(r) => r.to_string(),
    }
}

#[test]
fn hostile_inputs_are_refused_with_a_clear_error() {
    // Billion laughs: nine levels of aliases, each doubling ten times.
    let mut lol = String::from("a0: &a0 [\"lol\"]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        lol.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            [prev.as_str(); 10].join(", ")
        ));
    }
    let msg = refused(&lol);
    assert!(msg.starts_with("hostile.yaml:"), "{msg}");
    assert!(msg.contains("invalid YAML"), "{msg}");

    // Deep nesting.
    let deep = format!(
        "name: x\nvars:\n  v: {}1{}\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    let msg = refused(&deep);
    assert!(
        msg.contains("invalid YAML") || msg.contains("nesting"),
        "{msg}"
    );

    // A huge file.
    let huge = format!("name: x\ndescription: \"{}\"\n", "x".repeat(300 * 1024));
    let msg = refused(&huge);
    assert!(msg.contains("the limit is 262144 bytes"), "{msg}");

    // Too many steps.
    let mut many = String::from("name: x\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n");
    for i in 0..201 {
        many.push_str(&format!("  - id: s{i}\n    set:\n      n: {i}\n"));
    }
    let msg = refused(&many);
    assert!(
        msg.contains("201 steps is more than the limit of 200"),
        "{msg}"
    );

    // A hostile expression.
    let expr = format!(
        "name: x\ntrigger:\n  on: AWAITING_SHIPMENT\n  when: \"{}true{}\"\nsteps:\n  - id: e\n    end: ok\n",
        "(".repeat(500),
        ")".repeat(500)
    );
    let msg = refused(&expr);
    assert!(msg.contains("nests deeper than"), "{msg}");
}

fn orderflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orderflow"))
}

#[test]
fn validate_command_accepts_bundled_and_rejects_broken_workflows() {
    let ok = orderflow()
        .args(["validate", "workflows/"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    for name in ["standard", "high_value", "tiktok_shipping"] {
        assert!(Path::new(&format!("workflows/{name}.yaml")).exists());
        let readme = std::fs::read_to_string("workflows/README.md").unwrap();
        assert!(
            readme.contains(&format!("{name}.yaml")),
            "{name} is documented"
        );
    }
    let bad = orderflow()
        .args(["validate", "tests/fixtures/invalid"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    // Every file's errors are printed, not only the first file's.
    assert!(out.contains("after_end.yaml:7:5:"), "{out}");
    assert!(out.contains("wait_without_timeout.yaml:7:7:"), "{out}");
    assert!(out.contains("yaml_syntax.yaml:7:4:"), "{out}");
}

#[test]
fn dry_run_shows_the_standard_path_and_the_approval_path() {
    let run = |order: &str, extra: &[&str]| {
        let mut c = orderflow();
        c.args([
            "dry-run",
            "--workflow",
            "workflows/standard.yaml",
            "--order",
            order,
        ]);
        c.args(extra);
        let out = c.output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let standard = run(
        "workflows/examples/standard-order.json",
        &["--event", "workflows/examples/delivered-event.json"],
    );
    assert!(
        standard.contains("route: no case matched; default goes to reserve"),
        "{standard}"
    );
    assert!(standard.contains("-> shipping.buy_label"), "{standard}");
    assert!(standard.contains("-> tiktok.mark_shipped"), "{standard}");
    assert!(
        standard.contains("finished: completed (fulfilled)"),
        "{standard}"
    );
    assert!(!standard.contains("waiting for an operator"), "{standard}");

    let high = run(
        "workflows/examples/high-value-order.json",
        &["--approval", "reject"],
    );
    assert!(high.contains("case 1 `order.payment.total_amount > double(vars.approval_threshold)` matched; going to approve"), "{high}");
    assert!(
        high.contains("approve: rejected by dry-run; going to rejected_hold"),
        "{high}"
    );
    // A rejection holds the order for a person; nothing is cancelled on a
    // guessed reason.
    assert!(high.contains("-> order.hold"), "{high}");
    assert!(!high.contains("-> tiktok.cancel_order"), "{high}");
    assert!(!high.contains("-> shipping.buy_label"), "{high}");

    // Without a delivery event, the wait times out into the late path.
    let late = run("workflows/examples/standard-order.json", &[]);
    assert!(
        late.contains("wait_delivery: timed out; going to late_delivery"),
        "{late}"
    );
    assert!(
        late.contains("finished: completed (fulfilled_late)"),
        "{late}"
    );
}

#[test]
fn json_schema_knows_every_action_and_error_kind() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("workflows/schema.json").unwrap()).unwrap();
    let step = &schema["properties"]["steps"]["items"]["properties"];
    let actions: Vec<&str> = step["call"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for a in orderflow::actions::catalogue() {
        assert!(
            actions.contains(&a.name),
            "schema.json lacks action {}",
            a.name
        );
    }
    assert_eq!(actions.len(), orderflow::actions::ActionName::ALL.len());
    let kinds = step["catch"]["propertyNames"]["enum"].as_array().unwrap();
    for k in orderflow::actions::ALL_ERRORS.iter().map(|k| k.as_str()) {
        assert!(
            kinds.iter().any(|v| v == k),
            "schema.json lacks error kind {k}"
        );
    }
}

/// The bundled workflows route by shipping type: a risky order TikTok
/// ships is approved in `tiktok_shipping` and never buys a label from the
/// label API; a risky order the seller ships goes to `high_value`.
#[test]
fn risky_orders_are_approved_in_the_flow_of_their_shipping_type() {
    use orderflow::workflow::dryrun::{parse_order, run, ApprovalChoice};
    use orderflow::workflow::value::Data;
    let catalog =
        orderflow::workflow::Catalog::load(&[std::path::PathBuf::from("workflows")]).unwrap();
    let text = std::fs::read_to_string("workflows/examples/high-value-order.json").unwrap();
    let seller = parse_order(&text).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let path = if v.pointer("/data/orders/0").is_some() {
        "/data/orders/0"
    } else {
        "/orders/0"
    };
    let o = v.pointer_mut(path).unwrap();
    o["shipping_type"] = "TIKTOK".into();
    o["is_cod"] = true.into();
    let tiktok = parse_order(&v.to_string()).unwrap();
    let pick = |o: &orderflow::order::Order| {
        let val: orderflow::workflow::expr::Val = Data::from_json(&o.to_json()).to_val().into();
        catalog
            .select("AWAITING_SHIPMENT", &val, 0)
            .map(|d| d.name.clone())
    };
    assert_eq!(pick(&tiktok).as_deref(), Some("tiktok_shipping"));
    // Risky (cash on delivery) and seller-shipped: high_value.
    let mut risky_seller = seller.clone();
    risky_seller.is_cod = true;
    assert_eq!(pick(&risky_seller).as_deref(), Some("high_value"));

    let def = catalog.get("tiktok_shipping").unwrap();
    let approved = run(def, &tiktok, &[], ApprovalChoice::Approve)
        .lines
        .join("\n");
    assert!(approved.contains("going to approve"), "{approved}");
    assert!(approved.contains("-> tiktok.ship_package"), "{approved}");
    assert!(!approved.contains("shipping.buy_label"), "{approved}");
    let rejected = run(def, &tiktok, &[], ApprovalChoice::Reject)
        .lines
        .join("\n");
    assert!(rejected.contains("-> order.hold"), "{rejected}");
    assert!(!rejected.contains("-> tiktok.ship_package"), "{rejected}");
    assert!(!rejected.contains("tiktok.cancel_order"), "{rejected}");
}

/// The bundled workflows have no dead end `validate` warns about; the two
/// patterns it warns on (a held end nobody can release, a cancelled end
/// that leaves the buyer's order open on TikTok) are reported with their
/// position, and the files still load.
#[test]
fn validate_warns_on_dead_ends_and_the_bundled_workflows_have_none() {
    let ok = orderflow()
        .args(["validate", "workflows/"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(ok.status.success(), "{text}");
    assert!(!text.contains("warning"), "{text}");

    let warned = orderflow()
        .args(["validate", "tests/fixtures/warnings"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&warned.stdout),
        String::from_utf8_lossy(&warned.stderr)
    );
    assert!(warned.status.success(), "warnings do not fail: {text}");
    assert!(
        text.contains("warning: tests/fixtures/warnings/held_without_release.yaml:17:5:")
            && text.contains("names no \"release\" step"),
        "{text}"
    );
    assert!(
        text.contains("warning: tests/fixtures/warnings/cancelled_without_tiktok.yaml:13:5:")
            && text.contains("without a tiktok.cancel_order step"),
        "{text}"
    );
    assert!(text.contains("2 warning(s)"), "{text}");
}

/// `dry-run` shows the path of each kind of order through the bundled
/// workflows, including what goes wrong: TikTok Shipping, a high-value
/// cash-on-delivery order nobody approves, a SKU mapped to no item until a
/// restock, and a buyer who asks to cancel while the label is bought.
#[test]
fn dry_run_shows_the_path_of_each_kind_of_order() {
    let run = |workflow: &str, order: &str, extra: &[&str]| {
        let out = orderflow()
            .args(["dry-run", "--workflow", workflow, "--order", order])
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{text}");
        text
    };
    let delivered = ["--event", "workflows/examples/delivered-event.json"];

    let tiktok = run(
        "workflows/tiktok_shipping.yaml",
        "workflows/examples/tiktok-shipping-order.json",
        &delivered,
    );
    assert!(tiktok.contains("-> tiktok.ship_package"), "{tiktok}");
    assert!(
        !tiktok.contains("-> shipping.buy_label"),
        "TikTok buys the label: {tiktok}"
    );
    assert!(
        tiktok.contains("finished: completed (fulfilled)"),
        "{tiktok}"
    );

    let cod = run(
        "workflows/high_value.yaml",
        "workflows/examples/cod-order.json",
        &["--approval", "timeout"],
    );
    assert!(
        cod.contains("no decision before the timeout; held until an operator approves or rejects"),
        "{cod}"
    );
    assert!(
        cod.contains("stopped: held, awaiting an operator's approval"),
        "{cod}"
    );
    assert!(!cod.contains("tiktok.cancel_order"), "{cod}");
    assert!(!cod.contains("-> shipping.buy_label"), "{cod}");

    let unmapped = run(
        "workflows/standard.yaml",
        "workflows/examples/standard-order.json",
        &[
            "--fail",
            "reserve=unmapped_sku",
            "--event",
            "workflows/examples/restock-event.json",
            "--event",
            "workflows/examples/delivered-event.json",
        ],
    );
    let held = unmapped.find("-> order.hold").expect(&unmapped);
    let restocked = unmapped.find("\"type\":\"restock\"").expect(&unmapped);
    let shipped = unmapped.find("-> tiktok.mark_shipped").expect(&unmapped);
    assert!(
        held < restocked && restocked < shipped,
        "held, restocked, shipped: {unmapped}"
    );
    assert!(
        unmapped.contains("finished: completed (fulfilled)"),
        "{unmapped}"
    );

    let asked = run(
        "workflows/standard.yaml",
        "workflows/examples/standard-order.json",
        &["--cancel-request-at", "buy_label"],
    );
    assert!(asked.contains("-> shipping.void_label"), "{asked}");
    assert!(asked.contains("-> inventory.release"), "{asked}");
    assert!(!asked.contains("-> tiktok.mark_shipped"), "{asked}");
    assert!(asked.contains("finished: cancelled"), "{asked}");
}

/// A `notify.send` step that names a channel the configuration does not
/// define is refused where it names it, with the channels that are
/// defined; the default channel, a name an expression computes, and a
/// configuration with notifications off are not refused. `validate` takes
/// the channels from the configuration it loads: the bundled workflows
/// name `creator`, refused where the configuration lacks it.
#[test]
fn a_channel_the_configuration_does_not_define_is_refused_where_it_is_named() {
    use orderflow::workflow::{parse_workflow_with, Channels};
    let text = r#"name: tell
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: tell
    call: notify.send
    with:
      channel: creatr
      text: "packed"
  - id: tell_default
    call: notify.send
    with:
      text: "packed"
  - id: tell_computed
    call: notify.send
    with:
      channel: "${{ 'ops' }}"
      text: "packed"
  - id: done
    end: notified
"#;
    let defined = Channels::new(["default", "creator", "ops"]);
    let report = parse_workflow_with("tell.yaml", text, Some(&defined))
        .expect_err("an undefined channel is refused")
        .to_string();
    assert_eq!(report.lines().count(), 1, "{report}");
    assert!(
        report.starts_with("tell.yaml:8:16: notify.send names channel \"creatr\"")
            && report.contains("(defined in [notify.channels]: creator, default, ops)")
            && report.contains("did you mean \"creator\"?"),
        "{report}"
    );
    let fixed = text.replace("creatr", "creator");
    assert!(parse_workflow_with("tell.yaml", &fixed, Some(&defined)).is_ok());
    // Notifications off: nothing to check against (the daemon warns that
    // those steps send nothing, and each one's audit says so).
    assert!(parse_workflow_with("tell.yaml", text, Some(&Channels::default())).is_ok());
    assert!(parse_workflow("tell.yaml", text).is_ok(), "unchecked");

    // `validate` reads the channels from its configuration.
    let dir = tempfile::tempdir().unwrap();
    let config = |channels: &str| {
        let path = dir.path().join("orderflow.toml");
        std::fs::write(
            &path,
            format!("[notify]\ndefault_channel = \"default\"\n[notify.channels]\n{channels}"),
        )
        .unwrap();
        path
    };
    let run = |config: &Path| {
        let out = orderflow()
            .args(["validate", "workflows/", "--config"])
            .arg(config)
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, text) = run(&config("default = \"https://example.com/hook\"\n"));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("workflows/standard.yaml:96:16: notify.send names channel \"creator\""),
        "{text}"
    );
    assert!(text.contains("workflows/high_value.yaml:"), "{text}");
    let (code, text) = run(&config(
        "default = \"https://example.com/hook\"\ncreator = \"https://example.com/creator\"\n",
    ));
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("note:"), "{text}");
    // The example configuration of the deploy folder (notifications off
    // until a channel is set) passes, and says the names went unchecked.
    let (code, text) = run(Path::new("deploy/orderflow.example.toml"));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("defines no notification channel"), "{text}");
}
