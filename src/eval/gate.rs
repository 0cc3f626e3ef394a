//! The gate's verdict: whether a candidate version may take traffic, decided
//! from an experiment's evidence against the route's `[routes.gate]`
//! thresholds, with one readable line per check.
//!
//! [`decide`] is a pure function: it never reads a clock, a store or the
//! registry, and it never panics or yields NaN, whatever the evidence (a
//! candidate that failed every call gets a failing verdict with its reasons).
//! Applying the verdict (`mode = "auto"`) or recording it as a recommendation
//! (`mode = "manual"`) is the caller's job.
//!
//! Every bound is inclusive: a value exactly at its bound passes. A check
//! without the evidence to judge it fails, because the gate lets a version
//! through only on evidence.

use serde::{Deserialize, Serialize};

use super::stats::{PairedComparison, Summary};

/// Whether a verdict decides the version's state or only advises.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateMode {
    /// The verdict turns the version `approved` or `rejected`.
    Auto,
    /// The verdict is recorded as a recommendation; an operator decides.
    /// The default, so that adding a gate never changes a state by surprise.
    #[default]
    Manual,
}

/// A route's gate, as `[routes.gate]` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// `"auto"` or `"manual"`. Default `"manual"`.
    #[serde(default)]
    pub mode: GateMode,
    /// Name of the scorer whose paired difference decides quality.
    pub primary: String,
    /// How far below the baseline (in score units, 0..=1) the lower bound of
    /// the difference's 95% interval may go. Default 0.02: two points in a
    /// hundred, about the noise of a few hundred examples.
    #[serde(default = "default_max_regression")]
    pub max_regression: f64,
    /// If set, the mean difference must be at least this. Unset by default.
    #[serde(default)]
    pub min_improvement: Option<f64>,
    /// If set, candidate p95 latency / baseline p95 latency must be at most
    /// this (a ratio, e.g. 1.5). Unset by default.
    #[serde(default)]
    pub max_p95_latency_ratio: Option<f64>,
    /// If set, the candidate's error rate (a fraction of its calls, 0..=1,
    /// not relative to the baseline) must be at most this. Unset by default.
    #[serde(default)]
    pub max_error_rate: Option<f64>,
    /// If set, candidate mean tokens / baseline mean tokens must be at most
    /// this (a ratio, e.g. 1.2). Unset by default.
    #[serde(default)]
    pub max_mean_tokens_ratio: Option<f64>,
    /// Fewest scored pairs (examples where both versions were scored) the
    /// verdict may rest on. Default 30: below that a bootstrap interval is
    /// too ragged to trust.
    #[serde(default = "default_min_examples")]
    pub min_examples: usize,
}

fn default_max_regression() -> f64 {
    0.02
}

fn default_min_examples() -> usize {
    30
}

/// A `[routes.gate]` field that cannot be used; the message names it and
/// says how to fix it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GateSpecError {
    /// `primary` is empty.
    #[error("primary: must name one of the route's scorers, e.g. primary = \"exact_match\"")]
    Primary,
    /// `max_regression` is not in 0..=1.
    #[error("max_regression: must be a finite number from 0 to 1 (got {0}); use e.g. 0.02")]
    MaxRegression(f64),
    /// `min_improvement` is not in -1..=1.
    #[error("min_improvement: must be a finite number from -1 to 1 (got {0}); use e.g. 0.01")]
    MinImprovement(f64),
    /// `max_p95_latency_ratio` is not a positive number.
    #[error("max_p95_latency_ratio: must be a finite number above 0 (got {0}); use e.g. 1.5")]
    MaxP95LatencyRatio(f64),
    /// `max_error_rate` is not in 0..=1.
    #[error("max_error_rate: must be a fraction from 0 to 1 (got {0}); use e.g. 0.05")]
    MaxErrorRate(f64),
    /// `max_mean_tokens_ratio` is not a positive number.
    #[error("max_mean_tokens_ratio: must be a finite number above 0 (got {0}); use e.g. 1.2")]
    MaxMeanTokensRatio(f64),
    /// `min_examples` is 0.
    #[error("min_examples: must be at least 1; use e.g. 30")]
    MinExamples,
}

impl GateSpecError {
    /// The field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            GateSpecError::Primary => "primary",
            GateSpecError::MaxRegression(_) => "max_regression",
            GateSpecError::MinImprovement(_) => "min_improvement",
            GateSpecError::MaxP95LatencyRatio(_) => "max_p95_latency_ratio",
            GateSpecError::MaxErrorRate(_) => "max_error_rate",
            GateSpecError::MaxMeanTokensRatio(_) => "max_mean_tokens_ratio",
            GateSpecError::MinExamples => "min_examples",
        }
    }
}

impl GateSpec {
    /// A manual gate on `primary` with every other field at its default.
    pub fn new(primary: impl Into<String>) -> Self {
        Self {
            mode: GateMode::default(),
            primary: primary.into(),
            max_regression: default_max_regression(),
            min_improvement: None,
            max_p95_latency_ratio: None,
            max_error_rate: None,
            max_mean_tokens_ratio: None,
            min_examples: default_min_examples(),
        }
    }

    /// Checks every field, returning the first bad one. Whether `primary`
    /// names a configured scorer is for the route's config to check.
    pub fn validate(&self) -> Result<(), GateSpecError> {
        let in_range = |x: f64, lo: f64, hi: f64| x.is_finite() && lo <= x && x <= hi;
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if self.primary.trim().is_empty() {
            return Err(GateSpecError::Primary);
        }
        if !in_range(self.max_regression, 0.0, 1.0) {
            return Err(GateSpecError::MaxRegression(self.max_regression));
        }
        if let Some(x) = self.min_improvement.filter(|&x| !in_range(x, -1.0, 1.0)) {
            return Err(GateSpecError::MinImprovement(x));
        }
        if let Some(x) = self.max_p95_latency_ratio.filter(|&x| !positive(x)) {
            return Err(GateSpecError::MaxP95LatencyRatio(x));
        }
        if let Some(x) = self.max_error_rate.filter(|&x| !in_range(x, 0.0, 1.0)) {
            return Err(GateSpecError::MaxErrorRate(x));
        }
        if let Some(x) = self.max_mean_tokens_ratio.filter(|&x| !positive(x)) {
            return Err(GateSpecError::MaxMeanTokensRatio(x));
        }
        if self.min_examples == 0 {
            return Err(GateSpecError::MinExamples);
        }
        Ok(())
    }
}

/// What an experiment found, as the gate reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The primary scorer's comparison, candidate against baseline.
    pub primary: PairedComparison,
    /// The candidate's calls.
    pub candidate: Summary,
    /// The baseline's calls.
    pub baseline: Summary,
}

/// One check of the gate and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// A stable name: `min_examples`, `primary`, `min_improvement`,
    /// `p95_latency_ratio`, `error_rate` or `mean_tokens_ratio`.
    pub name: String,
    /// Whether the check passed.
    pub pass: bool,
    /// One line with the numbers and the outcome, e.g.
    /// `primary exact_match +0.12 [+0.08, +0.16] >= -0.02: pass`.
    pub reason: String,
}

/// The gate's verdict: it passes when every check passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether every check passed.
    pub pass: bool,
    /// The checks in a fixed order; optional ones only when configured.
    pub checks: Vec<Check>,
}

impl Verdict {
    /// The failing checks' reasons, joined with "; ", or "" when it passes.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.pass)
            .map(|c| c.reason.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Decides the verdict of `spec` on `evidence`. The spec is assumed valid
/// ([`GateSpec::validate`]); a bound that is not a number fails its check
/// rather than passing it.
pub fn decide(spec: &GateSpec, evidence: &Evidence) -> Verdict {
    let mut checks = Vec::new();
    let pairs = evidence.primary.pairs;

    checks.push(if pairs >= spec.min_examples {
        check(
            "min_examples",
            true,
            format!("scored pairs {pairs} >= {}", spec.min_examples),
        )
    } else {
        check(
            "min_examples",
            false,
            format!("scored pairs {pairs} < {}", spec.min_examples),
        )
    });

    let name = &spec.primary;
    let floor = -spec.max_regression;
    checks.push(match evidence.primary.difference {
        None => check("primary", false, format!("primary {name}: no scored pairs")),
        Some(d) => {
            let ok = d.ci.low >= floor;
            let p = precision(d.ci.low, floor);
            let line = format!(
                "primary {name} {} [{}, {}] {} {}",
                signed(d.mean, p),
                signed(d.ci.low, p),
                signed(d.ci.high, p),
                if ok { ">=" } else { "<" },
                signed(floor, p),
            );
            check("primary", ok, line)
        }
    });

    if let Some(min) = spec.min_improvement {
        checks.push(match evidence.primary.difference {
            None => check(
                "min_improvement",
                false,
                format!("mean {name}: no scored pairs"),
            ),
            Some(d) => {
                let ok = d.mean >= min;
                let p = precision(d.mean, min);
                let line = format!(
                    "mean {name} {} {} {}",
                    signed(d.mean, p),
                    if ok { ">=" } else { "<" },
                    signed(min, p)
                );
                check("min_improvement", ok, line)
            }
        });
    }

    if let Some(max) = spec.max_p95_latency_ratio {
        let c = evidence.candidate.p95_latency_ms;
        let b = evidence.baseline.p95_latency_ms;
        checks.push(match (c, b) {
            (None, _) => check(
                "p95_latency_ratio",
                false,
                "p95 latency ratio: no successful candidate call".into(),
            ),
            (_, None) => check(
                "p95_latency_ratio",
                false,
                "p95 latency ratio: no successful baseline call".into(),
            ),
            // Latencies under 1 ms count as 1 ms so the ratio is always defined:
            // a difference below a millisecond is not one the gate should act on.
            (Some(c), Some(b)) => at_most(
                "p95_latency_ratio",
                "p95 latency ratio",
                c.max(1) as f64 / b.max(1) as f64,
                max,
            ),
        });
    }

    if let Some(max) = spec.max_error_rate {
        checks.push(match evidence.candidate.error_rate {
            None => check("error_rate", false, "error rate: no candidate call".into()),
            Some(rate) => at_most("error_rate", "error rate", rate, max),
        });
    }

    if let Some(max) = spec.max_mean_tokens_ratio {
        let c = evidence.candidate.mean_tokens;
        let b = evidence.baseline.mean_tokens;
        checks.push(match (c, b) {
            (None, _) => check(
                "mean_tokens_ratio",
                false,
                "mean tokens ratio: no candidate call reported usage".into(),
            ),
            (_, None) => check(
                "mean_tokens_ratio",
                false,
                "mean tokens ratio: no baseline call reported usage".into(),
            ),
            (Some(c), Some(b)) if b <= 0.0 => {
                // No baseline cost to compare with: only an equally free
                // candidate keeps the ratio within any bound.
                check(
                    "mean_tokens_ratio",
                    c <= 0.0,
                    format!("mean tokens {c:.1} against a baseline of 0.0"),
                )
            }
            (Some(c), Some(b)) => at_most("mean_tokens_ratio", "mean tokens ratio", c / b, max),
        });
    }

    Verdict {
        pass: checks.iter().all(|c| c.pass),
        checks,
    }
}

fn check(name: &str, pass: bool, line: String) -> Check {
    let outcome = if pass { "pass" } else { "fail" };
    Check {
        name: name.to_string(),
        pass,
        reason: format!("{line}: {outcome}"),
    }
}

fn at_most(name: &str, label: &str, value: f64, max: f64) -> Check {
    let ok = value <= max;
    let p = precision(value, max);
    let op = if ok { "<=" } else { ">" };
    check(name, ok, format!("{label} {value:.p$} {op} {max:.p$}"))
}

/// Two decimals, or as many more (up to six) as it takes for a value that is
/// not equal to its bound not to print like it, so that no reason reads
/// "0.02 > 0.02".
fn precision(value: f64, bound: f64) -> usize {
    if value == bound {
        return 2;
    }
    (2..6)
        .find(|&p| format!("{value:.p$}") != format!("{bound:.p$}"))
        .unwrap_or(6)
}

/// `x` with an explicit sign, `-0.00` written as `+0.00`.
fn signed(x: f64, p: usize) -> String {
    let s = format!("{x:+.p$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        format!("+{}", &s[1..])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::stats::{Estimate, Interval};
    use super::*;

    fn comparison(pairs: usize, mean: f64, low: f64, high: f64) -> PairedComparison {
        let est = |m: f64| Estimate {
            mean: m,
            ci: Interval { low: m, high: m },
        };
        PairedComparison {
            examples: pairs,
            pairs,
            difference: Some(Estimate {
                mean,
                ci: Interval { low, high },
            }),
            candidate: Some(est(0.5 + mean)),
            baseline: Some(est(0.5)),
            wins: 0,
            ties: pairs,
            losses: 0,
            candidate_failures: 0,
            baseline_failures: 0,
        }
    }

    fn summary(p95: u64, error_rate: f64, tokens: f64) -> Summary {
        Summary {
            calls: 100,
            errors: (error_rate * 100.0).round() as usize,
            error_rate: Some(error_rate),
            p50_latency_ms: Some(p95 / 2),
            p95_latency_ms: Some(p95),
            mean_tokens: Some(tokens),
        }
    }

    fn evidence() -> Evidence {
        Evidence {
            primary: comparison(100, 0.12, 0.08, 0.16),
            candidate: summary(1000, 0.01, 100.0),
            baseline: summary(1000, 0.01, 100.0),
        }
    }

    fn full_spec() -> GateSpec {
        GateSpec {
            mode: GateMode::Auto,
            primary: "exact_match".into(),
            max_regression: 0.02,
            min_improvement: Some(0.05),
            max_p95_latency_ratio: Some(1.5),
            max_error_rate: Some(0.05),
            max_mean_tokens_ratio: Some(1.2),
            min_examples: 30,
        }
    }

    fn named<'a>(v: &'a Verdict, name: &str) -> &'a Check {
        v.checks.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn the_reason_reads_as_the_issue_shows_it() {
        let v = decide(&full_spec(), &evidence());
        assert!(v.pass, "{}", v.failures());
        let reasons: Vec<&str> = v.checks.iter().map(|c| c.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "scored pairs 100 >= 30: pass",
                "primary exact_match +0.12 [+0.08, +0.16] >= -0.02: pass",
                "mean exact_match +0.12 >= +0.05: pass",
                "p95 latency ratio 1.00 <= 1.50: pass",
                "error rate 0.01 <= 0.05: pass",
                "mean tokens ratio 1.00 <= 1.20: pass",
            ]
        );
        assert_eq!(v.failures(), "");
    }

    #[test]
    fn a_minimal_spec_has_only_the_two_quality_checks() {
        let spec: GateSpec = toml::from_str("primary = \"exact_match\"").unwrap();
        assert_eq!(spec, GateSpec::new("exact_match"));
        assert_eq!(spec.mode, GateMode::Manual);
        let v = decide(&spec, &evidence());
        let names: Vec<&str> = v.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["min_examples", "primary"]);
    }

    /// Runs `full_spec()` on `evidence()` changed by `set` for each case,
    /// checking the named check's reason and that the verdict follows it
    /// (every other check passes on `evidence()`).
    fn table<T: Copy>(name: &str, cases: &[(T, bool, &str)], set: impl Fn(&mut Evidence, T)) {
        for &(value, pass, reason) in cases {
            let mut e = evidence();
            set(&mut e, value);
            let v = decide(&full_spec(), &e);
            assert_eq!(named(&v, name).reason, reason);
            assert_eq!((named(&v, name).pass, v.pass), (pass, pass), "{reason}");
        }
    }

    #[test]
    fn primary_lower_bound_at_above_and_below_the_floor() {
        let cases = [
            (
                -0.02,
                true,
                "primary exact_match +0.06 [-0.02, +0.10] >= -0.02: pass",
            ),
            (
                -0.019,
                true,
                "primary exact_match +0.060 [-0.019, +0.100] >= -0.020: pass",
            ),
            (
                -0.021,
                false,
                "primary exact_match +0.060 [-0.021, +0.100] < -0.020: fail",
            ),
        ];
        table("primary", &cases, |e, low| {
            e.primary = comparison(100, 0.06, low, 0.1)
        });
    }

    #[test]
    fn min_improvement_at_above_and_below_its_bound() {
        let cases = [
            (0.05, true, "mean exact_match +0.05 >= +0.05: pass"),
            (0.051, true, "mean exact_match +0.051 >= +0.050: pass"),
            (0.049, false, "mean exact_match +0.049 < +0.050: fail"),
        ];
        table("min_improvement", &cases, |e, mean| {
            e.primary = comparison(100, mean, 0.0, 0.1)
        });
    }

    #[test]
    fn min_examples_at_above_and_below_its_bound() {
        let cases = [
            (30, true, "scored pairs 30 >= 30: pass"),
            (31, true, "scored pairs 31 >= 30: pass"),
            (29, false, "scored pairs 29 < 30: fail"),
        ];
        table("min_examples", &cases, |e, n| {
            e.primary = comparison(n, 0.12, 0.08, 0.16)
        });
    }

    #[test]
    fn p95_latency_ratio_at_above_and_below_its_bound() {
        let cases = [
            (1500, true, "p95 latency ratio 1.50 <= 1.50: pass"),
            (1499, true, "p95 latency ratio 1.499 <= 1.500: pass"),
            (1501, false, "p95 latency ratio 1.501 > 1.500: fail"),
            (1620, false, "p95 latency ratio 1.62 > 1.50: fail"),
        ];
        table("p95_latency_ratio", &cases, |e, ms| {
            e.candidate.p95_latency_ms = Some(ms)
        });
    }

    #[test]
    fn error_rate_at_above_and_below_its_bound() {
        let cases = [
            (0.05, true, "error rate 0.05 <= 0.05: pass"),
            (0.049, true, "error rate 0.049 <= 0.050: pass"),
            (0.051, false, "error rate 0.051 > 0.050: fail"),
        ];
        table("error_rate", &cases, |e, rate| {
            e.candidate.error_rate = Some(rate)
        });
    }

    #[test]
    fn mean_tokens_ratio_at_above_and_below_its_bound() {
        let cases = [
            (120.0, true, "mean tokens ratio 1.20 <= 1.20: pass"),
            (119.9, true, "mean tokens ratio 1.199 <= 1.200: pass"),
            (120.1, false, "mean tokens ratio 1.201 > 1.200: fail"),
        ];
        table("mean_tokens_ratio", &cases, |e, t| {
            e.candidate.mean_tokens = Some(t)
        });
    }

    #[test]
    fn a_candidate_that_failed_every_call_fails_without_nan() {
        let e = Evidence {
            primary: PairedComparison {
                candidate_failures: 50,
                ..PairedComparison::empty(50)
            },
            candidate: Summary {
                calls: 50,
                errors: 50,
                error_rate: Some(1.0),
                p50_latency_ms: None,
                p95_latency_ms: None,
                mean_tokens: None,
            },
            baseline: summary(800, 0.0, 90.0),
        };
        let v = decide(&full_spec(), &e);
        assert!(!v.pass);
        assert!(v.checks.iter().all(|c| !c.pass), "{:?}", v.checks);
        assert_eq!(
            v.failures(),
            "scored pairs 0 < 30: fail; \
             primary exact_match: no scored pairs: fail; \
             mean exact_match: no scored pairs: fail; \
             p95 latency ratio: no successful candidate call: fail; \
             error rate 1.00 > 0.05: fail; \
             mean tokens ratio: no candidate call reported usage: fail"
        );
        for c in &v.checks {
            assert!(!c.reason.to_lowercase().contains("nan") && !c.reason.contains("inf"));
        }
    }

    #[test]
    fn zero_baselines_give_a_defined_answer() {
        let mut e = evidence();
        e.candidate.p95_latency_ms = Some(0);
        e.baseline.p95_latency_ms = Some(0);
        e.baseline.mean_tokens = Some(0.0);
        let v = decide(&full_spec(), &e);
        assert_eq!(
            named(&v, "p95_latency_ratio").reason,
            "p95 latency ratio 1.00 <= 1.50: pass"
        );
        assert_eq!(
            named(&v, "mean_tokens_ratio").reason,
            "mean tokens 100.0 against a baseline of 0.0: fail"
        );
    }

    #[test]
    fn config_rejections_name_the_field() {
        let cases: Vec<(&str, &str)> = vec![
            ("primary = \"\"", "primary:"),
            ("primary = \"x\"\nmax_regression = -0.1", "max_regression:"),
            ("primary = \"x\"\nmax_regression = 2.0", "max_regression:"),
            ("primary = \"x\"\nmin_improvement = 1.5", "min_improvement:"),
            (
                "primary = \"x\"\nmax_p95_latency_ratio = 0.0",
                "max_p95_latency_ratio:",
            ),
            ("primary = \"x\"\nmax_error_rate = 1.1", "max_error_rate:"),
            (
                "primary = \"x\"\nmax_mean_tokens_ratio = -1.0",
                "max_mean_tokens_ratio:",
            ),
            ("primary = \"x\"\nmin_examples = 0", "min_examples:"),
        ];
        for (text, field) in cases {
            let spec: GateSpec = toml::from_str(text).unwrap();
            let err = spec.validate().unwrap_err().to_string();
            assert!(err.starts_with(field), "{text}: {err}");
        }
        let nan = GateSpec {
            max_regression: f64::NAN,
            ..GateSpec::new("x")
        };
        assert!(nan
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("max_regression:"));
        full_spec().validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_modes_are_refused() {
        let err = toml::from_str::<GateSpec>("primary = \"x\"\nmax_regresion = 0.1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_regresion"), "{err}");
        let err = toml::from_str::<GateSpec>("primary = \"x\"\nmode = \"sometimes\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sometimes"), "{err}");
        let auto: GateSpec = toml::from_str("primary = \"x\"\nmode = \"auto\"").unwrap();
        assert_eq!(auto.mode, GateMode::Auto);
    }
}
