//! The validator: YAML text → [`Definition`], or every mistake at once.
//!
//! It works in two passes. The first walks the spanned tree and builds
//! steps, reporting unknown keys, wrong types, bad durations, CEL syntax,
//! unknown actions and arguments. The second looks at the flow as a graph:
//! missing targets, unreachable steps, and `steps.X` read where X is not
//! guaranteed to have finished (a must-run dataflow over the step graph).
//! Each problem is a [`Diagnostic`] with the `line:col` of the node at fault.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::expr::{Expr, Template, SCOPE_NAMES};
use super::model::*;
use super::node::{self, Kind, Node, Pos};
use super::value::Data;
use crate::actions::{self, ActionName, ArgType, ErrorKind, ALL_ERRORS, DEFAULT_RETRYABLE};

/// Most steps a workflow may have.
pub const MAX_STEPS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

/// Diagnostics for one file, printed `path:line:col: message`.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub path: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}", self.path, d)?;
        }
        Ok(())
    }
}

/// The notification channels a configuration defines (`[notify.channels]`):
/// a `notify.send` step's `channel`, when written out, must name one of
/// them. Empty means notifications are off: nothing is sent, and no name
/// can be checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Channels(BTreeSet<String>);

impl Channels {
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Channels {
        Channels(names.into_iter().map(Into::into).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    /// The names, sorted, comma-separated.
    pub fn list(&self) -> String {
        self.0.iter().cloned().collect::<Vec<_>>().join(", ")
    }

    /// Why `name` is refused, if it is.
    fn refusal(&self, name: &str) -> Option<String> {
        if self.is_empty() || self.contains(name) {
            return None;
        }
        let hint = suggest(name, self.0.iter().map(String::as_str))
            .map(|s| format!(" (did you mean \"{s}\"?)"))
            .unwrap_or_default();
        Some(format!(
            "notify.send names channel \"{name}\", which the configuration does not define (defined in [notify.channels]: {}): nothing would be sent; define it there or name a defined one{hint}",
            self.list()
        ))
    }
}

/// Validates one workflow file's text. `path` is only used in messages.
/// Channel names are not checked (see [`parse_workflow_with`]).
pub fn parse_workflow(path: &str, text: &str) -> Result<Definition, Report> {
    parse_workflow_with(path, text, None)
}

/// [`parse_workflow`], and with `channels` every channel a `notify.send`
/// step names must be one of them (when any is defined).
pub fn parse_workflow_with(
    path: &str,
    text: &str,
    channels: Option<&Channels>,
) -> Result<Definition, Report> {
    let report = |diagnostics| Report {
        path: path.to_string(),
        diagnostics,
    };
    let root = node::parse(text).map_err(|e| {
        report(vec![Diagnostic {
            pos: e.pos,
            message: e.message,
        }])
    })?;
    let mut v = Validator {
        channels: channels.cloned(),
        ..Validator::default()
    };
    let def = v.definition(&root, path, text);
    v.diags.sort();
    v.diags.dedup();
    match def {
        Some(mut d) if v.diags.is_empty() => {
            v.warnings.sort();
            v.warnings.dedup();
            d.warnings = v.warnings;
            Ok(d)
        }
        _ => {
            if v.diags.is_empty() {
                v.diags.push(Diagnostic {
                    pos: root.pos,
                    message: "invalid workflow".into(),
                });
            }
            Err(report(v.diags))
        }
    }
}

/// Parses a duration like `30s`, `5m`, `1h30m`, `2d` (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. 30s, 5m, 1h30m, 2d"))
}

#[derive(Default)]
struct Validator {
    diags: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// The channels `notify.send` may name, when known.
    channels: Option<Channels>,
}

/// A step target not yet resolved to an index.
struct PendingTarget {
    id: String,
    pos: Pos,
}

/// What the first pass knows of a step before targets are resolved.
struct Draft {
    id: String,
    pos: Pos,
    kind: DraftKind,
    guard: Option<Expr>,
    guard_pos: Pos,
    retry: Option<RetryPolicy>,
    timeout: Option<Duration>,
    catch: Vec<(String, PendingTarget)>,
    compensate: Option<Compensation>,
    comp_pos: Pos,
    next: Option<PendingTarget>,
    /// Expressions in the step with their positions, for reference checks.
    exprs: Vec<(Expr, Pos, ExprPlace)>,
}

#[derive(Clone, Copy, PartialEq)]
enum ExprPlace {
    Body,
    Wait,
    Compensate,
}

enum DraftKind {
    Call {
        action: &'static actions::Action,
        args: BTreeMap<String, Template>,
    },
    Wait {
        until: Expr,
        timeout: Duration,
        on_timeout: DraftTimeout,
    },
    Sleep(SleepSpec),
    Approval {
        message: Option<Template>,
        timeout: Duration,
        default: ApprovalDefault,
        on_reject: Option<PendingTarget>,
    },
    Set(BTreeMap<String, Template>),
    Switch {
        cases: Vec<(Expr, PendingTarget)>,
        default: Option<PendingTarget>,
    },
    End(String, Option<PendingTarget>),
    Fail(Template),
    /// The step had errors; keep its id so references still resolve.
    Broken,
}

enum DraftTimeout {
    Fail,
    Continue,
    Goto(PendingTarget),
}

const STEP_KINDS: &[&str] = &[
    "call", "wait", "sleep", "approval", "set", "switch", "end", "fail",
];
const STEP_KEYS: &[&str] = &[
    "id",
    "description",
    "call",
    "with",
    "wait",
    "sleep",
    "approval",
    "set",
    "switch",
    "end",
    "fail",
    "if",
    "retry",
    "timeout",
    "catch",
    "compensate",
    "next",
    "release",
];

impl Validator {
    fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            pos,
            message: message.into(),
        });
    }

    /// Something valid but probably not meant.
    fn warn(&mut self, pos: Pos, message: impl Into<String>) {
        self.warnings.push(Diagnostic {
            pos,
            message: message.into(),
        });
    }

    /// Reports keys outside `allowed`, with a suggestion.
    fn check_keys(&mut self, map: &Node, allowed: &[&str], what: &str) {
        let Some(entries) = map.as_map() else { return };
        for (k, _) in entries {
            match k.as_str() {
                Some(key) if allowed.contains(&key) => {}
                Some(key) => {
                    let hint = suggest(key, allowed.iter().copied())
                        .map(|s| format!("; did you mean \"{s}\"?"))
                        .unwrap_or_default();
                    self.err(k.pos, format!("unknown key \"{key}\" in {what}{hint}"));
                }
                None => self.err(k.pos, format!("keys in {what} must be strings")),
            }
        }
    }

    fn expect_map<'a>(&mut self, n: &'a Node, what: &str) -> Option<&'a [(Node, Node)]> {
        match n.as_map() {
            Some(m) => Some(m),
            None => {
                self.err(
                    n.pos,
                    format!("{what} must be a mapping, not {}", n.type_name()),
                );
                None
            }
        }
    }

    fn string(&mut self, n: &Node, what: &str) -> Option<String> {
        match &n.kind {
            Kind::Str(s) => Some(s.clone()),
            _ => {
                self.err(
                    n.pos,
                    format!("{what} must be a string, not {}", n.type_name()),
                );
                None
            }
        }
    }

    fn expr(&mut self, n: &Node, what: &str) -> Option<Expr> {
        let src = match &n.kind {
            Kind::Str(s) => s.clone(),
            Kind::Bool(b) => b.to_string(),
            _ => {
                self.err(
                    n.pos,
                    format!(
                        "{what} must be a CEL expression string, not {}",
                        n.type_name()
                    ),
                );
                return None;
            }
        };
        match Expr::compile(&src) {
            Ok(e) => Some(e),
            Err(e) => {
                self.err(
                    n.pos,
                    format!(
                        "{what}: {} (at column {} of the expression)",
                        e.message,
                        e.offset + 1
                    ),
                );
                None
            }
        }
    }

    fn template(&mut self, n: &Node, what: &str) -> Option<Template> {
        match &n.kind {
            Kind::Str(s) => match Template::parse_str(s) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.err(
                        n.pos,
                        format!("{what}: {} (at character {})", e.message, e.offset + 1),
                    );
                    None
                }
            },
            Kind::Seq(items) => {
                let mut out = Vec::new();
                for it in items {
                    out.push(self.template(it, what)?);
                }
                Some(Template::List(out))
            }
            Kind::Map(entries) => {
                let mut out = BTreeMap::new();
                for (k, v) in entries {
                    let key = k.scalar_text().unwrap_or_default();
                    out.insert(key, self.template(v, what)?);
                }
                Some(Template::Map(out))
            }
            _ => Some(Template::Literal(Data::from_json(&n.to_json()))),
        }
    }

    fn duration(&mut self, n: &Node, what: &str) -> Option<Duration> {
        let Some(text) = n.scalar_text() else {
            self.err(
                n.pos,
                format!(
                    "{what} must be a duration like 30s or 2h, not {}",
                    n.type_name()
                ),
            );
            return None;
        };
        if let Kind::Int(_) | Kind::Float(_) = n.kind {
            self.err(
                n.pos,
                format!("{what}: `{text}` has no unit; write e.g. {text}s or {text}m"),
            );
            return None;
        }
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(m) => {
                self.err(n.pos, format!("{what}: {m}"));
                None
            }
        }
    }

    fn target(&mut self, n: &Node, what: &str) -> Option<PendingTarget> {
        let id = self.string(n, what)?;
        Some(PendingTarget { id, pos: n.pos })
    }

    fn definition(&mut self, root: &Node, path: &str, text: &str) -> Option<Definition> {
        self.expect_map(root, "a workflow")?;
        self.check_keys(
            root,
            &[
                "name",
                "description",
                "trigger",
                "vars",
                "on_cancel_request",
                "steps",
            ],
            "the workflow",
        );
        let name = match root.get("name") {
            Some(n) => self.string(n, "name"),
            None => {
                self.err(root.pos, "missing key \"name\"");
                None
            }
        };
        if let Some(n) = &name {
            let ok = !n.is_empty()
                && n.len() <= 64
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                self.err(
                    root.get("name").map_or(root.pos, |n| n.pos),
                    "name must be 1-64 characters of letters, digits, '-' and '_'",
                );
            }
        }
        let description = root
            .get("description")
            .and_then(|n| self.string(n, "description"))
            .unwrap_or_default();
        let trigger = match root.get("trigger") {
            Some(t) => self.trigger(t),
            None => {
                self.err(root.pos, "missing key \"trigger\"");
                None
            }
        };
        let mut vars = BTreeMap::new();
        if let Some(vn) = root.get("vars") {
            if let Some(entries) = self.expect_map(vn, "vars") {
                for (k, v) in entries {
                    let key = k.scalar_text().unwrap_or_default();
                    if let Some(t) = self.template(v, &format!("vars.{key}")) {
                        for e in t.exprs() {
                            if !e.step_refs.is_empty() {
                                self.err(
                                    v.pos,
                                    format!("vars.{key}: initial values cannot read steps"),
                                );
                            }
                        }
                        vars.insert(key, t);
                    }
                }
            }
        }
        let on_cancel_request = match root.get("on_cancel_request") {
            Some(n) => self.cancel_policy(n),
            None => CancelRequestPolicy::default(),
        };
        let Some(steps_node) = root.get("steps") else {
            self.err(root.pos, "missing key \"steps\"");
            return None;
        };
        let Kind::Seq(items) = &steps_node.kind else {
            self.err(
                steps_node.pos,
                format!("steps must be a list, not {}", steps_node.type_name()),
            );
            return None;
        };
        if items.is_empty() {
            self.err(steps_node.pos, "steps must not be empty");
            return None;
        }
        if items.len() > MAX_STEPS {
            self.err(
                steps_node.pos,
                format!(
                    "{} steps is more than the limit of {MAX_STEPS}",
                    items.len()
                ),
            );
            return None;
        }
        let drafts: Vec<Option<Draft>> = items.iter().map(|s| self.step(s)).collect();
        let steps = self.resolve(drafts)?;
        let mut hasher = Sha256::new();
        hasher.update(text.as_bytes());
        let version = hex::encode(&hasher.finalize()[..8]);
        let mut def = Definition {
            name: name?,
            description,
            version,
            path: path.to_string(),
            source: text.to_string(),
            trigger: trigger?,
            vars,
            steps,
            reads_order: true,
            on_cancel_request,
            warnings: Vec::new(),
        };
        def.reads_order = def.exprs_mention("order");
        Some(def)
    }

    /// `on_cancel_request: {before_shipping, after_shipping, reject_reason}`.
    fn cancel_policy(&mut self, n: &Node) -> CancelRequestPolicy {
        use crate::tiktok::reasons::RejectKind;
        let mut p = CancelRequestPolicy::default();
        if self.expect_map(n, "on_cancel_request").is_none() {
            return p;
        }
        self.check_keys(
            n,
            &["before_shipping", "after_shipping", "reject_reason"],
            "on_cancel_request",
        );
        let answer = |v: &mut Self, key: &str, allowed: &[CancelAnswer]| -> Option<CancelAnswer> {
            let node = n.get(key)?;
            let s = v.string(node, key)?;
            let found = allowed.iter().copied().find(|a| a.as_str() == s);
            if found.is_none() {
                let names: Vec<&str> = allowed.iter().map(|a| a.as_str()).collect();
                v.err(
                    node.pos,
                    format!(
                        "on_cancel_request.{key} must be one of {}, not {s:?}",
                        names.join(", ")
                    ),
                );
            }
            found
        };
        if let Some(a) = answer(
            self,
            "before_shipping",
            &[
                CancelAnswer::Approve,
                CancelAnswer::Reject,
                CancelAnswer::Operator,
            ],
        ) {
            p.before_shipping = a;
        }
        // Once shipped, approving is TikTok's return flow, not a cancel.
        if let Some(a) = answer(
            self,
            "after_shipping",
            &[CancelAnswer::Reject, CancelAnswer::Operator],
        ) {
            p.after_shipping = a;
        }
        if let Some(node) = n.get("reject_reason") {
            if let Some(s) = self.string(node, "reject_reason") {
                match RejectKind::parse(&s) {
                    Some(k) => p.reject_reason = k,
                    None => {
                        let kinds = RejectKind::ALL.map(RejectKind::as_str);
                        let hint = suggest(&s, kinds.iter().copied())
                            .map(|h| format!("; did you mean \"{h}\"?"))
                            .unwrap_or_default();
                        self.err(
                            node.pos,
                            format!(
                                "on_cancel_request.reject_reason must be one of {}, not {s:?}{hint}",
                                kinds.join(", ")
                            ),
                        );
                    }
                }
            }
        }
        p
    }

    fn trigger(&mut self, t: &Node) -> Option<Trigger> {
        self.expect_map(t, "trigger")?;
        self.check_keys(t, &["on", "when", "priority"], "trigger");
        let mut on = Vec::new();
        match t.get("on") {
            None => self.err(
                t.pos,
                "trigger is missing \"on\" (a TikTok status such as AWAITING_SHIPMENT)",
            ),
            Some(n) => {
                let list: Vec<&Node> = match &n.kind {
                    Kind::Seq(v) => v.iter().collect(),
                    _ => vec![n],
                };
                for item in list {
                    if let Some(s) = self.string(item, "trigger.on") {
                        if crate::order::TiktokStatus::parse(&s).is_some() {
                            on.push(s);
                        } else {
                            let names = crate::order::TiktokStatus::ALL
                                .each_ref()
                                .map(|s| s.as_str());
                            let hint = suggest(&s, names.iter().copied())
                                .map(|h| format!("; did you mean \"{h}\"?"))
                                .unwrap_or_else(|| {
                                    format!("; expected one of {}", names.join(", "))
                                });
                            self.err(item.pos, format!("unknown order status \"{s}\"{hint}"));
                        }
                    }
                }
            }
        }
        let when = t.get("when").and_then(|n| self.expr(n, "trigger.when"));
        if let (Some(w), Some(n)) = (&when, t.get("when")) {
            self.check_idents(w, n.pos, false);
            if !w.step_refs.is_empty() {
                self.err(n.pos, "trigger.when cannot read steps: none has run yet");
            }
        }
        let priority = match t.get("priority") {
            None => 0,
            Some(n) => match n.kind {
                Kind::Int(i) => i,
                _ => {
                    self.err(
                        n.pos,
                        format!("trigger.priority must be an integer, not {}", n.type_name()),
                    );
                    0
                }
            },
        };
        Some(Trigger { on, when, priority })
    }

    fn check_idents(&mut self, e: &Expr, pos: Pos, in_wait: bool) {
        for id in &e.idents {
            if id == "event" && !in_wait {
                self.err(
                    pos,
                    "`event` is only available inside a wait step's `until`",
                );
            } else if !SCOPE_NAMES.contains(&id.as_str()) {
                let hint = suggest(id, SCOPE_NAMES.iter().copied())
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_else(|| {
                        format!("; the names in scope are {}", SCOPE_NAMES.join(", "))
                    });
                self.err(pos, format!("unknown name `{id}` in expression{hint}"));
            }
        }
    }

    fn args(
        &mut self,
        action: &'static actions::Action,
        with: Option<&Node>,
        at: Pos,
        exprs: &mut Vec<(Expr, Pos, ExprPlace)>,
        place: ExprPlace,
    ) -> BTreeMap<String, Template> {
        let mut out = BTreeMap::new();
        if let Some(w) = with {
            if let Some(entries) = self.expect_map(w, "with") {
                for (k, v) in entries {
                    let Some(key) = k.as_str() else {
                        self.err(k.pos, "argument names must be strings");
                        continue;
                    };
                    let Some(spec) = action.arg(key) else {
                        let hint = suggest(key, action.args.iter().map(|a| a.name))
                            .map(|s| format!("; did you mean \"{s}\"?"))
                            .unwrap_or_else(|| {
                                if action.args.is_empty() {
                                    " (it takes no arguments)".to_string()
                                } else {
                                    format!(
                                        " (it takes {})",
                                        action
                                            .args
                                            .iter()
                                            .map(|a| a.name)
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    )
                                }
                            });
                        self.err(
                            k.pos,
                            format!("{} has no argument \"{key}\"{hint}", action.name),
                        );
                        continue;
                    };
                    let Some(t) = self.template(v, &format!("argument \"{key}\"")) else {
                        continue;
                    };
                    if let (Template::Literal(d), Some(channels)) = (&t, &self.channels) {
                        let named = d
                            .as_str()
                            .filter(|_| key == "channel" && action.is(ActionName::NotifySend));
                        if let Some(why) = named.and_then(|c| channels.refusal(c)) {
                            self.err(v.pos, why);
                        }
                    }
                    if let Template::Literal(d) = &t {
                        let number_as_text = spec.ty == ArgType::Str && d.as_f64().is_some();
                        if !(spec.ty.accepts(d) || number_as_text) {
                            self.err(
                                v.pos,
                                format!(
                                    "argument \"{key}\" of {} must be {}, not {}",
                                    action.name,
                                    spec.ty.name(),
                                    v.type_name()
                                ),
                            );
                        }
                    }
                    for e in t.exprs() {
                        exprs.push((e.clone(), v.pos, place));
                    }
                    out.insert(key.to_string(), t);
                }
            }
        }
        for spec in action.args.iter().filter(|a| a.required) {
            if !out.contains_key(spec.name) {
                let already_reported = with
                    .and_then(|w| w.as_map())
                    .is_some_and(|m| m.iter().any(|(k, _)| k.as_str() == Some(spec.name)));
                if !already_reported {
                    self.err(
                        at,
                        format!(
                            "{} needs argument \"{}\" ({})",
                            action.name, spec.name, spec.doc
                        ),
                    );
                }
            }
        }
        out
    }

    fn action(&mut self, n: &Node) -> Option<&'static actions::Action> {
        let name = self.string(n, "call")?;
        match actions::lookup(&name) {
            Some(a) => Some(a),
            None => {
                let hint = suggest(&name, actions::catalogue().map(|a| a.name))
                    .map(|s| format!("; did you mean \"{s}\"?"))
                    .unwrap_or_default();
                self.err(n.pos, format!("unknown action \"{name}\"{hint}"));
                None
            }
        }
    }

    fn retry(&mut self, n: &Node) -> Option<RetryPolicy> {
        self.expect_map(n, "retry")?;
        self.check_keys(
            n,
            &[
                "max_attempts",
                "initial_delay",
                "factor",
                "max_delay",
                "jitter",
                "on",
            ],
            "retry",
        );
        let before = self.diags.len();
        let max_attempts = match n.get("max_attempts") {
            None => 3,
            Some(v) => match v.kind {
                Kind::Int(i) if (1..=100).contains(&i) => i as u32,
                _ => {
                    self.err(v.pos, "retry.max_attempts must be an integer from 1 to 100");
                    1
                }
            },
        };
        let initial_delay = n
            .get("initial_delay")
            .and_then(|v| {
                let d = self.duration(v, "retry.initial_delay")?;
                if d < Duration::from_millis(1) || d > Duration::from_secs(86_400) {
                    self.err(v.pos, "retry.initial_delay must be between 1ms and 1d");
                }
                Some(d)
            })
            .unwrap_or(Duration::from_secs(1));
        let factor = match n.get("factor") {
            None => 2.0,
            Some(v) => match v.kind {
                Kind::Int(i) if (1..=10).contains(&i) => i as f64,
                Kind::Float(f) if (1.0..=10.0).contains(&f) => f,
                _ => {
                    self.err(v.pos, "retry.factor must be a number from 1 to 10");
                    2.0
                }
            },
        };
        let max_delay = n
            .get("max_delay")
            .and_then(|v| {
                let d = self.duration(v, "retry.max_delay")?;
                if d < initial_delay || d > Duration::from_secs(7 * 86_400) {
                    self.err(
                        v.pos,
                        "retry.max_delay must be at least initial_delay and at most 7d",
                    );
                }
                Some(d)
            })
            .unwrap_or_else(|| Duration::from_secs(300).max(initial_delay));
        let jitter = match n.get("jitter") {
            None => true,
            Some(v) => match v.as_str() {
                Some("full") => true,
                Some("none") => false,
                _ => {
                    self.err(v.pos, "retry.jitter must be \"full\" or \"none\"");
                    true
                }
            },
        };
        let on = match n.get("on") {
            None => DEFAULT_RETRYABLE
                .iter()
                .map(|k| k.as_str().to_string())
                .collect(),
            Some(v) => {
                let mut kinds = Vec::new();
                if let Kind::Seq(items) = &v.kind {
                    for it in items {
                        if let Some(k) = self.string(it, "retry.on") {
                            self.error_kind(&k, it.pos);
                            kinds.push(k);
                        }
                    }
                } else {
                    self.err(v.pos, "retry.on must be a list of error kinds");
                }
                kinds
            }
        };
        (self.diags.len() == before).then_some(RetryPolicy {
            max_attempts,
            initial_delay,
            factor,
            max_delay,
            jitter,
            on,
        })
    }

    fn error_kind(&mut self, k: &str, pos: Pos) -> bool {
        if k == "any" || ErrorKind::in_language(k).is_some() {
            return true;
        }
        let known = || ALL_ERRORS.iter().map(|k| k.as_str());
        let hint = suggest(k, known())
            .map(|s| format!("; did you mean \"{s}\"?"))
            .unwrap_or_else(|| {
                format!(
                    "; known kinds: any, {}",
                    known().collect::<Vec<_>>().join(", ")
                )
            });
        self.err(pos, format!("unknown error kind \"{k}\"{hint}"));
        false
    }

    fn step(&mut self, s: &Node) -> Option<Draft> {
        self.expect_map(s, "a step")?;
        self.check_keys(s, STEP_KEYS, "a step");
        let id = match s.get("id") {
            Some(n) => {
                let id = self.string(n, "id")?;
                let ok = !id.is_empty()
                    && id.len() <= 64
                    && id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    self.err(
                        n.pos,
                        format!("step id \"{id}\" must start with a letter and use only letters, digits and '_' (it is read as steps.{id})"),
                    );
                }
                id
            }
            None => {
                self.err(s.pos, "step is missing \"id\"");
                return None;
            }
        };
        let kinds: Vec<&str> = STEP_KINDS
            .iter()
            .copied()
            .filter(|k| s.get(k).is_some())
            .collect();
        let mut d = Draft {
            id: id.clone(),
            pos: s.pos,
            kind: DraftKind::Broken,
            guard: None,
            guard_pos: s.pos,
            retry: None,
            timeout: None,
            catch: Vec::new(),
            compensate: None,
            comp_pos: s.pos,
            next: None,
            exprs: Vec::new(),
        };
        if kinds.len() != 1 {
            if kinds.is_empty() {
                self.err(
                    s.pos,
                    format!(
                        "step \"{id}\" has no kind; give it one of: {}",
                        STEP_KINDS.join(", ")
                    ),
                );
            } else {
                self.err(
                    s.pos,
                    format!(
                        "step \"{id}\" has several kinds ({}); give it exactly one",
                        kinds.join(", ")
                    ),
                );
            }
            return Some(d);
        }
        let kind = kinds[0];
        if s.get("with").is_some() && kind != "call" {
            self.err(
                s.get("with").map_or(s.pos, |n| n.pos),
                "\"with\" only belongs on a call step",
            );
        }
        if let Some(g) = s.get("if") {
            d.guard = self.expr(g, "if");
            d.guard_pos = g.pos;
            if let Some(e) = &d.guard {
                d.exprs.push((e.clone(), g.pos, ExprPlace::Body));
            }
        }
        if let Some(r) = s.get("retry") {
            if kind != "call" {
                self.err(r.pos, "retry only applies to call steps");
            }
            d.retry = self.retry(r);
        }
        if let Some(t) = s.get("timeout") {
            if kind != "call" {
                self.err(
                    t.pos,
                    "timeout applies to call steps; wait and approval take their own timeout",
                );
            }
            d.timeout = self.duration(t, "timeout");
        }
        if let Some(c) = s.get("catch") {
            if kind != "call" {
                self.err(c.pos, "catch only applies to call steps");
            }
            if let Some(entries) = self.expect_map(c, "catch") {
                for (k, v) in entries {
                    if let Some(kind_name) = self.string(k, "catch key") {
                        self.error_kind(&kind_name, k.pos);
                        if let Some(t) = self.target(v, "catch target") {
                            d.catch.push((kind_name, t));
                        }
                    }
                }
            }
        }
        if let Some(n) = s.get("next") {
            d.next = self.target(n, "next");
        }
        if let Some(n) = s.get("release") {
            if kind != "end" {
                self.err(n.pos, "\"release\" only belongs on an `end: held` step");
            }
        }
        let body = s.get(kind).unwrap_or(s);
        d.kind = match kind {
            "call" => {
                let Some(action) = self.action(body) else {
                    return Some(d);
                };
                let mut exprs = Vec::new();
                let args = self.args(action, s.get("with"), body.pos, &mut exprs, ExprPlace::Body);
                d.exprs.extend(exprs);
                for (k, _) in &d.catch {
                    if ErrorKind::in_language(k).is_some_and(|kind| !action.raises(kind)) {
                        let pos = s
                            .get("catch")
                            .and_then(|c| c.as_map())
                            .and_then(|m| m.iter().find(|(key, _)| key.as_str() == Some(k)))
                            .map_or(s.pos, |(key, _)| key.pos);
                        self.err(pos, format!("{} never raises \"{k}\"", action.name));
                    }
                }
                DraftKind::Call { action, args }
            }
            "wait" => self.wait(body, &mut d),
            "sleep" => match &body.kind {
                Kind::Map(_) => {
                    self.check_keys(body, &["for", "until"], "sleep");
                    match (body.get("for"), body.get("until")) {
                        (Some(f), None) => match self.duration(f, "sleep.for") {
                            Some(dur) => DraftKind::Sleep(SleepSpec::For(dur)),
                            None => DraftKind::Broken,
                        },
                        (None, Some(u)) => match self.template(u, "sleep.until") {
                            Some(t) => {
                                for e in t.exprs() {
                                    d.exprs.push((e.clone(), u.pos, ExprPlace::Body));
                                }
                                DraftKind::Sleep(SleepSpec::Until(t))
                            }
                            None => DraftKind::Broken,
                        },
                        _ => {
                            self.err(body.pos, "sleep takes exactly one of \"for\" or \"until\"");
                            DraftKind::Broken
                        }
                    }
                }
                _ => match self.duration(body, "sleep") {
                    Some(dur) => DraftKind::Sleep(SleepSpec::For(dur)),
                    None => DraftKind::Broken,
                },
            },
            "approval" => self.approval(body, &mut d),
            "set" => {
                let mut vars = BTreeMap::new();
                if let Some(entries) = self.expect_map(body, "set") {
                    for (k, v) in entries {
                        let key = k.scalar_text().unwrap_or_default();
                        if let Some(t) = self.template(v, &format!("set.{key}")) {
                            for e in t.exprs() {
                                d.exprs.push((e.clone(), v.pos, ExprPlace::Body));
                            }
                            vars.insert(key, t);
                        }
                    }
                }
                DraftKind::Set(vars)
            }
            "switch" => self.switch(body, &mut d),
            "end" => match self.string(body, "end") {
                Some(o) if !o.is_empty() => {
                    let release = s.get("release").and_then(|n| {
                        if o != HELD {
                            self.err(
                                n.pos,
                                format!("\"release\" only belongs on an `end: {HELD}` step (an operator's release of the hold goes on there)"),
                            );
                        }
                        self.target(n, "release")
                    });
                    if o == HELD && release.is_none() && s.get("release").is_none() {
                        self.warn(
                            s.pos,
                            format!("step \"{id}\" ends the order held but names no \"release\" step: an operator can only go on by choosing a step to run from"),
                        );
                    }
                    DraftKind::End(o, release)
                }
                _ => DraftKind::Broken,
            },
            "fail" => match self.template(body, "fail") {
                Some(t) => {
                    for e in t.exprs() {
                        d.exprs.push((e.clone(), body.pos, ExprPlace::Body));
                    }
                    DraftKind::Fail(t)
                }
                None => DraftKind::Broken,
            },
            _ => DraftKind::Broken,
        };
        if let Some(c) = s.get("compensate") {
            d.comp_pos = c.pos;
            if self.expect_map(c, "compensate").is_some() {
                self.check_keys(c, &["call", "with"], "compensate");
                match c.get("call") {
                    None => self.err(
                        c.pos,
                        "compensate needs \"call\" (the action that undoes this step)",
                    ),
                    Some(a) => {
                        if let Some(action) = self.action(a) {
                            let mut exprs = Vec::new();
                            let args = self.args(
                                action,
                                c.get("with"),
                                a.pos,
                                &mut exprs,
                                ExprPlace::Compensate,
                            );
                            d.exprs.extend(exprs);
                            d.compensate = Some(Compensation { action, args });
                        }
                    }
                }
            }
        }
        Some(d)
    }

    fn wait(&mut self, body: &Node, d: &mut Draft) -> DraftKind {
        if self.expect_map(body, "wait").is_none() {
            return DraftKind::Broken;
        }
        self.check_keys(body, &["until", "timeout", "on_timeout"], "wait");
        let until = match body.get("until") {
            Some(u) => {
                let e = self.expr(u, "wait.until");
                if let Some(e) = &e {
                    d.exprs.push((e.clone(), u.pos, ExprPlace::Wait));
                }
                e
            }
            None => {
                self.err(
                    body.pos,
                    "wait needs \"until\" (a CEL condition on `event`)",
                );
                None
            }
        };
        let timeout = match body.get("timeout") {
            Some(t) => self.duration(t, "wait.timeout"),
            None => {
                self.err(
                    body.pos,
                    "wait has no timeout: every wait needs one, so no order waits forever",
                );
                None
            }
        };
        let on_timeout = match body.get("on_timeout") {
            None => Some(DraftTimeout::Fail),
            Some(n) => match n.as_str() {
                Some("fail") => Some(DraftTimeout::Fail),
                Some("continue") => Some(DraftTimeout::Continue),
                Some(_) => self.target(n, "on_timeout").map(DraftTimeout::Goto),
                None => {
                    self.err(
                        n.pos,
                        "on_timeout must be \"fail\", \"continue\" or a step id",
                    );
                    None
                }
            },
        };
        match (until, timeout, on_timeout) {
            (Some(until), Some(timeout), Some(on_timeout)) => DraftKind::Wait {
                until,
                timeout,
                on_timeout,
            },
            _ => DraftKind::Broken,
        }
    }

    fn approval(&mut self, body: &Node, d: &mut Draft) -> DraftKind {
        if self.expect_map(body, "approval").is_none() {
            return DraftKind::Broken;
        }
        self.check_keys(
            body,
            &["message", "timeout", "default", "on_reject"],
            "approval",
        );
        let message = body.get("message").and_then(|m| {
            let t = self.template(m, "approval.message")?;
            for e in t.exprs() {
                d.exprs.push((e.clone(), m.pos, ExprPlace::Body));
            }
            Some(t)
        });
        let timeout = match body.get("timeout") {
            Some(t) => self.duration(t, "approval.timeout"),
            None => {
                self.err(
                    body.pos,
                    "approval has no timeout: say how long to wait for an operator",
                );
                None
            }
        };
        let default = match body.get("default") {
            None => ApprovalDefault::Hold,
            Some(n) => match n.as_str() {
                Some("approve") => ApprovalDefault::Approve,
                Some("reject") => ApprovalDefault::Reject,
                Some("hold") => ApprovalDefault::Hold,
                _ => {
                    self.err(
                        n.pos,
                        "approval.default must be \"hold\" (the default), \"approve\" or \"reject\"",
                    );
                    ApprovalDefault::Hold
                }
            },
        };
        let on_reject = body
            .get("on_reject")
            .and_then(|n| self.target(n, "on_reject"));
        match timeout {
            Some(timeout) => DraftKind::Approval {
                message,
                timeout,
                default,
                on_reject,
            },
            None => DraftKind::Broken,
        }
    }

    fn switch(&mut self, body: &Node, d: &mut Draft) -> DraftKind {
        let Kind::Seq(items) = &body.kind else {
            self.err(
                body.pos,
                format!("switch must be a list of cases, not {}", body.type_name()),
            );
            return DraftKind::Broken;
        };
        let mut cases = Vec::new();
        let mut default = None;
        for (i, c) in items.iter().enumerate() {
            if self.expect_map(c, "a switch case").is_none() {
                continue;
            }
            self.check_keys(c, &["when", "goto", "default"], "a switch case");
            match (c.get("when"), c.get("goto"), c.get("default")) {
                (Some(w), Some(g), None) => {
                    let e = self.expr(w, "switch.when");
                    let t = self.target(g, "goto");
                    if let (Some(e), Some(t)) = (e, t) {
                        d.exprs.push((e.clone(), w.pos, ExprPlace::Body));
                        cases.push((e, t));
                    }
                }
                (None, None, Some(def)) => {
                    if i + 1 != items.len() {
                        self.err(c.pos, "the default case must come last");
                    }
                    default = self.target(def, "default");
                }
                _ => self.err(
                    c.pos,
                    "a switch case is either {when: <CEL>, goto: <step>} or {default: <step>}",
                ),
            }
        }
        DraftKind::Switch { cases, default }
    }

    /// Second pass: ids, targets, reachability, `steps.X` guarantees.
    fn resolve(&mut self, drafts: Vec<Option<Draft>>) -> Option<Vec<Step>> {
        let drafts: Vec<Draft> = drafts.into_iter().flatten().collect();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut dup = false;
        for (i, d) in drafts.iter().enumerate() {
            if let Some(&first) = index.get(&d.id) {
                let p = drafts[first].pos;
                self.err(
                    d.pos,
                    format!("duplicate step id \"{}\" (first defined at {p})", d.id),
                );
                dup = true;
            } else {
                index.insert(d.id.clone(), i);
            }
        }
        let ids: Vec<String> = drafts.iter().map(|d| d.id.clone()).collect();
        let resolve = |v: &mut Validator, t: &PendingTarget| -> Option<usize> {
            match index.get(&t.id) {
                Some(&i) => Some(i),
                None => {
                    let hint = suggest(&t.id, ids.iter().map(String::as_str))
                        .map(|s| format!("; did you mean \"{s}\"?"))
                        .unwrap_or_default();
                    v.err(t.pos, format!("unknown step \"{}\"{hint}", t.id));
                    None
                }
            }
        };
        let n = drafts.len();
        let mut steps: Vec<Option<Step>> = Vec::with_capacity(n);
        for d in &drafts {
            let next = d.next.as_ref().and_then(|t| resolve(self, t));
            let catch: Vec<(String, usize)> = d
                .catch
                .iter()
                .filter_map(|(k, t)| resolve(self, t).map(|i| (k.clone(), i)))
                .collect();
            let kind = match &d.kind {
                DraftKind::Broken => None,
                DraftKind::Call { action, args } => Some(StepKind::Call {
                    action,
                    args: args.clone(),
                }),
                DraftKind::Wait {
                    until,
                    timeout,
                    on_timeout,
                } => {
                    let ot = match on_timeout {
                        DraftTimeout::Fail => Some(OnTimeout::Fail),
                        DraftTimeout::Continue => Some(OnTimeout::Continue),
                        DraftTimeout::Goto(t) => resolve(self, t).map(OnTimeout::Goto),
                    };
                    ot.map(|on_timeout| StepKind::Wait {
                        until: until.clone(),
                        timeout: *timeout,
                        on_timeout,
                    })
                }
                DraftKind::Sleep(s) => Some(StepKind::Sleep(s.clone())),
                DraftKind::Approval {
                    message,
                    timeout,
                    default,
                    on_reject,
                } => {
                    let r = match on_reject {
                        None => Some(None),
                        Some(t) => resolve(self, t).map(Some),
                    };
                    r.map(|on_reject| StepKind::Approval {
                        message: message.clone(),
                        timeout: *timeout,
                        default: *default,
                        on_reject,
                    })
                }
                DraftKind::Set(v) => Some(StepKind::Set(v.clone())),
                DraftKind::Switch { cases, default } => {
                    let mut ok = true;
                    let mut out = Vec::new();
                    for (e, t) in cases {
                        match resolve(self, t) {
                            Some(i) => out.push((e.clone(), i)),
                            None => ok = false,
                        }
                    }
                    let def = match default {
                        None => Some(None),
                        Some(t) => resolve(self, t).map(Some),
                    };
                    match (ok, def) {
                        (true, Some(default)) => Some(StepKind::Switch {
                            cases: out,
                            default,
                        }),
                        _ => None,
                    }
                }
                DraftKind::End(o, release) => {
                    let r = match release {
                        None => Some(None),
                        Some(t) => resolve(self, t).map(Some),
                    };
                    r.map(|release| StepKind::End {
                        outcome: o.clone(),
                        release,
                    })
                }
                DraftKind::Fail(t) => Some(StepKind::Fail { reason: t.clone() }),
            };
            steps.push(kind.map(|kind| Step {
                id: d.id.clone(),
                pos: d.pos,
                kind,
                guard: d.guard.clone(),
                retry: d.retry.clone(),
                timeout: d.timeout,
                catch,
                compensate: d.compensate.clone(),
                next,
            }));
        }
        for d in &drafts {
            for (e, pos, place) in &d.exprs {
                self.check_idents(e, *pos, *place == ExprPlace::Wait);
                for r in &e.step_refs {
                    if !index.contains_key(r) {
                        let hint = suggest(r, ids.iter().map(String::as_str))
                            .map(|s| format!("; did you mean \"{s}\"?"))
                            .unwrap_or_default();
                        self.err(*pos, format!("steps.{r} refers to an unknown step{hint}"));
                    }
                }
            }
        }
        if dup || steps.iter().any(Option::is_none) || !self.diags.is_empty() {
            return None;
        }
        let steps: Vec<Step> = steps.into_iter().flatten().collect();
        self.flow_checks(&steps, &drafts);
        self.diags.is_empty().then_some(steps)
    }

    fn flow_checks(&mut self, steps: &[Step], drafts: &[Draft]) {
        let n = steps.len();
        let edges: Vec<Vec<(usize, bool)>> = (0..n).map(|i| successors(steps, i)).collect();
        // Reachability from the first step.
        let mut reach = vec![false; n];
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut reach[i], true) {
                continue;
            }
            stack.extend(edges[i].iter().map(|(j, _)| *j));
        }
        for i in 0..n {
            if !reach[i] {
                let prev_stops = i > 0 && !edges[i - 1].iter().any(|(j, _)| *j == i);
                let why = if i > 0
                    && matches!(
                        steps[i - 1].kind,
                        StepKind::End { .. } | StepKind::Fail { .. }
                    ) {
                    format!(
                        "the step before it ({}) ends the workflow and nothing jumps to it",
                        steps[i - 1].id
                    )
                } else if prev_stops {
                    format!(
                        "the step before it ({}) never continues to it and nothing jumps to it",
                        steps[i - 1].id
                    )
                } else {
                    "no path from the first step leads to it".to_string()
                };
                self.err(
                    steps[i].pos,
                    format!("step \"{}\" is unreachable: {why}", steps[i].id),
                );
            }
        }
        // Must-run dataflow: done[i] = steps guaranteed finished on entry to i.
        let all: BTreeSet<usize> = (0..n).collect();
        let mut done: Vec<Option<BTreeSet<usize>>> = vec![None; n];
        done[0] = Some(BTreeSet::new());
        let mut changed = true;
        let mut rounds = 0;
        while changed && rounds < 4 * n + 8 {
            changed = false;
            rounds += 1;
            for i in 0..n {
                let Some(inn) = done[i].clone() else { continue };
                for &(j, completed) in &edges[i] {
                    let mut out = inn.clone();
                    if completed {
                        out.insert(i);
                    }
                    let new = match &done[j] {
                        None => out,
                        Some(cur) => cur.intersection(&out).copied().collect(),
                    };
                    let new = if j == 0 { BTreeSet::new() } else { new };
                    if done[j].as_ref() != Some(&new) {
                        done[j] = Some(new);
                        changed = true;
                    }
                }
            }
        }
        let index: HashMap<&str, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        for (i, d) in drafts.iter().enumerate() {
            let guaranteed = done[i].clone().unwrap_or_else(|| all.clone());
            for (e, pos, place) in &d.exprs {
                for r in &e.step_refs {
                    let Some(&j) = index.get(r.as_str()) else {
                        continue;
                    };
                    let ok = guaranteed.contains(&j) || (*place == ExprPlace::Compensate && j == i);
                    if !ok && reach[i] {
                        let why = if j == i {
                            "a step cannot read its own output".to_string()
                        } else {
                            format!("\"{r}\" is not guaranteed to have finished before \"{}\" (it may be skipped, caught, timed out or jumped over); guard it with has(steps.{r})", d.id)
                        };
                        self.err(*pos, format!("steps.{r}: {why}"));
                    }
                }
            }
        }
        self.cancel_paths(steps, &edges);
    }

    /// Warns about every `end: cancelled` some path reaches without a
    /// `tiktok.cancel_order` step that succeeded: the order would end
    /// cancelled here while the buyer's order lives on at TikTok.
    fn cancel_paths(&mut self, steps: &[Step], edges: &[Vec<(usize, bool)>]) {
        let cancels = |i: usize| matches!(&steps[i].kind, StepKind::Call { action, .. } if action.is(ActionName::TiktokCancelOrder));
        let mut seen = vec![false; steps.len()];
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            stack.extend(
                edges[i]
                    .iter()
                    .filter(|(_, completed)| !(cancels(i) && *completed))
                    .map(|(j, _)| *j),
            );
        }
        for (i, s) in steps.iter().enumerate() {
            let StepKind::End { outcome, .. } = &s.kind else {
                continue;
            };
            if seen[i]
                && crate::lifecycle::Lifecycle::parse(outcome)
                    == Some(crate::lifecycle::Lifecycle::Cancelled)
            {
                self.warn(
                    s.pos,
                    format!("step \"{}\" ends the order cancelled on a path without a tiktok.cancel_order step: the buyer's order would stay open on TikTok; cancel it there first (or end held for a person)", s.id),
                );
            }
        }
    }
}

/// The step graph: (successor, did this step finish with an output on that
/// edge).
pub(crate) fn successors(steps: &[Step], i: usize) -> Vec<(usize, bool)> {
    let s = &steps[i];
    let fall = s.next.or(if i + 1 < steps.len() {
        Some(i + 1)
    } else {
        None
    });
    let mut out = Vec::new();
    let push = |out: &mut Vec<(usize, bool)>, t: Option<usize>, c: bool| {
        if let Some(t) = t {
            out.push((t, c));
        }
    };
    if s.guard.is_some() {
        push(&mut out, fall, false);
    }
    match &s.kind {
        StepKind::Call { .. } => {
            push(&mut out, fall, true);
            for (_, t) in &s.catch {
                out.push((*t, false));
            }
        }
        StepKind::Wait { on_timeout, .. } => {
            push(&mut out, fall, true);
            match on_timeout {
                OnTimeout::Fail => {}
                OnTimeout::Continue => push(&mut out, fall, false),
                OnTimeout::Goto(t) => out.push((*t, false)),
            }
        }
        StepKind::Sleep(_) | StepKind::Set(_) => push(&mut out, fall, true),
        StepKind::Approval { on_reject, .. } => {
            push(&mut out, fall, true);
            if let Some(t) = on_reject {
                out.push((*t, true));
            }
        }
        StepKind::Switch { cases, default } => {
            for (_, t) in cases {
                out.push((*t, true));
            }
            push(&mut out, default.or(fall), true);
        }
        // An operator's release of an `end: held` goes on at its
        // `release` step: a path like any other.
        StepKind::End { release, .. } => push(&mut out, *release, true),
        StepKind::Fail { .. } => {}
    }
    out
}

/// Levenshtein distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate within a sensible distance.
fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
