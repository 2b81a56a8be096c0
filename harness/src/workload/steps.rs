//! `load.rate` as a workload writes it: one rate, or several in steps. A stepped workload is never
//! run as it stands: `brokerbench run` runs one single-rate workload per step (`Workload::at`),
//! each a run of its own with its own warmup, setup and final read, and puts the steps' figures
//! together into a curve.
//!
//! ```yaml
//! rate: 2000/s                                          # one rate
//! rate: { sweep: [1000/s, 5000/s, 20000/s, max] }       # these rates, in this order
//! rate: { sweep: { from: 1000/s, to: 9000/s, steps: 5 } }   # evenly spaced: 1000, 3000, …, 9000
//! rate: { find_max: { p99_end_to_end: "< 50ms" } }      # highest rate that holds the bound
//! rate: { find_max: { p99_end_to_end: "< 50ms" }, to: 40000/s, steps: 5 }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::units::{Bound, Rate};

/// Most steps a sweep may list, and most runs a search may make: each is a whole run.
pub const MAX_STEPS: u32 = 30;
/// Runs a search makes when the workload does not say (after its `rate: max` run, if any).
pub const DEFAULT_SEARCH_STEPS: u32 = 6;

#[derive(Debug, Clone, PartialEq)]
pub enum LoadRate {
    One(Rate),
    Steps(Steps),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Steps {
    /// Each of these rates, in this order.
    Sweep(Vec<Rate>),
    /// The highest offered rate each broker sustains with every bound held: a bisection between
    /// nothing and `to` (or, without it, the rate a `rate: max` run achieved), in at most `steps`
    /// runs.
    FindMax {
        bounds: BTreeMap<String, Bound>,
        to: Option<f64>,
        steps: u32,
    },
}

impl LoadRate {
    /// The rate of a workload that runs as it stands; None for a stepped one.
    pub fn single(&self) -> Option<Rate> {
        match self {
            LoadRate::One(r) => Some(*r),
            LoadRate::Steps(_) => None,
        }
    }

    pub fn steps(&self) -> Option<&Steps> {
        match self {
            LoadRate::Steps(s) => Some(s),
            LoadRate::One(_) => None,
        }
    }
}

impl From<Rate> for LoadRate {
    fn from(r: Rate) -> Self {
        LoadRate::One(r)
    }
}

impl Steps {
    /// Runs this plan makes per broker at most (a search's `max` run included).
    pub fn runs(&self) -> u32 {
        match self {
            Steps::Sweep(rates) => rates.len() as u32,
            Steps::FindMax { to, steps, .. } => steps + u32::from(to.is_none()),
        }
    }
}

impl super::Workload {
    /// This workload at one rate: one step of a stepped workload. The step is named after its
    /// rate (`name@5000/s`), so that runs, baselines and trends tell the steps apart, and keeps
    /// every expectation but `max_sustainable_rate`, which only the whole curve has.
    pub fn at(&self, rate: Rate) -> super::Workload {
        let mut step = self.clone();
        step.name = format!("{}@{}", self.name, rate_label(rate));
        step.load.rate = LoadRate::One(rate);
        if step.load.max_in_flight.is_none() {
            step.load.max_in_flight = super::InFlight::default_for(&step.load.rate);
        }
        step.expect.remove(MAX_SUSTAINABLE_RATE);
        step
    }
}

/// The expectation a stepped workload may set on its curve, e.g. `max_sustainable_rate: "> 20000"`.
pub const MAX_SUSTAINABLE_RATE: &str = "max_sustainable_rate";

/// A rate as step names show it: whole messages per second, or `max`.
pub fn rate_label(rate: Rate) -> String {
    match rate {
        Rate::Max => "max".into(),
        Rate::PerSecond(r) => format!("{}/s", r.round() as u64),
    }
}

impl<'de> Deserialize<'de> for LoadRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LoadRate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a rate such as 2000/s or max, { sweep: [...] } or { find_max: {...} }")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<LoadRate, E> {
                s.parse().map(LoadRate::One).map_err(E::custom)
            }
            // A bare number is a rate without its unit: say so as a rate would.
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<LoadRate, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<LoadRate, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<LoadRate, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<LoadRate, A::Error> {
                let written = Written::deserialize(de::value::MapAccessDeserializer::new(m))?;
                written
                    .into_steps()
                    .map(LoadRate::Steps)
                    .map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// The stepped forms as written, before their combination is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    sweep: Option<SweepWritten>,
    find_max: Option<BTreeMap<String, Bound>>,
    to: Option<Rate>,
    steps: Option<u32>,
}

enum SweepWritten {
    List(Vec<Rate>),
    Range(Range),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    from: Rate,
    to: Rate,
    steps: u32,
}

impl<'de> Deserialize<'de> for SweepWritten {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SweepWritten;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of rates, or { from, to, steps }")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<SweepWritten, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(s)).map(SweepWritten::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<SweepWritten, A::Error> {
                Range::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(SweepWritten::Range)
            }
        }
        d.deserialize_any(V)
    }
}

impl Written {
    fn into_steps(self) -> Result<Steps, String> {
        let per_second = |r: Rate, what: &str| match r {
            Rate::PerSecond(v) => Ok(v),
            Rate::Max => Err(format!("{what} must be a rate such as 5000/s, not max")),
        };
        match (self.sweep, self.find_max) {
            (Some(_), Some(_)) => Err("rate has both sweep and find_max; choose one".into()),
            (None, None) => Err("a stepped rate needs `sweep: [...]` or `find_max: {...}`".into()),
            (Some(sweep), None) => {
                if self.to.is_some() || self.steps.is_some() {
                    return Err(
                        "`to` and `steps` of a sweep go inside it: sweep: { from, to, steps }"
                            .into(),
                    );
                }
                let rates = match sweep {
                    SweepWritten::List(rates) => rates,
                    SweepWritten::Range(r) => {
                        let (from, to) = (per_second(r.from, "from")?, per_second(r.to, "to")?);
                        if from >= to {
                            return Err(format!("sweep from ({from}/s) must be below to ({to}/s)"));
                        }
                        if r.steps < 2 {
                            return Err("a sweep range needs at least 2 steps".into());
                        }
                        let gap = (to - from) / f64::from(r.steps - 1);
                        (0..r.steps)
                            .map(|i| Rate::PerSecond(from + gap * f64::from(i)))
                            .collect()
                    }
                };
                if rates.is_empty() || rates.len() > MAX_STEPS as usize {
                    return Err(format!(
                        "a sweep has 1 to {MAX_STEPS} steps, not {}",
                        rates.len()
                    ));
                }
                Ok(Steps::Sweep(rates))
            }
            (None, Some(bounds)) => {
                if bounds.is_empty() {
                    return Err(
                        "find_max needs a bound to hold, e.g. { p99_end_to_end: \"< 50ms\" }"
                            .into(),
                    );
                }
                let steps = self.steps.unwrap_or(DEFAULT_SEARCH_STEPS);
                if !(1..=MAX_STEPS).contains(&steps) {
                    return Err(format!("find_max steps must be between 1 and {MAX_STEPS}"));
                }
                let to = self.to.map(|r| per_second(r, "to")).transpose()?;
                Ok(Steps::FindMax { bounds, to, steps })
            }
        }
    }
}

impl Serialize for LoadRate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            LoadRate::One(r) => r.serialize(s),
            LoadRate::Steps(Steps::Sweep(rates)) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("sweep", rates)?;
                m.end()
            }
            LoadRate::Steps(Steps::FindMax { bounds, to, steps }) => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("find_max", bounds)?;
                if let Some(to) = to {
                    m.serialize_entry("to", &Rate::PerSecond(*to))?;
                }
                m.serialize_entry("steps", steps)?;
                m.end()
            }
        }
    }
}

impl JsonSchema for LoadRate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LoadRate".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let rate = g.subschema_for::<Rate>();
        let bound = g.subschema_for::<Bound>();
        schemars::json_schema!({
            "description": "One rate, or steps: `{ sweep: [rates] }`, `{ sweep: { from, to, steps } }` or `{ find_max: { metric: bound }, to?, steps? }`.",
            "oneOf": [
                rate,
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["sweep"],
                    "properties": {
                        "sweep": { "oneOf": [
                            { "type": "array", "items": rate, "minItems": 1, "maxItems": MAX_STEPS },
                            { "type": "object", "additionalProperties": false,
                              "required": ["from", "to", "steps"],
                              "properties": { "from": rate, "to": rate,
                                              "steps": { "type": "integer", "minimum": 2, "maximum": MAX_STEPS } } }
                        ] }
                    }
                },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["find_max"],
                    "properties": {
                        "find_max": { "type": "object", "additionalProperties": bound, "minProperties": 1 },
                        "to": rate,
                        "steps": { "type": "integer", "minimum": 1, "maximum": MAX_STEPS }
                    }
                }
            ]
        })
    }
}
