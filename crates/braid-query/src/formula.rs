//! Qdrant's score boosting: `query: {formula: ..., defaults: {...}}` re-scores the
//! candidates of the prefetches below by an arithmetic expression of their prefetch
//! scores, payload values, filter conditions, geo distances, datetimes and decay
//! functions (`docs/query.md`, "Formulas").

use std::collections::{BTreeMap, HashMap};

use braid_core::PointId;
use braid_filter::{Condition, Filter, GeoPoint, JsonPath};
use serde_json::Value;

use crate::QueryError;

/// Decay functions of a distance `|x − target|`, each 1 at the target and `midpoint`
/// at `scale` from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Decay {
    /// `max(0, 1 − (1 − midpoint)/scale · d)`.
    Lin,
    /// `exp(ln(midpoint)/scale · d)`.
    Exp,
    /// `exp(ln(midpoint)/scale² · d²)`.
    Gauss,
}

/// What a formula reads for a point.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Variable {
    /// `$score[i]` (`$score` is `$score[0]`): the point's score in prefetch `i`; the
    /// default for it, else 0, when the point did not come from that prefetch.
    Score(usize),
    /// A payload key: its number (a one-element array counts as its element), or the
    /// default for the key; neither is an error.
    Payload(JsonPath, String),
}

/// A formula expression (Qdrant's `Expression`), evaluated in `f64`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Expression {
    /// A number.
    Constant(f64),
    /// A score or payload value.
    Variable(Variable),
    /// 1 when the point passes the condition, else 0.
    Condition(Box<Condition>),
    /// A product (0 as soon as a factor is 0, without evaluating the rest).
    Mult(Vec<Expression>),
    /// A sum.
    Sum(Vec<Expression>),
    /// The largest.
    Max(Vec<Expression>),
    /// The smallest.
    Min(Vec<Expression>),
    /// The opposite.
    Neg(Box<Expression>),
    /// The absolute value.
    Abs(Box<Expression>),
    /// `left / right`; a zero `right` gives `by_zero_default`, else an error (a zero
    /// `left` gives 0 without evaluating `right`).
    Div {
        /// The dividend.
        left: Box<Expression>,
        /// The divisor.
        right: Box<Expression>,
        /// The value when the divisor is 0.
        by_zero_default: Option<f64>,
    },
    /// The square root (of a non-negative value).
    Sqrt(Box<Expression>),
    /// `base ^ exponent`.
    Pow {
        /// The base.
        base: Box<Expression>,
        /// The exponent.
        exponent: Box<Expression>,
    },
    /// `e ^ x`.
    Exp(Box<Expression>),
    /// Base-10 logarithm (of a positive value).
    Log10(Box<Expression>),
    /// Natural logarithm (of a positive value).
    Ln(Box<Expression>),
    /// Inverse hyperbolic cosine (of a value ≥ 1).
    Acosh(Box<Expression>),
    /// Haversine metres from `origin` to the geo point at a payload key.
    GeoDistance {
        /// Where from.
        origin: GeoPoint,
        /// The key of `{lon, lat}`, and its name for the defaults.
        to: (JsonPath, String),
    },
    /// A datetime constant, in seconds since the epoch.
    Datetime(f64),
    /// The datetime at a payload key, in seconds since the epoch.
    DatetimeKey(JsonPath, String),
    /// A decay of `x` around `target` (default 0).
    Decay {
        /// Which function.
        kind: Decay,
        /// The value.
        x: Box<Expression>,
        /// Where it is 1; default 0.
        target: Option<Box<Expression>>,
        /// Distance at which it reaches `midpoint`; default 1, must be positive.
        scale: f64,
        /// Its value at `scale`; default 0.5 (0..=1 for `Lin`, 0 < m < 1 otherwise).
        midpoint: f64,
    },
}

/// A formula and its defaults.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Formula {
    /// The expression.
    pub expression: Expression,
    /// Values for variables a point lacks: payload keys (any JSON), and `$score[i]`.
    pub defaults: BTreeMap<String, Value>,
}

fn bad(why: impl Into<String>) -> QueryError {
    QueryError::Formula(why.into())
}

fn path(key: &str) -> Result<(JsonPath, String), QueryError> {
    JsonPath::parse(key).map(|p| (p, key.to_string())).map_err(|e| bad(format!("`{key}`: {e}")))
}

/// `$score`, `$score[i]` or a payload key.
fn variable(name: &str) -> Result<Variable, QueryError> {
    let Some(rest) = name.strip_prefix("$score") else {
        let (p, key) = path(name)?;
        return Ok(Variable::Payload(p, key));
    };
    if rest.is_empty() {
        return Ok(Variable::Score(0));
    }
    let index = rest
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| bad(format!("invalid score variable `{name}`: use $score or $score[N]")))?;
    Ok(Variable::Score(index))
}

fn number(v: &Value, what: &str) -> Result<f64, QueryError> {
    v.as_f64().ok_or_else(|| bad(format!("{what} must be a number, got {v}")))
}

fn datetime_seconds(text: &str) -> Result<f64, QueryError> {
    braid_filter::parse_datetime(text, "datetime")
        .map(|micros| micros as f64 / 1e6)
        .map_err(|e| bad(e.to_string()))
}

impl Formula {
    /// Parses Qdrant's JSON `{formula, defaults}`.
    pub fn from_json(formula: &Value, defaults: Option<&Value>) -> Result<Formula, QueryError> {
        let defaults = match defaults.filter(|d| !d.is_null()) {
            None => BTreeMap::new(),
            Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Some(other) => return Err(bad(format!("`defaults` must be an object, got {other}"))),
        };
        for key in defaults.keys() {
            variable(key)?;
        }
        Ok(Formula { expression: Expression::from_json(formula)?, defaults })
    }
}

impl Expression {
    /// Parses Qdrant's JSON expression: a number, a variable name, a filter condition,
    /// or one operator object (`mult`, `sum`, `max`, `min`, `neg`, `abs`, `div`, `sqrt`,
    /// `pow`, `exp`, `log10`, `ln`, `acosh`, `geo_distance`, `datetime`,
    /// `datetime_key`, `lin_decay`, `exp_decay`, `gauss_decay`). Everything is checked
    /// here, before any point is scored.
    pub fn from_json(v: &Value) -> Result<Expression, QueryError> {
        let one = |v: &Value| Expression::from_json(v).map(Box::new);
        let many = |v: &Value, op: &str| -> Result<Vec<Expression>, QueryError> {
            let list = v.as_array().ok_or_else(|| bad(format!("`{op}` takes a list of expressions")))?;
            if list.is_empty() && (op == "max" || op == "min") {
                return Err(bad(format!("`{op}` needs at least one operand")));
            }
            list.iter().map(Expression::from_json).collect()
        };
        let o = match v {
            Value::Number(n) => return Ok(Expression::Constant(n.as_f64().unwrap_or(f64::NAN))),
            Value::String(s) => return Ok(Expression::Variable(variable(s)?)),
            Value::Object(o) => o,
            other => {
                return Err(bad(format!(
                    "an expression must be a number, a variable or an object, got {other}"
                )));
            }
        };
        let operators = [
            "mult",
            "sum",
            "max",
            "min",
            "neg",
            "abs",
            "div",
            "sqrt",
            "pow",
            "exp",
            "log10",
            "ln",
            "acosh",
            "geo_distance",
            "datetime",
            "datetime_key",
            "lin_decay",
            "exp_decay",
            "gauss_decay",
        ];
        let Some((op, arg)) = o.iter().find(|(k, _)| operators.contains(&k.as_str())) else {
            // Anything else is a filter condition, parsed as a filter parses one.
            let filter =
                Filter::from_json(&serde_json::json!({"must": [v]})).map_err(|e| bad(e.to_string()))?;
            let condition = filter.must.into_iter().next().ok_or_else(|| bad("an empty condition"))?;
            return Ok(Expression::Condition(Box::new(condition)));
        };
        if o.len() != 1 {
            return Err(bad(format!("an expression object holds one operator; `{op}` came with others")));
        }
        let field = |name: &str| arg.get(name).filter(|v| !v.is_null());
        let need = |name: &str| field(name).ok_or_else(|| bad(format!("`{op}` needs `{name}`")));
        Ok(match op.as_str() {
            "mult" => Expression::Mult(many(arg, op)?),
            "sum" => Expression::Sum(many(arg, op)?),
            "max" => Expression::Max(many(arg, op)?),
            "min" => Expression::Min(many(arg, op)?),
            "neg" => Expression::Neg(one(arg)?),
            "abs" => Expression::Abs(one(arg)?),
            "sqrt" => Expression::Sqrt(one(arg)?),
            "exp" => Expression::Exp(one(arg)?),
            "log10" => Expression::Log10(one(arg)?),
            "ln" => Expression::Ln(one(arg)?),
            "acosh" => Expression::Acosh(one(arg)?),
            "div" => Expression::Div {
                left: one(need("left")?)?,
                right: one(need("right")?)?,
                by_zero_default: field("by_zero_default")
                    .map(|d| number(d, "`by_zero_default`"))
                    .transpose()?,
            },
            "pow" => Expression::Pow { base: one(need("base")?)?, exponent: one(need("exponent")?)? },
            "geo_distance" => {
                let origin = need("origin")?;
                let origin = GeoPoint {
                    lon: number(origin.get("lon").unwrap_or(&Value::Null), "`origin.lon`")?,
                    lat: number(origin.get("lat").unwrap_or(&Value::Null), "`origin.lat`")?,
                };
                let to = need("to")?.as_str().ok_or_else(|| bad("`geo_distance.to` must be a key"))?;
                Expression::GeoDistance { origin, to: path(to)? }
            }
            "datetime" => Expression::Datetime(datetime_seconds(
                arg.as_str().ok_or_else(|| bad("`datetime` takes a datetime string"))?,
            )?),
            "datetime_key" => {
                let (p, key) = path(arg.as_str().ok_or_else(|| bad("`datetime_key` takes a key"))?)?;
                Expression::DatetimeKey(p, key)
            }
            decay => {
                let kind = match decay {
                    "lin_decay" => Decay::Lin,
                    "exp_decay" => Decay::Exp,
                    _ => Decay::Gauss,
                };
                let scale = field("scale").map(|s| number(s, "`scale`")).transpose()?.unwrap_or(1.0);
                let midpoint = field("midpoint").map(|m| number(m, "`midpoint`")).transpose()?.unwrap_or(0.5);
                if scale <= 0.0 || !scale.is_finite() {
                    return Err(bad(format!("`{op}.scale` must be positive, got {scale}")));
                }
                let ok = match kind {
                    Decay::Lin => (0.0..=1.0).contains(&midpoint),
                    _ => midpoint > 0.0 && midpoint < 1.0,
                };
                if !ok {
                    return Err(bad(format!("`{op}.midpoint` out of range: {midpoint}")));
                }
                Expression::Decay {
                    kind,
                    x: one(need("x")?)?,
                    target: field("target").map(one).transpose()?,
                    scale,
                    midpoint,
                }
            }
        })
    }

    /// Every condition in the expression, depth first.
    pub(crate) fn conditions<'a>(&'a self, out: &mut Vec<&'a Condition>) {
        use Expression as E;
        match self {
            E::Condition(c) => out.push(c),
            E::Mult(list) | E::Sum(list) | E::Max(list) | E::Min(list) => {
                list.iter().for_each(|e| e.conditions(out));
            }
            E::Neg(e) | E::Abs(e) | E::Sqrt(e) | E::Exp(e) | E::Log10(e) | E::Ln(e) | E::Acosh(e) => {
                e.conditions(out)
            }
            E::Div { left, right, .. } => {
                left.conditions(out);
                right.conditions(out);
            }
            E::Pow { base, exponent } => {
                base.conditions(out);
                exponent.conditions(out);
            }
            E::Decay { x, target, .. } => {
                x.conditions(out);
                if let Some(t) = target {
                    t.conditions(out);
                }
            }
            E::Constant(_) | E::Variable(_) | E::GeoDistance { .. } | E::Datetime(_) | E::DatetimeKey(..) => {
            }
        }
    }
}

/// What evaluating the formula for one point reads.
pub(crate) struct Point<'a> {
    pub id: PointId,
    pub payload: Option<&'a Value>,
    /// The point's score in each prefetch, if it came from it.
    pub scores: &'a [Option<f32>],
    /// For each condition (by address), the candidates that pass it.
    pub passing: &'a HashMap<*const Condition, std::collections::HashSet<PointId>>,
    pub defaults: &'a BTreeMap<String, Value>,
}

fn non_finite(what: String) -> QueryError {
    bad(format!("the expression {what} produced a non-finite number"))
}

impl Point<'_> {
    /// The value at `key`: the payload's (one element of a one-element array), else the
    /// default's.
    fn value(&self, path: &JsonPath, key: &str) -> Result<Value, QueryError> {
        let found: Vec<&Value> = self.payload.map(|p| path.values(p)).unwrap_or_default();
        let found: Vec<&Value> = found
            .into_iter()
            .flat_map(|v| match v {
                Value::Array(items) => items.iter().collect::<Vec<_>>(),
                other => vec![other],
            })
            .collect();
        let value = match found.as_slice() {
            [] => match self.defaults.get(key) {
                None => None,
                Some(Value::Array(a)) if a.is_empty() => None,
                Some(Value::Array(a)) if a.len() == 1 => Some(a[0].clone()),
                Some(v) => Some(v.clone()),
            },
            [one] => Some((*one).clone()),
            many => Some(Value::Array(many.iter().map(|v| (*v).clone()).collect())),
        };
        value
            .ok_or_else(|| bad(format!("no value found for `{key}` in the payload nor the formula defaults")))
    }

    pub(crate) fn eval(&self, e: &Expression) -> Result<f64, QueryError> {
        use Expression as E;
        let check =
            |x: f64, what: &dyn Fn() -> String| if x.is_finite() { Ok(x) } else { Err(non_finite(what())) };
        Ok(match e {
            E::Constant(c) => *c,
            E::Variable(Variable::Score(i)) => match self.scores.get(*i).copied().flatten() {
                Some(s) => f64::from(s),
                None => match self
                    .defaults
                    .get(&format!("$score[{i}]"))
                    .or_else(|| if *i == 0 { self.defaults.get("$score") } else { None })
                {
                    Some(d) => number(d, &format!("the default for $score[{i}]"))?,
                    None => 0.0,
                },
            },
            E::Variable(Variable::Payload(path, key)) => {
                let v = self.value(path, key)?;
                match v {
                    Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                    other => return Err(bad(format!("expected a number at `{key}`, got {other}"))),
                }
            }
            E::Condition(c) => {
                let key: *const Condition = &**c;
                if self.passing.get(&key).is_some_and(|set| set.contains(&self.id)) { 1.0 } else { 0.0 }
            }
            E::Mult(list) => {
                let mut product = 1.0;
                for e in list {
                    let f = self.eval(e)?;
                    if f == 0.0 {
                        return Ok(f);
                    }
                    product *= f;
                }
                product
            }
            E::Sum(list) => list.iter().map(|e| self.eval(e)).sum::<Result<f64, _>>()?,
            E::Max(list) => {
                list.iter().try_fold(f64::NEG_INFINITY, |m, e| Ok::<_, QueryError>(m.max(self.eval(e)?)))?
            }
            E::Min(list) => {
                list.iter().try_fold(f64::INFINITY, |m, e| Ok::<_, QueryError>(m.min(self.eval(e)?)))?
            }
            E::Neg(e) => -self.eval(e)?,
            E::Abs(e) => self.eval(e)?.abs(),
            E::Div { left, right, by_zero_default } => {
                let l = self.eval(left)?;
                if l == 0.0 {
                    return Ok(l);
                }
                let r = self.eval(right)?;
                if r == 0.0 {
                    return by_zero_default.ok_or_else(|| non_finite(format!("{l}/{r}")));
                }
                check(l / r, &|| format!("{l}/{r}"))?
            }
            E::Sqrt(e) => {
                let x = self.eval(e)?;
                if x < 0.0 {
                    return Err(non_finite(format!("√{x}")));
                }
                x.sqrt()
            }
            E::Pow { base, exponent } => {
                let (b, x) = (self.eval(base)?, self.eval(exponent)?);
                check(b.powf(x), &|| format!("{b}^{x}"))?
            }
            E::Exp(e) => {
                let x = self.eval(e)?;
                check(x.exp(), &|| format!("exp({x})"))?
            }
            E::Log10(e) => {
                let x = self.eval(e)?;
                if x <= 0.0 {
                    return Err(non_finite(format!("log10({x})")));
                }
                x.log10()
            }
            E::Ln(e) => {
                let x = self.eval(e)?;
                if x <= 0.0 {
                    return Err(non_finite(format!("ln({x})")));
                }
                x.ln()
            }
            E::Acosh(e) => {
                let x = self.eval(e)?;
                if x < 1.0 {
                    return Err(non_finite(format!("acosh({x})")));
                }
                check(x.acosh(), &|| format!("acosh({x})"))?
            }
            E::GeoDistance { origin, to: (path, key) } => {
                let v = self.value(path, key)?;
                let coord = |name: &str| v.get(name).and_then(Value::as_f64);
                match (coord("lon"), coord("lat")) {
                    (Some(lon), Some(lat)) => braid_filter::geo::haversine_m(*origin, GeoPoint { lon, lat }),
                    _ => return Err(bad(format!("expected a geo point {{lon, lat}} at `{key}`, got {v}"))),
                }
            }
            E::Datetime(seconds) => *seconds,
            E::DatetimeKey(path, key) => match self.value(path, key)? {
                Value::String(s) => datetime_seconds(&s)?,
                other => return Err(bad(format!("expected a datetime at `{key}`, got {other}"))),
            },
            E::Decay { kind, x, target, scale, midpoint } => {
                let x = self.eval(x)?;
                let target = target.as_ref().map(|t| self.eval(t)).transpose()?.unwrap_or(0.0);
                let d = x - target;
                match kind {
                    Decay::Lin => (1.0 - (1.0 - midpoint) / scale * d.abs()).max(0.0),
                    Decay::Exp => (midpoint.ln() / scale * d.abs()).exp(),
                    Decay::Gauss => (midpoint.ln() / (scale * scale) * d * d).exp(),
                }
            }
        })
    }
}

/// Re-scores the candidates of `lists` (one per prefetch) by `formula`: candidates in
/// first-seen order (prefetch by prefetch), sorted by the formula's score descending,
/// equal scores in that order, as Qdrant's local mode keeps them.
pub(crate) fn rescore<S: crate::Searchable + ?Sized>(
    segment: &S,
    formula: &Formula,
    lists: &[Vec<crate::Hit>],
) -> Result<Vec<crate::Hit>, QueryError> {
    let mut order: Vec<PointId> = Vec::new();
    let mut scores: HashMap<PointId, Vec<Option<f32>>> = HashMap::new();
    for (i, list) in lists.iter().enumerate() {
        for hit in list {
            let row = scores.entry(hit.id).or_insert_with(|| {
                order.push(hit.id);
                vec![None; lists.len()]
            });
            row[i] = Some(hit.score);
        }
    }
    // Each condition is answered once for all candidates.
    let mut conditions = Vec::new();
    formula.expression.conditions(&mut conditions);
    let passing: HashMap<*const Condition, std::collections::HashSet<PointId>> = conditions
        .into_iter()
        .map(|c| {
            let filter = Filter::must([c.clone()]);
            (c as *const Condition, segment.matching(&filter, &order).into_iter().collect())
        })
        .collect();
    let mut hits = Vec::with_capacity(order.len());
    for id in order {
        let payload = segment.payload(id);
        let point = Point {
            id,
            payload: payload.as_ref(),
            scores: &scores[&id],
            passing: &passing,
            defaults: &formula.defaults,
        };
        let score = point.eval(&formula.expression)?;
        let score32 = score as f32;
        if !score32.is_finite() {
            return Err(non_finite(format!("{score} as f32")));
        }
        hits.push(crate::Hit::new(id, score32));
    }
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(hits)
}
