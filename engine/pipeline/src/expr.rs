//! Expressions: `${{ ... }}` in strings, written in CEL (the Common Expression Language).
//!
//! An [`Expression`] is compiled once, when the pipeline is parsed; it remembers which
//! `inputs.*` and `steps.*` names it reads so the checker can verify them. While running, the
//! engine fills an [`EvalContext`] with the bound inputs and the results of finished steps and
//! evaluates [`Template`]s (parameter values) and conditions (`if:`) against it.
//!
//! Everything here is `Send + Sync`: a [`crate::Plan`] can be shared between tokio tasks.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, OnceLock};

use cel::common::ast::{EntryExpr, Expr, LiteralValue};
use cel::objects::{Key, Map};
use cel::{IdedExpr, Program};
use serde_json::Value;

/// An expression failed to evaluate, or gave a value of the wrong kind.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// CEL raised an error (unknown key, no such overload, division by zero...).
    #[error("expression `{expression}` failed: {message}")]
    Failed {
        /// The CEL source.
        expression: String,
        /// What CEL said.
        message: String,
    },
    /// A condition (`if:`) did not give a boolean.
    #[error("condition `{expression}` must give a boolean, but gave {found}")]
    NotBoolean {
        /// The CEL source.
        expression: String,
        /// The kind of value it gave.
        found: String,
    },
    /// The value cannot become JSON (bytes, durations, types...).
    #[error("expression `{expression}` gave {found}, which cannot be passed to a plugin")]
    NotJson {
        /// The CEL source.
        expression: String,
        /// The kind of value it gave.
        found: String,
    },
}

/// How a step ended, as seen by expressions (`steps.<id>.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepOutcome {
    /// The step ran and succeeded.
    Succeeded,
    /// The step ran and failed.
    Failed,
    /// The step did not run (its condition was false, or a step it needs failed).
    Skipped,
    /// The step was cancelled or timed out.
    Cancelled,
}

impl StepOutcome {
    /// `"succeeded"`, `"failed"`, `"skipped"` or `"cancelled"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StepOutcome::Succeeded => "succeeded",
            StepOutcome::Failed => "failed",
            StepOutcome::Skipped => "skipped",
            StepOutcome::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for StepOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What expressions can read while a pipeline runs: `inputs.<name>`,
/// `steps.<id>.outputs.<name>` and `steps.<id>.outcome`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalContext {
    inputs: BTreeMap<String, Value>,
    steps: BTreeMap<String, (StepOutcome, BTreeMap<String, String>)>,
}

impl EvalContext {
    /// A context holding the bound inputs (see [`crate::Plan::bind_inputs`]) and no steps yet.
    pub fn new(inputs: BTreeMap<String, Value>) -> EvalContext {
        EvalContext {
            inputs,
            steps: BTreeMap::new(),
        }
    }

    /// Records how step `id` ended and the outputs it produced. A skipped step has no
    /// outputs; reading one of them is an evaluation error.
    pub fn record_step(
        &mut self,
        id: impl Into<String>,
        outcome: StepOutcome,
        outputs: BTreeMap<String, String>,
    ) {
        self.steps.insert(id.into(), (outcome, outputs));
    }

    /// The bound inputs.
    pub fn inputs(&self) -> &BTreeMap<String, Value> {
        &self.inputs
    }

    /// The CEL variables `inputs` and `steps`; with `only`, just those steps (an
    /// expression reads a few steps, and converting all of them for every
    /// evaluation would make long pipelines quadratic).
    fn to_cel(&self, only: Option<&[String]>) -> cel::Context<'static, 'static> {
        let mut context = cel::Context::with_env(Arc::clone(stdlib()));
        let inputs: HashMap<Key, cel::Value> = self
            .inputs
            .iter()
            .map(|(k, v)| (Key::String(Arc::new(k.clone())), json_to_cel(v)))
            .collect();
        let entry =
            |(id, (outcome, outputs)): (&String, &(StepOutcome, BTreeMap<String, String>))| {
                let outputs: HashMap<Key, cel::Value> = outputs
                    .iter()
                    .map(|(k, v)| {
                        (
                            Key::String(Arc::new(k.clone())),
                            cel::Value::from(v.as_str()),
                        )
                    })
                    .collect();
                let step = HashMap::from([
                    (Key::from("outcome"), cel::Value::from(outcome.as_str())),
                    (Key::from("outputs"), cel_map(outputs)),
                ]);
                (Key::String(Arc::new(id.clone())), cel_map(step))
            };
        // Looked up one by one with `only`: filtering every recorded step would cost as many
        // steps as the run has done, for every evaluation.
        let steps: HashMap<Key, cel::Value> = match only {
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.steps.get_key_value(id))
                .map(entry)
                .collect(),
            None => self.steps.iter().map(entry).collect(),
        };
        context.add_variable_from_value("inputs", cel_map(inputs));
        context.add_variable_from_value("steps", cel_map(steps));
        context
    }
}

/// The standard CEL environment, built once.
fn stdlib() -> &'static Arc<cel::Env> {
    static ENV: OnceLock<Arc<cel::Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(cel::Env::stdlib()))
}

fn cel_map(map: HashMap<Key, cel::Value>) -> cel::Value {
    cel::Value::Map(Map { map: Arc::new(map) })
}

fn json_to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::from(s.as_str()),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(json_to_cel).collect())),
        Value::Object(entries) => cel_map(
            entries
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), json_to_cel(v)))
                .collect(),
        ),
    }
}

/// "a string", "an integer"... for a CEL value, in messages.
fn cel_type_name(value: &cel::Value) -> String {
    match value {
        cel::Value::List(_) => "a list".into(),
        cel::Value::Map(_) => "a map".into(),
        cel::Value::Int(_) | cel::Value::UInt(_) => "an integer".into(),
        cel::Value::Float(_) => "a number".into(),
        cel::Value::String(_) => "a string".into(),
        cel::Value::Bool(_) => "a boolean".into(),
        cel::Value::Null => "null".into(),
        cel::Value::Bytes(_) => "bytes".into(),
        other => format!("a {}", other.type_of()),
    }
}

/// Converts a CEL value to JSON, or `None` for values JSON cannot hold.
fn cel_to_json(value: &cel::Value) -> Option<Value> {
    Some(match value {
        cel::Value::Null => Value::Null,
        cel::Value::Bool(b) => Value::Bool(*b),
        cel::Value::Int(i) => Value::from(*i),
        cel::Value::UInt(u) => Value::from(*u),
        cel::Value::Float(f) => Value::Number(serde_json::Number::from_f64(*f)?),
        cel::Value::String(s) => Value::String(s.as_str().to_owned()),
        cel::Value::List(items) => {
            Value::Array(items.iter().map(cel_to_json).collect::<Option<Vec<_>>>()?)
        }
        cel::Value::Map(map) => {
            let mut object = serde_json::Map::new();
            for (key, v) in map.map.iter() {
                let key = match key {
                    Key::String(s) => s.as_str().to_owned(),
                    Key::Int(i) => i.to_string(),
                    Key::Uint(u) => u.to_string(),
                    Key::Bool(b) => b.to_string(),
                };
                object.insert(key, cel_to_json(v)?);
            }
            Value::Object(object)
        }
        _ => return None,
    })
}

/// A name an expression reads: `inputs.who` is `["inputs", "who"]`,
/// `steps.greet.outputs.message` (or `steps['greet'].outputs['message']`) is
/// `["steps", "greet", "outputs", "message"]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The segments of the name, root first.
    pub path: Vec<String>,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path.join("."))
    }
}

/// A compiled CEL expression and the names it reads.
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
    program: Arc<Program>,
    references: Vec<Reference>,
    /// The step ids the expression reads, when all its uses of `steps` name one;
    /// `None` when it uses `steps` as a whole (e.g. `size(steps)`).
    steps_read: Option<Vec<String>>,
}

impl PartialEq for Expression {
    fn eq(&self, other: &Expression) -> bool {
        self.source == other.source
    }
}

impl Expression {
    /// Compiles `source` (CEL, without `${{ }}`). The error says what is wrong, for a message.
    pub fn parse(source: &str) -> Result<Expression, String> {
        let trimmed = source.trim();
        if trimmed.is_empty() {
            return Err("empty expression".into());
        }
        let program = Program::compile(trimmed).map_err(|errors| {
            let details: Vec<String> = errors
                .errors
                .iter()
                .map(|e| {
                    // Drop ANTLR's list of expected tokens: long, and no help to a user.
                    let message = e.msg.split(" expecting {").next().unwrap_or("").trim();
                    let message = message.strip_prefix("Syntax error: ").unwrap_or(message);
                    if e.pos.1 >= 0 {
                        format!("{message} (at character {})", e.pos.1 + 1)
                    } else {
                        message.to_owned()
                    }
                })
                .collect();
            format!(
                "syntax error in expression `{trimmed}`: {}",
                details.join("; ")
            )
        })?;
        let mut references = Vec::new();
        collect_references(program.expression(), &mut Vec::new(), &mut references);
        let mut steps_read = Some(Vec::new());
        for reference in &references {
            match reference.path.as_slice() {
                [root, id, ..] if root == "steps" => {
                    if let Some(ids) = &mut steps_read
                        && !ids.contains(id)
                    {
                        ids.push(id.clone());
                    }
                }
                [root] if root == "steps" => steps_read = None,
                _ => {}
            }
        }
        Ok(Expression {
            source: trimmed.to_owned(),
            program: Arc::new(program),
            references,
            steps_read,
        })
    }

    /// The CEL source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `inputs.*` and `steps.*` names the expression reads (other free names too, which
    /// the checker reports as unknown).
    pub fn references(&self) -> &[Reference] {
        &self.references
    }

    /// Evaluates the expression to a CEL value.
    fn eval_cel(&self, ctx: &EvalContext) -> Result<cel::Value, EvalError> {
        self.program
            .execute(&ctx.to_cel(self.steps_read.as_deref()))
            .map_err(|e| EvalError::Failed {
                expression: self.source.clone(),
                message: e.to_string(),
            })
    }

    /// Evaluates the expression to a JSON value.
    pub fn eval(&self, ctx: &EvalContext) -> Result<Value, EvalError> {
        let value = self.eval_cel(ctx)?;
        cel_to_json(&value).ok_or_else(|| EvalError::NotJson {
            expression: self.source.clone(),
            found: cel_type_name(&value),
        })
    }

    /// Evaluates a condition: the result must be a boolean.
    pub fn eval_bool(&self, ctx: &EvalContext) -> Result<bool, EvalError> {
        match self.eval_cel(ctx)? {
            cel::Value::Bool(b) => Ok(b),
            other => Err(EvalError::NotBoolean {
                expression: self.source.clone(),
                found: cel_type_name(&other),
            }),
        }
    }

    /// Evaluates the expression and renders it as text, for a string mixing text and
    /// expressions: strings as they are, null as nothing, numbers and booleans as written,
    /// lists and maps as JSON.
    fn eval_text(&self, ctx: &EvalContext) -> Result<String, EvalError> {
        Ok(match self.eval(ctx)? {
            Value::Null => String::new(),
            Value::String(s) => s,
            other => other.to_string(),
        })
    }
}

/// The segments of a name: an identifier, then fields (`.name`) or constant string indexes
/// (`['name']`).
fn name_chain(expr: &IdedExpr) -> Option<Vec<String>> {
    match &expr.expr {
        Expr::Ident(name) => Some(vec![name.clone()]),
        Expr::Select(select) => {
            let mut chain = name_chain(&select.operand)?;
            chain.push(select.field.clone());
            Some(chain)
        }
        Expr::Call(call) if call.func_name == "_[_]" && call.target.is_none() => {
            let [operand, index] = call.args.as_slice() else {
                return None;
            };
            let Expr::Literal(LiteralValue::String(key)) = &index.expr else {
                return None;
            };
            let mut chain = name_chain(operand)?;
            chain.push(key.inner().to_owned());
            Some(chain)
        }
        _ => None,
    }
}

/// Walks the AST and collects the names read from outside the expression (not those bound by
/// comprehension macros such as `.map(x, ...)`).
fn collect_references(expr: &IdedExpr, bound: &mut Vec<String>, out: &mut Vec<Reference>) {
    if let Some(path) = name_chain(expr) {
        let is_bound = path.first().is_some_and(|root| bound.contains(root));
        let reference = Reference { path };
        if !is_bound && !out.contains(&reference) {
            out.push(reference);
        }
        return;
    }
    match &expr.expr {
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                collect_references(target, bound, out);
            }
            for arg in &call.args {
                collect_references(arg, bound, out);
            }
        }
        Expr::Comprehension(c) => {
            collect_references(&c.iter_range, bound, out);
            collect_references(&c.accu_init, bound, out);
            let before = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            collect_references(&c.loop_cond, bound, out);
            collect_references(&c.loop_step, bound, out);
            collect_references(&c.result, bound, out);
            bound.truncate(before);
        }
        Expr::List(list) => {
            for element in &list.elements {
                collect_references(element, bound, out);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                collect_entry(&entry.expr, bound, out);
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                collect_entry(&entry.expr, bound, out);
            }
        }
        Expr::Select(select) => collect_references(&select.operand, bound, out),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn collect_entry(entry: &EntryExpr, bound: &mut Vec<String>, out: &mut Vec<Reference>) {
    match entry {
        EntryExpr::MapEntry(e) => {
            collect_references(&e.key, bound, out);
            collect_references(&e.value, bound, out);
        }
        EntryExpr::StructField(f) => collect_references(&f.value, bound, out),
    }
}

/// A piece of a string mixing text and expressions.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// Literal text.
    Text(String),
    /// A `${{ ... }}`.
    Expr(Expression),
}

/// A value from the file that may hold expressions: a parameter value in `with:`.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// A value without any expression.
    Literal(Value),
    /// A string that is exactly one `${{ ... }}`: gives the expression's value, typed.
    Expr(Expression),
    /// A string mixing text and expressions: gives a string.
    Interpolated(Vec<Segment>),
    /// A list with expressions somewhere inside.
    List(Vec<Template>),
    /// A mapping with expressions somewhere inside.
    Map(Vec<(String, Template)>),
}

impl Template {
    /// Parses a string: text, `${{ expr }}`, or both. The error says what is wrong.
    pub fn parse_str(text: &str) -> Result<Template, String> {
        if !text.contains("${{") {
            return Ok(Template::Literal(Value::String(text.to_owned())));
        }
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${{") {
            if start > 0 {
                segments.push(Segment::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 3..];
            let Some(end) = after.find("}}") else {
                return Err("`${{` is not closed by `}}`".into());
            };
            segments.push(Segment::Expr(Expression::parse(&after[..end])?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_owned()));
        }
        if let [Segment::Expr(e)] = segments.as_slice() {
            return Ok(Template::Expr(e.clone()));
        }
        Ok(Template::Interpolated(segments))
    }

    /// Whether the value holds no expression.
    pub fn is_literal(&self) -> bool {
        matches!(self, Template::Literal(_))
    }

    /// Every expression inside, in order.
    pub fn expressions(&self) -> Vec<&Expression> {
        let mut out = Vec::new();
        self.collect_expressions(&mut out);
        out
    }

    fn collect_expressions<'a>(&'a self, out: &mut Vec<&'a Expression>) {
        match self {
            Template::Literal(_) => {}
            Template::Expr(e) => out.push(e),
            Template::Interpolated(segments) => {
                for segment in segments {
                    if let Segment::Expr(e) = segment {
                        out.push(e);
                    }
                }
            }
            Template::List(items) => items.iter().for_each(|t| t.collect_expressions(out)),
            Template::Map(entries) => entries.iter().for_each(|(_, t)| t.collect_expressions(out)),
        }
    }

    /// Evaluates every expression and gives the value.
    pub fn render(&self, ctx: &EvalContext) -> Result<Value, EvalError> {
        Ok(match self {
            Template::Literal(v) => v.clone(),
            Template::Expr(e) => e.eval(ctx)?,
            Template::Interpolated(segments) => {
                let mut text = String::new();
                for segment in segments {
                    match segment {
                        Segment::Text(t) => text.push_str(t),
                        Segment::Expr(e) => text.push_str(&e.eval_text(ctx)?),
                    }
                }
                Value::String(text)
            }
            Template::List(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.render(ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, t)| Ok((k.clone(), t.render(ctx)?)))
                    .collect::<Result<_, EvalError>>()?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> EvalContext {
        let mut ctx = EvalContext::new(BTreeMap::from([
            ("who".to_owned(), json!("world")),
            ("count".to_owned(), json!(3)),
        ]));
        ctx.record_step(
            "greet",
            StepOutcome::Succeeded,
            BTreeMap::from([("message".to_owned(), "hi".to_owned())]),
        );
        ctx.record_step("my-step", StepOutcome::Skipped, BTreeMap::new());
        ctx
    }

    fn render(text: &str) -> Result<Value, EvalError> {
        Template::parse_str(text)
            .expect("parses")
            .render(&context())
    }

    #[test]
    fn plain_text_is_a_literal() {
        assert_eq!(
            Template::parse_str("hello"),
            Ok(Template::Literal(json!("hello")))
        );
    }

    #[test]
    fn a_lone_expression_keeps_its_type() {
        assert_eq!(render("${{ inputs.count + 1 }}"), Ok(json!(4)));
        assert_eq!(render("${{ [1, 2.5, 'x'] }}"), Ok(json!([1, 2.5, "x"])));
        assert_eq!(render("${{ {'a': true} }}"), Ok(json!({"a": true})));
        assert_eq!(render("${{steps.greet.outputs.message}}"), Ok(json!("hi")));
    }

    #[test]
    fn mixed_text_renders_to_a_string() {
        assert_eq!(
            render(
                "${{ steps.greet.outputs.message }} there, ${{ inputs.who }} x${{ inputs.count }}"
            ),
            Ok(json!("hi there, world x3"))
        );
        assert_eq!(render("n=${{ null }}."), Ok(json!("n=.")));
    }

    #[test]
    fn conditions_must_be_booleans() {
        let ctx = context();
        let e = Expression::parse("steps.greet.outputs.message == 'hi'").expect("parses");
        assert_eq!(e.eval_bool(&ctx), Ok(true));
        let e = Expression::parse("steps['my-step'].outcome == 'skipped'").expect("parses");
        assert_eq!(e.eval_bool(&ctx), Ok(true));
        let e = Expression::parse("inputs.count").expect("parses");
        assert_eq!(
            e.eval_bool(&ctx),
            Err(EvalError::NotBoolean {
                expression: "inputs.count".into(),
                found: "an integer".into()
            })
        );
    }

    #[test]
    fn evaluation_errors_name_the_expression() {
        let error = render("${{ steps.greet.outputs.nope }}").expect_err("no such output");
        assert!(
            error
                .to_string()
                .starts_with("expression `steps.greet.outputs.nope` failed:")
        );
        assert!(render("${{ 1 / 0 }}").is_err());
        assert!(render("${{ b'abc' }}").is_err());
    }

    #[test]
    fn syntax_errors_are_reported() {
        let error = Template::parse_str("${{ 1 + }}").expect_err("bad syntax");
        assert_eq!(
            error,
            "syntax error in expression `1 +`: mismatched input '<EOF>' (at character 5)"
        );
        assert!(Template::parse_str("${{ inputs.who").is_err());
        assert!(Template::parse_str("${{ }}").is_err());
    }

    #[test]
    fn references_are_collected_from_the_ast() {
        let e = Expression::parse(
            "steps.greet.outputs.message == inputs.who && steps['my-step'].outcome != '' \
             && [1, 2].all(x, x > inputs.count) && size(steps.greet.outputs) > 0",
        )
        .expect("parses");
        let paths: Vec<String> = e.references().iter().map(|r| r.to_string()).collect();
        assert_eq!(
            paths,
            [
                "steps.greet.outputs.message",
                "inputs.who",
                "steps.my-step.outcome",
                "inputs.count",
                "steps.greet.outputs"
            ]
        );
    }

    #[test]
    fn expressions_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Expression>();
        send_sync::<Template>();
        send_sync::<EvalContext>();
    }
}
