//! A static upper bound on what evaluating a CEL expression costs.
//!
//! Why: the `cel` crate has no cost limit, and a short expression can ask
//! for astronomically much work. Ten-element lists mapped eight deep are
//! 10^8 evaluations; `x + x` inside nested maps doubles a list at every
//! level. One such expression in a saved workflow aborted the daemon (out
//! of memory) and crash-looped it on every restart, and one in a dry-run
//! held an HTTP worker for minutes. So every expression is estimated once,
//! when it is compiled ([`super::expr::Expr::compile`]: validation, `orderflow
//! validate`, saving and loading a workflow), and refused when the estimate
//! exceeds [`MAX_COST`].
//!
//! The estimate follows cel-go's cost estimator in spirit. Each node of the
//! parsed expression gets an upper bound of its evaluation cost and a
//! [`Shape`]: how long the value can be (elements of a list or map, bytes of
//! a string), how big in total (in cells, see [`CELL_BYTES`]), and the shape
//! of its elements. List and map literals have known lengths; `+` sums
//! lengths and pays for copying both sides; indexing and field selection
//! give the element shape; a comprehension (what `all`, `exists`,
//! `exists_one`, `map` and `filter` expand to) costs its range length times
//! its loop condition and step, with an accumulator that grows by at most
//! what one step adds. A step that adds more the bigger the accumulator
//! gets (`@result + @result`) is unbounded. The names in scope get the
//! bounds documented beside [`ORDER_MAX_LIST`] and the constants after it.
//!
//! Types are not checked, so every value is costed as if it could be any
//! type its shape allows: `a + b` on shapes that may be lists or strings
//! pays for the copy. Costs saturate: [`UNBOUNDED`] means "more than any
//! budget".
//!
//! One deliberate difference from a naive model: `map` and `filter` expand
//! to `@result + [body]`, which copies the accumulator on every iteration
//! (quadratic) when evaluated literally. cel 0.15 recognises exactly that
//! shape (`AppendStep` in its `objects.rs`, mirroring cel-go) and appends to
//! one list in place, so such a comprehension is costed linearly here, but
//! only when its AST has precisely that shape; any other accumulator is
//! costed by copying it on every step. Costing `map` quadratically would
//! refuse ordinary expressions like `order.line_items.map(i, i.sku_id)`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel::common::ast::{operators, EntryExpr, Expr as Ast, IdedExpr, LiteralValue};

/// The most an accepted expression may cost, in cost units: roughly one
/// unit per node evaluated and one per cell copied or compared. Measured
/// on the 2-core test machine (release build, `cargo bench --bench
/// expression_budget`), the dearest shape per unit (nested `exists` around
/// `int('…')` parsing, 43-47 ns a unit) took 0.40-0.43 s at 9.3M units; copying-heavy shapes run at 2-16
/// ns a unit.
pub const MAX_COST: u64 = 10_000_000;

/// A cost or size beyond any budget.
pub const UNBOUNDED: u64 = u64::MAX;

/// Bytes of string per size cell: a scalar, an empty container or up to 16
/// bytes of a string is one cell.
pub const CELL_BYTES: u64 = 16;

/// Fixed cost of a regular expression (`matches`): compiling it, per byte
/// of pattern.
const REGEX_COST_PER_PATTERN_BYTE: u64 = 1_000;

// Input bounds. An expression sees only these names (see
// `expr::SCOPE_NAMES`); each bound says where it is enforced.

/// `order`: at most this many elements in a list or map that is one of
/// its fields (`line_items`, `packages`, `tags`, `units`). Assumed from
/// TikTok's order limits; not enforced by orderflow.
pub const ORDER_MAX_LIST: u64 = 1_000;
/// `order`: at most this many fields in one line item, or districts in the
/// recipient's address (`Order::to_json` builds line items of 8 fields;
/// TikTok sends up to 5 address levels). Districts: assumed, not enforced.
pub const ORDER_MAX_INNER: u64 = 16;
/// `order`: the longest string inside it (a name, an address, the buyer's
/// message). Assumed from TikTok's field limits; not enforced.
pub const ORDER_MAX_STR: u64 = 4 * 1024;
/// `order`: its whole size in cells (16 MiB of strings). Assumed; not
/// enforced.
pub const ORDER_MAX_CELLS: u64 = 1 << 20;
/// `steps`: how many step outputs (one per step id of a workflow). A
/// workflow file is at most `node::MAX_FILE_BYTES`, and a step takes more
/// than 8 bytes of it.
pub const STEPS_MAX: u64 = (super::node::MAX_FILE_BYTES / 8) as u64;
/// `steps.X`: one step's output. `http.request` bodies are capped at
/// `actions::http::MAX_RESPONSE_BYTES` (1 MiB) when read, and a `set` step's
/// output holds variables (see [`VAR_MAX_CELLS`]); the other actions build
/// small outputs themselves. Any list or string in it is at most this long.
pub const STEP_OUTPUT_MAX_BYTES: u64 = 1 << 20;
/// `vars.X`: one variable, in cells. Enforced by the interpreter: a `set`
/// (or a default) whose value is bigger fails the step (the default is
/// null).
pub const VAR_MAX_CELLS: u64 = 64 * 1024;
/// `event`: a `wait` step's event, at most `server.max_body_bytes` (1 MiB by
/// default; configurable up to 64 MiB, beyond this assumption).
pub const EVENT_MAX_BYTES: u64 = 1 << 20;
/// `error`: `{kind, message, step}` of the last caught error; messages are
/// built by orderflow from bounded parts.
pub const ERROR_MAX_BYTES: u64 = 64 * 1024;

/// Refused expressions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("expression is too expensive: estimated {} steps, the limit is {limit}", steps(*.estimated))]
    TooExpensive { estimated: u64, limit: u64 },
}

fn steps(n: u64) -> String {
    if n == UNBOUNDED {
        "unboundedly many".into()
    } else {
        n.to_string()
    }
}

/// Refuses an expression whose estimated cost exceeds [`MAX_COST`].
pub fn check(e: &IdedExpr) -> Result<Estimate, Error> {
    let est = estimate(e);
    if est.cost > MAX_COST {
        return Err(Error::TooExpensive {
            estimated: est.cost,
            limit: MAX_COST,
        });
    }
    Ok(est)
}

/// The estimate of an expression with every scope name at its bound.
pub fn estimate(e: &IdedExpr) -> Estimate {
    let mut est = Estimator::default();
    est.node(e)
}

/// The cost bound of an expression and the shape of its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub cost: u64,
    pub shape: Shape,
}

/// What a value can be, as upper bounds. A value of unknown type can be
/// any of them at once: `items` if it is a list or map, `chars` if it is a
/// string or bytes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Shape {
    /// Elements of a list, entries of a map.
    pub items: u64,
    /// Bytes of a string or bytes value.
    pub chars: u64,
    /// Size in cells, nested values included: what copying or comparing
    /// the whole value costs.
    pub total: u64,
    /// The shape of every element (list elements, map keys and values).
    /// `None`: no elements.
    elem: Option<Arc<Shape>>,
}

fn add(a: u64, b: u64) -> u64 {
    a.saturating_add(b)
}

fn mul(a: u64, b: u64) -> u64 {
    a.saturating_mul(b)
}

/// Cells of a string of `chars` bytes.
pub fn cells(chars: u64) -> u64 {
    add(1, chars / CELL_BYTES)
}

impl Shape {
    pub fn scalar() -> Shape {
        Shape {
            items: 0,
            chars: 0,
            total: 1,
            elem: None,
        }
    }

    pub fn string(chars: u64) -> Shape {
        Shape {
            items: 0,
            chars,
            total: cells(chars),
            elem: None,
        }
    }

    /// A value that is a number, a bool, null or an empty container: `+`
    /// on two of them copies nothing.
    fn is_scalar(&self) -> bool {
        self.items == 0 && self.chars == 0
    }

    /// The shape of any element.
    pub fn elem(&self) -> Shape {
        match &self.elem {
            Some(e) => (**e).clone(),
            None => Shape::scalar(),
        }
    }

    /// The least shape covering both.
    pub fn join(&self, other: &Shape) -> Shape {
        Shape {
            items: self.items.max(other.items),
            chars: self.chars.max(other.chars),
            total: self.total.max(other.total),
            elem: join_elem(&self.elem, &other.elem),
        }
    }

    /// Whether every value of `self` is also one of `other`.
    fn within(&self, other: &Shape) -> bool {
        self.items <= other.items
            && self.chars <= other.chars
            && self.total <= other.total
            && match (&self.elem, &other.elem) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.within(b),
            }
    }

    /// Nested levels, outermost first: `(items, chars, cells)` of each,
    /// the last one repeated down to the deepest an expression can reach
    /// when `repeat_last` (JSON of unknown depth). Each level's size is at
    /// most its own cap and at most what its elements can add up to.
    fn levels(levels: &[(u64, u64, u64)], repeat_last: bool) -> Shape {
        // Each step into a value (`.f`, `[i]`, a macro's variable) takes
        // at least two characters of the expression.
        let reach = super::expr::MAX_EXPR_LEN / 2 + 1;
        let mut all: Vec<(u64, u64, u64)> = levels.to_vec();
        if repeat_last {
            if let Some(&last) = levels.last() {
                while all.len() < reach {
                    all.push(last);
                }
            }
        }
        let mut below: Option<Arc<Shape>> = None;
        for &(items, chars, cap) in all.iter().rev() {
            let elem_total = below.as_ref().map_or(1, |b| b.total);
            let total = cap.min(add(1, cells(chars).max(mul(items, elem_total))));
            below = Some(Arc::new(Shape {
                items,
                chars,
                total,
                elem: if items > 0 { below } else { None },
            }));
        }
        below.map_or_else(Shape::scalar, |s| (*s).clone())
    }
}

fn join_elem(a: &Option<Arc<Shape>>, b: &Option<Arc<Shape>>) -> Option<Arc<Shape>> {
    match (a, b) {
        (None, x) | (x, None) => x.clone(),
        (Some(x), Some(y)) if Arc::ptr_eq(x, y) => Some(x.clone()),
        (Some(x), Some(y)) => Some(Arc::new(x.join(y))),
    }
}

/// The bound of a JSON document of at most `bytes` bytes: a list has at
/// most `bytes / 2` elements, a string at most `bytes` bytes, and no part
/// of it more cells than bytes.
fn json_level(bytes: u64) -> (u64, u64, u64) {
    (bytes / 2, bytes, bytes)
}

/// The shape of a name in scope (see the bounds above).
pub fn input(name: &str) -> Option<Shape> {
    static INPUTS: OnceLock<HashMap<&'static str, Shape>> = OnceLock::new();
    let all = INPUTS.get_or_init(|| {
        let c = ORDER_MAX_CELLS;
        let var_level = (VAR_MAX_CELLS, mul(VAR_MAX_CELLS, CELL_BYTES), VAR_MAX_CELLS);
        let mut m = HashMap::new();
        // The order is a map of a few dozen fields (`Order::to_json`),
        // some of them lists or maps (line items, districts) of strings
        // and numbers: nothing deeper than three levels.
        m.insert(
            "order",
            Shape::levels(
                &[
                    (64, 0, c),
                    (ORDER_MAX_LIST, ORDER_MAX_STR, c),
                    (ORDER_MAX_INNER, ORDER_MAX_STR, c),
                    (0, ORDER_MAX_STR, c),
                ],
                false,
            ),
        );
        m.insert(
            "steps",
            Shape::levels(
                &[(STEPS_MAX, 0, UNBOUNDED), json_level(STEP_OUTPUT_MAX_BYTES)],
                true,
            ),
        );
        m.insert(
            "vars",
            Shape::levels(&[(STEPS_MAX, 0, UNBOUNDED), var_level], true),
        );
        m.insert("event", Shape::levels(&[json_level(EVENT_MAX_BYTES)], true));
        m.insert("error", Shape::levels(&[json_level(ERROR_MAX_BYTES)], true));
        m.insert("now", Shape::scalar());
        m
    });
    all.get(name).cloned()
}

#[derive(Default)]
struct Estimator {
    /// Comprehension variables in scope, innermost last.
    bound: Vec<(String, Shape)>,
    /// Estimates of subexpressions already made for the comprehension
    /// being estimated (see [`Estimator::comprehension`]).
    memo: HashMap<u64, Estimate>,
}

fn est(cost: u64, shape: Shape) -> Estimate {
    Estimate { cost, shape }
}

impl Estimator {
    fn node(&mut self, e: &IdedExpr) -> Estimate {
        if let Some(m) = self.memo.get(&e.id) {
            return m.clone();
        }
        match &e.expr {
            Ast::Literal(l) => est(
                1,
                match l {
                    LiteralValue::String(s) => Shape::string(s.inner().len() as u64),
                    LiteralValue::Bytes(b) => Shape::string(b.inner().len() as u64),
                    _ => Shape::scalar(),
                },
            ),
            Ast::Ident(name) => {
                let shape = self
                    .bound
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, s)| s.clone())
                    .or_else(|| input(name))
                    // Anything else is a type name or fails to resolve.
                    .unwrap_or_else(Shape::scalar);
                est(1, shape)
            }
            Ast::Select(sel) => {
                let o = self.node(&sel.operand);
                let shape = if sel.test {
                    Shape::scalar()
                } else {
                    o.shape.elem()
                };
                est(add(o.cost, 1), shape)
            }
            Ast::Call(c) => {
                let target = c.target.as_ref().map(|t| self.node(t));
                let args: Vec<Estimate> = c.args.iter().map(|a| self.node(a)).collect();
                call(&c.func_name, target, args)
            }
            Ast::List(l) => {
                let parts: Vec<Estimate> = l.elements.iter().map(|x| self.node(x)).collect();
                container(parts.len() as u64, &parts)
            }
            Ast::Map(m) => {
                let mut parts = Vec::new();
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        parts.push(self.node(&me.key));
                        parts.push(self.node(&me.value));
                    }
                }
                container(m.entries.len() as u64, &parts)
            }
            Ast::Struct(s) => {
                let mut parts = Vec::new();
                for entry in &s.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(me) => {
                            parts.push(self.node(&me.key));
                            parts.push(self.node(&me.value));
                        }
                        EntryExpr::StructField(f) => parts.push(self.node(&f.value)),
                    }
                }
                container(s.entries.len() as u64, &parts)
            }
            Ast::Comprehension(c) => self.comprehension(c),
            Ast::Unspecified => est(1, Shape::scalar()),
        }
    }

    fn comprehension(&mut self, c: &cel::common::ast::ComprehensionExpr) -> Estimate {
        let range = self.node(&c.iter_range);
        let n = range.shape.items;
        let elem = range.shape.elem();
        let scope_len = self.bound.len();
        match &c.iter_var2 {
            // Two variables: index (or key) and value.
            Some(v2) => {
                self.bound
                    .push((c.iter_var.clone(), elem.join(&Shape::scalar())));
                self.bound.push((v2.clone(), elem.clone()));
            }
            None => self.bound.push((c.iter_var.clone(), elem.clone())),
        }
        let init = self.node(&c.accu_init);
        // Iterating clones every element once: the range's size.
        let base = add(add(add(1, range.cost), init.cost), range.shape.total);

        let out = if let Some((guard, items)) = append_step(c) {
            // cel appends to one list in place (see the module doc).
            self.bound.push((c.accu_var.clone(), init.shape.clone()));
            let cond = self.node(&c.loop_cond);
            let g = guard.map(|g| self.node(g));
            let it = self.node(items);
            // An element appended as the loop variable itself (`filter`'s
            // `[x]`) is a different element of the range each time: all of
            // them together are no bigger than the range, not n times the
            // biggest. Each is copied twice (into `[x]`, then appended).
            let value_var = c.iter_var2.as_ref().unwrap_or(&c.iter_var);
            let direct = match &items.expr {
                Ast::List(l) => l
                    .elements
                    .iter()
                    .filter(|x| matches!(&x.expr, Ast::Ident(v) if v == value_var))
                    .count() as u64,
                _ => 0,
            };
            let direct_each = mul(direct, elem.total);
            let direct_all = mul(direct, range.shape.total);
            let per = add(
                add(cond.cost, g.map_or(0, |g| g.cost)),
                add(it.cost, it.shape.total).saturating_sub(mul(2, direct_each)),
            );
            let shape = Shape {
                items: mul(n, it.shape.items),
                chars: 0,
                total: add(
                    add(1, mul(n, it.shape.total.saturating_sub(direct_each))),
                    direct_all,
                ),
                elem: it.shape.elem.clone(),
            };
            est(add(add(base, mul(n, per)), mul(2, direct_all)), shape)
        } else {
            // Subexpressions that do not read the accumulator are the same
            // at every iteration: estimated once, not once per pass.
            let mut roots = Vec::new();
            accu_free_roots(&c.loop_step, &c.accu_var, &mut roots);
            accu_free_roots(&c.loop_cond, &c.accu_var, &mut roots);
            accu_free_roots(&c.result, &c.accu_var, &mut roots);
            for r in &roots {
                let v = self.node(r);
                self.memo.insert(r.id, v);
            }
            // One step from the initial accumulator gives the growth per
            // iteration; the accumulator after n steps is at most n times
            // that, provided a step from there grows it no more.
            self.bound.push((c.accu_var.clone(), init.shape.clone()));
            let first = self.node(&c.loop_step);
            let grown = |k: u64| grow(&init.shape, &first.shape, k);
            let last = grown(n);
            self.bound.pop();
            self.bound.push((c.accu_var.clone(), last.clone()));
            let cond = self.node(&c.loop_cond);
            let step = self.node(&c.loop_step);
            let result = self.node(&c.result);
            for r in &roots {
                self.memo.remove(&r.id);
            }
            if !step.shape.within(&grown(add(n, 1))) {
                est(UNBOUNDED, Shape::default())
            } else {
                est(
                    add(add(base, mul(n, add(cond.cost, step.cost))), result.cost),
                    result.shape,
                )
            }
        };
        self.bound.truncate(scope_len);
        out
    }
}

/// `init` grown `k` times by what one step added to it.
fn grow(init: &Shape, once: &Shape, k: u64) -> Shape {
    let g = |a: u64, b: u64| add(a, mul(k, b.saturating_sub(a)));
    Shape {
        items: g(init.items, once.items),
        chars: g(init.chars, once.chars),
        total: g(init.total, once.total),
        elem: join_elem(&init.elem, &once.elem),
    }
}

/// The guard and the appended list of a comprehension cel evaluates by
/// appending in place: an empty list to start, a literal condition, the
/// accumulator as result, and a step `@r + [..]` or `g ? @r + [..] : @r`.
fn append_step(c: &cel::common::ast::ComprehensionExpr) -> Option<(Option<&IdedExpr>, &IdedExpr)> {
    let accu = c.accu_var.as_str();
    let is_accu = |e: &IdedExpr| matches!(&e.expr, Ast::Ident(n) if n == accu);
    let appended = |e: &'_ IdedExpr| -> bool {
        matches!(&e.expr, Ast::Call(call)
            if call.func_name == operators::ADD
                && call.target.is_none()
                && call.args.len() == 2
                && is_accu(&call.args[0])
                && matches!(call.args[1].expr, Ast::List(_)))
    };
    let empty_init = matches!(&c.accu_init.expr, Ast::List(l) if l.elements.is_empty());
    if !empty_init || !is_accu(&c.result) || !matches!(c.loop_cond.expr, Ast::Literal(_)) {
        return None;
    }
    let Ast::Call(step) = &c.loop_step.expr else {
        return None;
    };
    if step.func_name == operators::CONDITIONAL && step.target.is_none() {
        match step.args.as_slice() {
            [guard, add_step, otherwise] if is_accu(otherwise) && appended(add_step) => {
                let Ast::Call(a) = &add_step.expr else {
                    return None;
                };
                Some((Some(guard), &a.args[1]))
            }
            _ => None,
        }
    } else if appended(&c.loop_step) {
        Some((None, &step.args[1]))
    } else {
        None
    }
}

/// Whether `e` reads the variable `name` (not shadowed by a comprehension).
fn reads(e: &IdedExpr, name: &str) -> bool {
    match &e.expr {
        Ast::Ident(n) => n == name,
        Ast::Select(s) => reads(&s.operand, name),
        Ast::Call(c) => {
            c.target.as_ref().is_some_and(|t| reads(t, name))
                || c.args.iter().any(|a| reads(a, name))
        }
        Ast::List(l) => l.elements.iter().any(|x| reads(x, name)),
        Ast::Map(m) => m.entries.iter().any(|en| match &en.expr {
            EntryExpr::MapEntry(me) => reads(&me.key, name) || reads(&me.value, name),
            EntryExpr::StructField(f) => reads(&f.value, name),
        }),
        Ast::Struct(s) => s.entries.iter().any(|en| match &en.expr {
            EntryExpr::MapEntry(me) => reads(&me.key, name) || reads(&me.value, name),
            EntryExpr::StructField(f) => reads(&f.value, name),
        }),
        Ast::Comprehension(c) => {
            let shadowed =
                c.iter_var == name || c.accu_var == name || c.iter_var2.as_deref() == Some(name);
            reads(&c.iter_range, name)
                || reads(&c.accu_init, name)
                || (!shadowed
                    && (reads(&c.loop_cond, name)
                        || reads(&c.loop_step, name)
                        || reads(&c.result, name)))
        }
        Ast::Literal(_) | Ast::Unspecified => false,
    }
}

/// The largest subexpressions of `e` that do not read `name`.
fn accu_free_roots<'a>(e: &'a IdedExpr, name: &str, out: &mut Vec<&'a IdedExpr>) {
    if !reads(e, name) {
        out.push(e);
        return;
    }
    match &e.expr {
        Ast::Select(s) => accu_free_roots(&s.operand, name, out),
        Ast::Call(c) => {
            if let Some(t) = &c.target {
                accu_free_roots(t, name, out);
            }
            for a in &c.args {
                accu_free_roots(a, name, out);
            }
        }
        Ast::List(l) => l
            .elements
            .iter()
            .for_each(|x| accu_free_roots(x, name, out)),
        // Rare inside a step (macros never put them there): estimated
        // with the rest.
        _ => {}
    }
}

/// A list or map literal of `n` elements (entries) built from `parts`
/// (each copied into it).
fn container(n: u64, parts: &[Estimate]) -> Estimate {
    let mut cost = 1u64;
    let mut total = 1u64;
    let mut elem: Option<Arc<Shape>> = None;
    for p in parts {
        cost = add(cost, add(p.cost, p.shape.total));
        total = add(total, p.shape.total);
        elem = join_elem(&elem, &Some(Arc::new(p.shape.clone())));
    }
    est(
        cost,
        Shape {
            items: n,
            chars: 0,
            total,
            elem,
        },
    )
}

/// A function or operator call: the receiver (if any) is `target`.
fn call(name: &str, target: Option<Estimate>, args: Vec<Estimate>) -> Estimate {
    // Receiver first, then the arguments, as one list.
    let all: Vec<Estimate> = target.into_iter().chain(args).collect();
    let sub = all.iter().fold(1u64, |c, a| add(c, a.cost));
    let shape = |i: usize| all.get(i).map_or_else(Shape::scalar, |a| a.shape.clone());
    let scalar = |extra: u64| est(add(sub, extra), Shape::scalar());
    match name {
        operators::LOGICAL_AND
        | operators::LOGICAL_OR
        | operators::LOGICAL_NOT
        | operators::NOT_STRICTLY_FALSE
        | operators::SUBSTRACT
        | operators::MULTIPLY
        | operators::DIVIDE
        | operators::MODULO
        | operators::NEGATE => scalar(0),
        operators::CONDITIONAL => {
            let c = all.first().map_or(0, |a| a.cost);
            let branch = all.iter().skip(1).map(|a| a.cost).max().unwrap_or(0);
            est(add(add(1, c), branch), shape(1).join(&shape(2)))
        }
        operators::ADD => {
            let (a, b) = (shape(0), shape(1));
            if a.is_scalar() && b.is_scalar() {
                return scalar(0);
            }
            let total = add(a.total, b.total);
            est(
                add(sub, total),
                Shape {
                    items: add(a.items, b.items),
                    chars: add(a.chars, b.chars),
                    total,
                    elem: join_elem(&a.elem, &b.elem),
                },
            )
        }
        operators::EQUALS
        | operators::NOT_EQUALS
        | operators::LESS
        | operators::LESS_EQUALS
        | operators::GREATER
        | operators::GREATER_EQUALS => scalar(shape(0).total.min(shape(1).total)),
        operators::IN => {
            let (x, c) = (shape(0), shape(1));
            let each = add(1, x.total.min(c.elem().total));
            scalar(mul(c.items.max(1), each))
        }
        operators::INDEX | operators::OPT_INDEX => est(add(sub, shape(1).total), shape(0).elem()),
        operators::OPT_SELECT => est(sub, shape(0).elem()),
        "size" => scalar(shape(0).total),
        "contains" | "startsWith" | "endsWith" => {
            scalar(add(cells(shape(0).chars), cells(shape(1).chars)))
        }
        "matches" => {
            let (s, p) = (shape(0), shape(1));
            scalar(mul(
                add(1, p.chars),
                add(REGEX_COST_PER_PATTERN_BYTE, cells(s.chars)),
            ))
        }
        "string" | "bytes" => {
            let a = shape(0);
            est(add(sub, a.total), Shape::string(add(a.chars, 64)))
        }
        "int" | "uint" | "double" | "bool" | "timestamp" | "duration" | "type" | "hasValue"
        | "getFullYear" | "getMonth" | "getDayOfYear" | "getDayOfMonth" | "getDate"
        | "getDayOfWeek" | "getHours" | "getMinutes" | "getSeconds" | "getMilliseconds"
        | "optional.none" => scalar(all.iter().fold(0, |c, a| add(c, cells(a.shape.chars)))),
        "dyn" | "optional.of" | "optional.ofNonZeroValue" | "value" => {
            est(add(sub, shape(0).total), shape(0))
        }
        "or" | "orValue" => est(sub, shape(0).join(&shape(1))),
        _ => {
            // Not a function of the standard library (it fails when run),
            // or one added since: as costly as every combination of its
            // arguments, and as big as all of them together.
            let combos = all.iter().fold(1u64, |c, a| mul(c, add(1, a.shape.total)));
            let mut joined = Shape::scalar();
            let mut total = 1u64;
            for a in &all {
                joined = joined.join(&a.shape);
                total = add(total, a.shape.total);
            }
            joined.total = total;
            est(add(sub, combos), joined)
        }
    }
}

/// The size of a stored value in cells (see [`CELL_BYTES`]).
pub fn data_cells(d: &super::value::Data) -> u64 {
    use super::value::Data;
    match d {
        Data::Str(s) => cells(s.len() as u64),
        Data::List(l) => l.iter().fold(1u64, |c, x| add(c, data_cells(x))),
        Data::Map(m) => m.iter().fold(1u64, |c, (k, v)| {
            add(add(c, cells(k.len() as u64)), data_cells(v))
        }),
        _ => 1,
    }
}

/// Expression shapes the cost limit is measured and tested with (the unit
/// tests here and `benches/expression_budget.rs`).
#[doc(hidden)]
pub mod cases {
    /// A ten-element list literal.
    pub fn digits() -> String {
        "[0,1,2,3,4,5,6,7,8,9]".to_string()
    }

    /// Ten-element lists mapped `depth` deep (the first attack: eight).
    pub fn nested_maps(depth: usize) -> String {
        let vars: Vec<String> = (0..depth).map(|i| format!("v{i}")).collect();
        let mut s = vars.join(" + ");
        for v in vars.iter().rev() {
            s = format!("{}.map({v}, {s})", digits());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::expr::Expr;

    fn cost(src: &str) -> u64 {
        let p = cel::Program::compile(src).unwrap();
        estimate(p.expression()).cost
    }

    use super::cases::{digits, nested_maps};

    /// The issue's second attack: lists doubled with `x + x` inside maps.
    fn doubling(depth: usize) -> String {
        let mut s = format!("[{}]", digits());
        for _ in 0..depth {
            s = format!("{s}.map(x, x + x)");
        }
        format!("{}.map(a, {}.map(b, {s}))", digits(), digits())
    }

    #[test]
    fn the_attack_expressions_are_refused() {
        for src in [
            nested_maps(8),
            doubling(24),
            format!("{}.map(a, {}.map(b, {}.map(c, {}.map(d, {}.map(e, {}.map(f, {}.map(g, {}.map(h, 1))))))))",
                digits(), digits(), digits(), digits(), digits(), digits(), digits(), digits()),
            "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16].map(x, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16].map(y, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16].map(z, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16].map(w, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16].map(v, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16].map(u, 'xxxxxxxxxxxxxxxx'))))))".to_string(),
            "order.line_items.exists(a, order.line_items.exists(b, order.line_items.exists(c, a == b && b == c)))".to_string(),
        ] {
            let e = Expr::compile(&src).expect_err(&src);
            assert!(
                e.message.starts_with("expression is too expensive: estimated "),
                "{src}: {}",
                e.message
            );
            assert!(e.message.ends_with(&format!("the limit is {MAX_COST}")));
        }
        assert!(nested_maps(8).len() <= 448);
    }

    #[test]
    fn an_accumulator_growing_with_itself_is_unbounded() {
        // What `map` would be if a step could read the accumulator twice.
        let range = Ast::List(cel::common::ast::ListExpr::new(vec![
            IdedExpr {
                id: 2,
                expr: Ast::Literal(LiteralValue::Int(1.into()))
            };
            3
        ]));
        let accu = |id| IdedExpr {
            id,
            expr: Ast::Ident("@r".into()),
        };
        let c = cel::common::ast::ComprehensionExpr {
            iter_range: IdedExpr { id: 1, expr: range },
            iter_var: "x".into(),
            iter_var2: None,
            accu_var: "@r".into(),
            accu_init: IdedExpr {
                id: 3,
                expr: Ast::List(cel::common::ast::ListExpr::new(vec![IdedExpr {
                    id: 4,
                    expr: Ast::Literal(LiteralValue::Int(1.into())),
                }])),
            },
            loop_cond: IdedExpr {
                id: 5,
                expr: Ast::Literal(LiteralValue::Boolean(true.into())),
            },
            loop_step: IdedExpr {
                id: 6,
                expr: Ast::Call(cel::common::ast::CallExpr {
                    func_name: operators::ADD.into(),
                    target: None,
                    args: vec![accu(7), accu(8)],
                }),
            },
            result: accu(9),
        };
        let e = IdedExpr {
            id: 10,
            expr: Ast::Comprehension(Box::new(c)),
        };
        assert_eq!(estimate(&e).cost, UNBOUNDED);
        assert!(check(&e)
            .unwrap_err()
            .to_string()
            .contains("unboundedly many"));
    }

    #[test]
    fn ordinary_expressions_are_accepted() {
        for src in [
            "order.payment.total_amount > 100.0",
            "order.is_cod || order.payment.total_amount > 1000.0",
            "order.shipping_type == 'SELLER'",
            "order.payment.total_amount > double(vars.approval_threshold)",
            "order.line_items.exists(i, i.sku_id == 'SKU-1')",
            "order.line_items.all(li, li.sale_price > 0.0)",
            "order.line_items.exists_one(i, i.sale_price > 100.0)",
            "order.line_items.map(i, i.sale_price * 2.0)",
            "order.line_items.map(i, i.sku_id)",
            "order.line_items.filter(i, i.sale_price > 10.0).map(i, i.sku_id)",
            "size(order.line_items) > 3 && order.item_count < 50",
            "order.buyer.email.endsWith('@example.com') && order.id.startsWith('57')",
            "order.buyer.message.contains('gift')",
            "order.recipient.postal_code.matches('^9[0-9]{4}$')",
            "'VIP' in order.tags",
            "steps.reserve.ok && has(steps.label) && vars.n > 1",
            "vars.count + 1",
            "steps.call.body.items.exists(i, i.id == 5)",
            "event.type == 'status' && event.status in ['DELIVERED', 'COMPLETED']",
            "error.kind == 'timeout' ? 'late' : error.message",
            "now - order.create_time > 86400",
            "string(order.payment.total_amount) + ' ' + order.payment.currency",
            "order.id + '-' + steps.buy_label.tracking_number",
        ] {
            Expr::compile(src).unwrap_or_else(|e| panic!("{src}: {}", e.message));
        }
    }

    #[test]
    fn costs_grow_with_the_work() {
        assert!(cost("[1,2,3].map(x, x)") < cost("[1,2,3,4,5,6].map(x, x)"));
        assert!(cost(&nested_maps(2)) < cost(&nested_maps(3)));
        assert!(cost(&nested_maps(3)) >= 1_000);
        assert!(cost("'a' + 'b'") < cost("order.id + order.id"));
        // A map over the order is linear, a nested one quadratic.
        let one = cost("order.line_items.exists(i, i.sale_price > 1.0)");
        let two = cost(
            "order.line_items.exists(i, order.line_items.exists(j, i.sale_price > j.sale_price))",
        );
        assert!(two >= one * ORDER_MAX_LIST / 2);
    }

    /// Estimated sizes bound the real results on sampled inputs.
    #[test]
    fn estimates_bound_real_results() {
        use crate::workflow::expr::{null, val, Scope};
        use crate::workflow::value::Data;
        let items: Vec<serde_json::Value> = (0..40)
            .map(
                |i| serde_json::json!({"sku_id": format!("SKU-{i}"), "sale_price": i as f64 * 1.5}),
            )
            .collect();
        let order = serde_json::json!({
            "id": "576", "tags": ["a", "b"], "line_items": items,
            "buyer": {"message": "please wrap it as a gift"},
        });
        let scope = Scope {
            order: val(Data::from_json(&order).to_cel()),
            steps: val(Data::map([("s", Data::map([("n", Data::Int(3))]))]).to_cel()),
            vars: val(Data::map([("xs", Data::List(vec![Data::Int(1); 20]))]).to_cel()),
            event: null(),
            error: null(),
            now: 1_700_000_000,
        };
        for src in [
            "order.line_items.map(i, i.sku_id)",
            "order.line_items.filter(i, i.sale_price > 10.0)",
            "order.line_items.map(i, [i.sku_id, i.sku_id + '-x'])",
            "order.tags + order.tags + ['c']",
            "order.buyer.message + order.buyer.message",
            "vars.xs.filter(x, x > 0)",
            "[1, 2, 3].map(a, [a, a] + [a])",
            "{'a': order.id, 'b': order.tags}",
            "string(order.line_items.exists_one(i, i.sale_price > 50.0))",
            "order.line_items[3]",
        ] {
            let expr = Expr::compile(src).unwrap();
            let est = estimate(cel::Program::compile(src).unwrap().expression());
            let got = expr.eval(&scope).unwrap();
            assert!(est.cost <= MAX_COST, "{src}");
            assert!(
                data_cells(&got) <= est.shape.total,
                "{src}: {got:?} vs {est:?}"
            );
            match &got {
                Data::List(l) => assert!(l.len() as u64 <= est.shape.items, "{src}"),
                Data::Map(m) => assert!(m.len() as u64 <= est.shape.items, "{src}"),
                Data::Str(s) => assert!(s.len() as u64 <= est.shape.chars, "{src}"),
                _ => {}
            }
        }
    }
}
