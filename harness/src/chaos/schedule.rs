//! Fault schedules: which workers a fault hits and when.

/// Which workers a fault hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Targets {
    One,
    All,
    Count(u32),
    Fraction(f64),
}

impl Targets {
    /// How many of `n` workers are hit (at least one when n > 0).
    pub fn how_many(self, n: u32) -> u32 {
        let k = match self {
            Targets::One => 1,
            Targets::All => n,
            Targets::Count(c) => c,
            Targets::Fraction(f) => (f * n as f64).round() as u32,
        };
        k.clamp(n.min(1), n)
    }
}

pub fn parse_target(s: &str) -> Result<Targets, String> {
    let t = s.trim();
    let bad = || format!("invalid target {s:?}; expected `one`, `all`, a number, or a percentage such as 50%");
    match t {
        "one" => Ok(Targets::One),
        "all" => Ok(Targets::All),
        _ => {
            if let Some(p) = t.strip_suffix('%') {
                let f: f64 = p.trim().parse().map_err(|_| bad())?;
                if !(0.0..=100.0).contains(&f) || f == 0.0 {
                    return Err(bad());
                }
                Ok(Targets::Fraction(f / 100.0))
            } else {
                let n: u32 = t.parse().map_err(|_| bad())?;
                if n == 0 {
                    return Err(bad());
                }
                Ok(Targets::Count(n))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_count() {
        assert_eq!(parse_target("one"), Ok(Targets::One));
        assert_eq!(parse_target("all").map(|t| t.how_many(3)), Ok(3));
        assert_eq!(parse_target("2").map(|t| t.how_many(3)), Ok(2));
        assert_eq!(parse_target("50%").map(|t| t.how_many(4)), Ok(2));
        assert_eq!(parse_target("1%").map(|t| t.how_many(4)), Ok(1));
        assert_eq!(parse_target("5").map(|t| t.how_many(3)), Ok(3));
        assert!(parse_target("0").is_err());
        assert!(parse_target("some").is_err());
        assert!(parse_target("150%").is_err());
    }
}
