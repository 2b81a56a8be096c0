//! Quantities with units as they appear in workloads: durations (`5s`, `250ms`), sizes (`512B`,
//! `1KiB`), rates (`2000/s`, `max`) and comparison bounds (`< 1%`). Each parses from a string so
//! that a mistake is reported at the line and column of the offending value.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A duration written with a unit, e.g. `5s`, `250ms`, `1m 30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
    pub fn as_nanos(self) -> u64 {
        self.0.as_nanos() as u64
    }
}

impl std::str::FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t == "0" {
            return Ok(Dur(Duration::ZERO));
        }
        humantime::parse_duration(t).map(Dur).map_err(|e| {
            format!(
                "invalid duration {s:?} ({e}); expected a number with a unit such as 500ms, 5s, 2m"
            )
        })
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A size in bytes written with a unit, e.g. `512B`, `1KiB`, `4 KB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Size(pub u64);

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<bytesize::ByteSize>()
            .map(|b| Size(b.as_u64()))
            .map_err(|e| format!("invalid size {s:?} ({e}); expected e.g. 512B, 1KiB, 4KB"))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

/// A whole percentage from 1 to 100, written with its sign: `5%`. Whole, because the kernel rules
/// that drop packets draw a number below 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Percent(pub u32);

impl std::str::FromStr for Percent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid percentage {s:?}; expected a whole percentage from 1% to 100%, e.g. 5%"
            )
        };
        let n: u32 = s
            .trim()
            .strip_suffix('%')
            .ok_or_else(bad)?
            .trim()
            .parse()
            .map_err(|_| bad())?;
        if (1..=100).contains(&n) {
            Ok(Percent(n))
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// Offered load: a fixed number of messages per second (open loop), or `max`: as fast as the
/// broker acknowledges, bounded by the producer's in-flight window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    PerSecond(f64),
    Max,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t == "max" {
            return Ok(Rate::Max);
        }
        let bad = || {
            format!("invalid rate {s:?}; expected `max` or a count per unit such as 2000/s, 50/ms, 600/m")
        };
        let (n, unit) = t.split_once('/').ok_or_else(bad)?;
        let n: f64 = n.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" => 1.0,
            "ms" => 1e-3,
            "m" | "min" => 60.0,
            _ => return Err(bad()),
        };
        if !(n.is_finite() && n > 0.0) {
            return Err(format!("invalid rate {s:?}; the count must be positive"));
        }
        Ok(Rate::PerSecond(n / per))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Max => write!(f, "max"),
            Rate::PerSecond(r) => write!(f, "{r}/s"),
        }
    }
}

/// A comparison against a metric, e.g. `< 1%`, `<= 250ms`, `0` (meaning `== 0`), `> 99%`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub op: Op,
    /// The bound in the metric's base unit: a plain number, a fraction (1% = 0.01) or seconds.
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">")]
    Gt,
}

impl Bound {
    pub fn holds(&self, measured: f64) -> bool {
        match self.op {
            Op::Lt => measured < self.value,
            Op::Le => measured <= self.value,
            Op::Eq => (measured - self.value).abs() < 1e-12,
            Op::Ge => measured >= self.value,
            Op::Gt => measured > self.value,
        }
    }
}

impl std::str::FromStr for Bound {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (op, rest) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
            ("=", Op::Eq),
        ]
        .iter()
        .find_map(|(p, op)| t.strip_prefix(p).map(|r| (*op, r.trim())))
        .unwrap_or((Op::Eq, t));
        let value = if let Some(pct) = rest.strip_suffix('%') {
            pct.trim().parse::<f64>().map(|v| v / 100.0).ok()
        } else if let Ok(v) = rest.parse::<f64>() {
            Some(v)
        } else {
            rest.parse::<Dur>().ok().map(|d| d.0.as_secs_f64())
        };
        let value = value.ok_or_else(|| {
            format!("invalid bound {s:?}; expected an operator (<, <=, ==, >=, >) and a number, a percentage or a duration, e.g. \"< 1%\", \"<= 250ms\", 0")
        })?;
        Ok(Bound { op, value })
    }
}

impl Op {
    /// As bounds are written and shown.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ge => ">=",
            Op::Gt => ">",
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op.symbol(), self.value)
    }
}

/// Implements Deserialize (from a string, or a number for the types that allow it), Serialize
/// (as the display string) and JsonSchema (a string with a description) for a unit type.
macro_rules! string_quantity {
    ($t:ty, $desc:expr, $pattern:expr) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($desc)
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$t, E> {
                        s.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, n: u64) -> Result<$t, E> {
                        n.to_string().parse().map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, n: i64) -> Result<$t, E> {
                        n.to_string().parse().map_err(E::custom)
                    }
                    fn visit_f64<E: de::Error>(self, n: f64) -> Result<$t, E> {
                        n.to_string().parse().map_err(E::custom)
                    }
                }
                d.deserialize_any(V)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($t).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "description": $desc,
                    "anyOf": [{ "type": "string", "pattern": $pattern }, { "type": "number" }]
                })
            }
        }
    };
}

string_quantity!(
    Dur,
    "a duration with a unit, e.g. 250ms, 5s, 2m",
    r"^\s*\d+(\.\d+)?\s*[a-zµ]+(\s*\d+\s*[a-zµ]+)*\s*$|^0$"
);
string_quantity!(
    Size,
    "a size with a unit, e.g. 512B, 1KiB, 4KB",
    r"^\s*\d+(\.\d+)?\s*[A-Za-z]*\s*$"
);
string_quantity!(
    Rate,
    "messages per unit of time, e.g. 2000/s, or `max`",
    r"^\s*(max|\d+(\.\d+)?\s*/\s*(s|ms|m|min))\s*$"
);
string_quantity!(Percent, "a whole percentage, e.g. 5%", r"^\s*\d+\s*%\s*$");
string_quantity!(
    Bound,
    "a comparison, e.g. \"< 1%\", \"<= 250ms\", 0",
    r"^\s*(<=|>=|==|<|>|=)?\s*[0-9.]+\s*(%|[a-zµ]+)?\s*$"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_whole_and_carry_their_sign() {
        assert_eq!("5%".parse::<Percent>().unwrap(), Percent(5));
        assert_eq!(" 100 % ".parse::<Percent>().unwrap(), Percent(100));
        for bad in ["5", "0%", "101%", "2.5%", "x%"] {
            assert!(bad.parse::<Percent>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_take_units() {
        assert_eq!("5s".parse::<Dur>().unwrap(), Dur::secs(5));
        assert_eq!("250ms".parse::<Dur>().unwrap(), Dur::millis(250));
        assert_eq!("1m 30s".parse::<Dur>().unwrap(), Dur::secs(90));
        assert_eq!("0".parse::<Dur>().unwrap(), Dur::secs(0));
        let err = "5".parse::<Dur>().unwrap_err();
        assert!(err.contains("expected a number with a unit"), "{err}");
        assert!("fast".parse::<Dur>().is_err());
    }

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!("512B".parse::<Size>().unwrap(), Size(512));
        assert_eq!("1KiB".parse::<Size>().unwrap(), Size(1024));
        assert_eq!("4KB".parse::<Size>().unwrap(), Size(4000));
        assert!("lots".parse::<Size>().is_err());
    }

    #[test]
    fn rates_are_per_unit_or_max() {
        assert_eq!("2000/s".parse::<Rate>().unwrap(), Rate::PerSecond(2000.0));
        assert_eq!("5/ms".parse::<Rate>().unwrap(), Rate::PerSecond(5000.0));
        assert_eq!("600/m".parse::<Rate>().unwrap(), Rate::PerSecond(10.0));
        assert_eq!("max".parse::<Rate>().unwrap(), Rate::Max);
        assert!("2000".parse::<Rate>().is_err());
        assert!("0/s".parse::<Rate>().is_err());
        assert!("10/h".parse::<Rate>().is_err());
    }

    #[test]
    fn bounds_compare_numbers_percentages_and_durations() {
        let b: Bound = "< 1%".parse().unwrap();
        assert_eq!(
            b,
            Bound {
                op: Op::Lt,
                value: 0.01
            }
        );
        assert!(b.holds(0.009) && !b.holds(0.01));
        let b: Bound = "<= 250ms".parse().unwrap();
        assert!(b.holds(0.25) && !b.holds(0.2501));
        let b: Bound = "0".parse().unwrap();
        assert_eq!(b.op, Op::Eq);
        assert!(b.holds(0.0) && !b.holds(1.0));
        let b: Bound = "> 99%".parse().unwrap();
        assert!(b.holds(0.995) && !b.holds(0.99));
        assert!("about 3".parse::<Bound>().is_err());
    }
}
