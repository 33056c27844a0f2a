//! CEL expressions and `${{ … }}` templates.
//!
//! Every expression is compiled once, when the workflow is loaded; at run
//! time only evaluation happens. Conditions (`if`, `when`, `wait.until`,
//! switch cases) are always CEL. Values (action arguments, `set`, `fail`
//! reasons, `sleep.until`) are literals unless written as `${{ expr }}`:
//! a string that is exactly one `${{ expr }}` takes the expression's value
//! and type; a string that mixes text and `${{ }}` is interpolated into a
//! string. That keeps the common case (a literal carrier name, a literal
//! reason) free of quoting puzzles.
//!
//! The names in scope: `order`, `steps` (each finished step's output),
//! `vars`, `event` (only inside `wait`), `error` (the last caught error,
//! `{kind, message, step}`) and `now` (Unix seconds, an int).
//!
//! An expression whose estimated cost exceeds [`super::cost::MAX_COST`] does
//! not compile, so a workflow holding one never loads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use cel::common::ast::{EntryExpr, Expr as Ast, IdedExpr};

use super::value::Data;

/// Longest expression accepted, and the deepest bracket nesting: hostile
/// input must not overflow the parser's stack.
pub const MAX_EXPR_LEN: usize = 2_000;
const MAX_EXPR_NESTING: usize = 24;

/// The top-level names an expression may use.
pub const SCOPE_NAMES: &[&str] = &["order", "steps", "vars", "event", "error", "now"];

/// A compiled CEL expression with what the validator needs to know of it.
#[derive(Clone)]
pub struct Expr {
    pub source: String,
    program: Arc<cel::Program>,
    /// `steps.X` read without a `has()` guard: X must have run before.
    pub step_refs: BTreeSet<String>,
    /// Top-level identifiers used (excluding comprehension variables).
    pub idents: BTreeSet<String>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// A compile error: the message and the 0-based column inside the source.
#[derive(Debug, Clone, PartialEq)]
pub struct CompileError {
    pub offset: usize,
    pub message: String,
}

fn env() -> &'static Arc<cel::Env> {
    static ENV: OnceLock<Arc<cel::Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(cel::Env::stdlib()))
}

impl Expr {
    pub fn compile(source: &str) -> Result<Expr, CompileError> {
        let source = source.trim();
        if source.is_empty() {
            return Err(CompileError {
                offset: 0,
                message: "empty expression".into(),
            });
        }
        if source.len() > MAX_EXPR_LEN {
            return Err(CompileError {
                offset: 0,
                message: format!("expression is longer than {MAX_EXPR_LEN} characters"),
            });
        }
        let mut depth = 0usize;
        let mut unary_run = 0usize;
        for (i, c) in source.char_indices() {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            unary_run = if c == '!' || c == '-' {
                unary_run + 1
            } else {
                0
            };
            if depth > MAX_EXPR_NESTING || unary_run > MAX_EXPR_NESTING {
                return Err(CompileError {
                    offset: i,
                    message: format!("expression nests deeper than {MAX_EXPR_NESTING} levels"),
                });
            }
        }
        let program = cel::Program::compile(source).map_err(|errs| {
            let first = errs.errors.first();
            CompileError {
                offset: first.map_or(0, |e| e.pos.1.max(0) as usize),
                message: first.map_or_else(
                    || "invalid expression".to_string(),
                    |e| {
                        let msg = e.msg.strip_prefix("Syntax error: ").unwrap_or(&e.msg);
                        format!("CEL syntax error: {msg}")
                    },
                ),
            }
        })?;
        // Refused before anything runs it: see `cost` for why and how.
        if let Err(e) = super::cost::check(program.expression()) {
            return Err(CompileError {
                offset: 0,
                message: e.to_string(),
            });
        }
        let mut step_refs = BTreeSet::new();
        let mut idents = BTreeSet::new();
        let mut bound = BTreeSet::new();
        walk(
            program.expression(),
            &mut step_refs,
            &mut idents,
            &mut bound,
        );
        for b in &bound {
            idents.remove(b);
        }
        Ok(Expr {
            source: source.to_string(),
            program: Arc::new(program),
            step_refs,
            idents,
        })
    }

    pub fn eval(&self, scope: &Scope) -> Result<Data, String> {
        let mut ctx = cel::Context::with_env(env().clone());
        ctx.set_variable_resolver(scope);
        match self.program.execute(&ctx) {
            Ok(v) => Ok(Data::from_cel(&v)),
            Err(e) => Err(format!("`{}`: {e}", self.source)),
        }
    }

    pub fn eval_bool(&self, scope: &Scope) -> Result<bool, String> {
        match self.eval(scope)? {
            Data::Bool(b) => Ok(b),
            other => Err(format!(
                "`{}` must be true or false, but gave {}",
                self.source,
                other.to_json()
            )),
        }
    }
}

fn walk(
    e: &IdedExpr,
    refs: &mut BTreeSet<String>,
    idents: &mut BTreeSet<String>,
    bound: &mut BTreeSet<String>,
) {
    match &e.expr {
        Ast::Ident(name) => {
            idents.insert(name.clone());
        }
        Ast::Select(sel) => {
            if let Ast::Ident(root) = &sel.operand.expr {
                if root == "steps" && !sel.test {
                    refs.insert(sel.field.clone());
                }
            }
            walk(&sel.operand, refs, idents, bound);
        }
        Ast::Call(c) => {
            if let Some(t) = &c.target {
                walk(t, refs, idents, bound);
            }
            for a in &c.args {
                walk(a, refs, idents, bound);
            }
        }
        Ast::List(l) => {
            for a in &l.elements {
                walk(a, refs, idents, bound);
            }
        }
        Ast::Map(m) => {
            for entry in &m.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    walk(&me.key, refs, idents, bound);
                    walk(&me.value, refs, idents, bound);
                }
            }
        }
        Ast::Struct(s) => {
            for entry in &s.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(me) => {
                        walk(&me.key, refs, idents, bound);
                        walk(&me.value, refs, idents, bound);
                    }
                    EntryExpr::StructField(f) => walk(&f.value, refs, idents, bound),
                }
            }
        }
        Ast::Comprehension(c) => {
            bound.insert(c.iter_var.clone());
            if let Some(v) = &c.iter_var2 {
                bound.insert(v.clone());
            }
            bound.insert(c.accu_var.clone());
            for part in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                walk(part, refs, idents, bound);
            }
        }
        Ast::Literal(_) | Ast::Unspecified => {}
    }
}

/// A value ready for CEL. Converting a `cel::Value` into CEL's runtime
/// representation is a deep copy, so it is done once (the order once per
/// input, not once per expression) and then lent to every evaluation.
pub type Val = Arc<dyn cel::common::value::Val>;

/// Converts once; a value CEL cannot represent becomes null.
pub fn val(v: cel::Value) -> Val {
    match Box::<dyn cel::common::value::Val>::try_from(v) {
        Ok(b) => Arc::from(b),
        Err(_) => Arc::new(cel::common::types::CelNull),
    }
}

pub fn null() -> Val {
    Arc::new(cel::common::types::CelNull)
}

/// What expressions see. Built by the interpreter from the instance and
/// handed to CEL as a variable resolver, so no variable is copied per
/// evaluation.
#[derive(Clone)]
pub struct Scope {
    pub order: Val,
    pub steps: Val,
    pub vars: Val,
    pub event: Val,
    pub error: Val,
    pub now: i64,
}

impl cel::context::VariableResolver for Scope {
    fn resolve<'b>(&'b self, variable: &str) -> Option<cel::common::value::CowVal<'b, 'b>> {
        use cel::common::value::CowVal;
        let v: &'b Val = match variable {
            "order" => &self.order,
            "steps" => &self.steps,
            "vars" => &self.vars,
            "event" => &self.event,
            "error" => &self.error,
            "now" => {
                return Some(CowVal::Owned(Box::new(cel::common::types::CelInt::from(
                    self.now,
                ))))
            }
            _ => return None,
        };
        Some(CowVal::Borrowed(&**v))
    }
}

/// A value written in the workflow: a literal, one expression, a string
/// with `${{ }}` parts, or a list/map of those.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    Literal(Data),
    Expr(Expr),
    Interpolated(Vec<Part>),
    List(Vec<Template>),
    Map(BTreeMap<String, Template>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Expr(Expr),
}

/// A template problem: byte offset inside the string, and the message.
pub type TemplateError = CompileError;

impl Template {
    /// Parses a string value: `${{ e }}` alone is an expression, mixed text
    /// is interpolation, anything else a literal.
    pub fn parse_str(s: &str) -> Result<Template, TemplateError> {
        if !s.contains("${{") {
            return Ok(Template::Literal(Data::Str(s.to_string())));
        }
        let mut parts = Vec::new();
        let mut rest = s;
        let mut base = 0usize;
        while let Some(start) = rest.find("${{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 3..];
            let Some(end) = after.find("}}") else {
                return Err(CompileError {
                    offset: base + start,
                    message: "`${{` has no closing `}}`".into(),
                });
            };
            let inner = &after[..end];
            let e = Expr::compile(inner).map_err(|mut err| {
                err.offset += base + start + 3;
                err
            })?;
            parts.push(Part::Expr(e));
            let consumed = start + 3 + end + 2;
            base += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if parts.len() == 1 {
            if let Part::Expr(e) = &parts[0] {
                return Ok(Template::Expr(e.clone()));
            }
        }
        Ok(Template::Interpolated(parts))
    }

    pub fn is_literal(&self) -> bool {
        match self {
            Template::Literal(_) => true,
            Template::List(l) => l.iter().all(Template::is_literal),
            Template::Map(m) => m.values().all(Template::is_literal),
            _ => false,
        }
    }

    /// The value of a template without expressions (`None` if it has any):
    /// rendering it needs no scope, which is costly to build.
    pub fn literal_value(&self) -> Option<Data> {
        match self {
            Template::Literal(d) => Some(d.clone()),
            Template::List(l) => l
                .iter()
                .map(Template::literal_value)
                .collect::<Option<_>>()
                .map(Data::List),
            Template::Map(m) => m
                .iter()
                .map(|(k, t)| Some((k.clone(), t.literal_value()?)))
                .collect::<Option<_>>()
                .map(Data::Map),
            Template::Expr(_) | Template::Interpolated(_) => None,
        }
    }

    pub fn render(&self, scope: &Scope) -> Result<Data, String> {
        Ok(match self {
            Template::Literal(d) => d.clone(),
            Template::Expr(e) => e.eval(scope)?,
            Template::Interpolated(parts) => {
                let mut s = String::new();
                for p in parts {
                    match p {
                        Part::Text(t) => s.push_str(t),
                        Part::Expr(e) => s.push_str(&e.eval(scope)?.render()),
                    }
                }
                Data::Str(s)
            }
            Template::List(l) => Data::List(
                l.iter()
                    .map(|t| t.render(scope))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Map(m) => Data::Map(
                m.iter()
                    .map(|(k, t)| Ok((k.clone(), t.render(scope)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }

    /// Every expression inside, for reference checks.
    pub fn exprs(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Expr>) {
        match self {
            Template::Literal(_) => {}
            Template::Expr(e) => out.push(e),
            Template::Interpolated(p) => out.extend(p.iter().filter_map(|p| match p {
                Part::Expr(e) => Some(e),
                Part::Text(_) => None,
            })),
            Template::List(l) => l.iter().for_each(|t| t.collect(out)),
            Template::Map(m) => m.values().for_each(|t| t.collect(out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            order: val(Data::from_json(
                &serde_json::json!({"id": "42", "payment": {"total_amount": 120.5}}),
            )
            .to_cel()),
            steps: val(Data::map([("reserve", Data::map([("ok", Data::Bool(true))]))]).to_cel()),
            vars: val(Data::map([("n", Data::Int(3))]).to_cel()),
            event: null(),
            error: null(),
            now: 1_700_000_000,
        }
    }

    #[test]
    fn finds_unguarded_step_references() {
        let e = Expr::compile("steps.reserve.ok && has(steps.label) && vars.n > 1").unwrap();
        assert_eq!(e.step_refs.iter().collect::<Vec<_>>(), vec!["reserve"]);
        assert!(e.idents.contains("vars"));
        let c = Expr::compile("order.line_items.all(li, li.sale_price > 0.0)").unwrap();
        assert!(!c.idents.contains("li"));
    }

    #[test]
    fn evaluates_against_scope() {
        let s = scope();
        assert!(Expr::compile("order.payment.total_amount > 100.0")
            .unwrap()
            .eval_bool(&s)
            .unwrap());
        assert!(Expr::compile("vars.n").unwrap().eval_bool(&s).is_err());
    }

    #[test]
    fn templates_distinguish_literal_expression_and_interpolation() {
        let s = scope();
        assert_eq!(
            Template::parse_str("ups").unwrap().render(&s).unwrap(),
            Data::from("ups")
        );
        assert_eq!(
            Template::parse_str("${{ vars.n + 1 }}")
                .unwrap()
                .render(&s)
                .unwrap(),
            Data::Int(4)
        );
        assert_eq!(
            Template::parse_str("Order ${{ order.id }} has ${{ vars.n }} items")
                .unwrap()
                .render(&s)
                .unwrap(),
            Data::from("Order 42 has 3 items")
        );
        let err = Template::parse_str("x ${{ order.id ").unwrap_err();
        assert_eq!(err.offset, 2);
    }

    #[test]
    fn hostile_expressions_are_refused() {
        assert!(Expr::compile(&"(".repeat(100)).is_err());
        assert!(Expr::compile(&"!".repeat(100)).is_err());
        assert!(Expr::compile(&"a+".repeat(2000)).is_err());
    }
}
