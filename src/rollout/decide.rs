//! The canary rollout controller's decision function.
//!
//! Given a rollout [`Plan`], the stored [`RolloutState`], what was [`Observed`]
//! for the canary and the stable version during the current step, and the
//! current time, [`decide`] says what the controller should do next: hold,
//! advance to the next step, promote the canary, or roll it back.
//!
//! This module must never do I/O. It reads no clock (time is passed in as unix
//! milliseconds), draws no random numbers and writes no logs, so every decision
//! can be replayed and tested from its inputs alone. The caller owns storage,
//! routing weights and logging.

use serde::{Deserialize, Serialize};

/// A rollout plan: the steps and the thresholds that judge the canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Rollback when the canary's error rate (5xx + timeouts) exceeds stable's
    /// by more than this (absolute, 0..1). Default 0.02.
    #[serde(default = "default_max_error_rate_increase")]
    pub max_error_rate_increase: f64,
    /// Rollback when canary p95 latency / stable p95 latency exceeds this.
    /// Default 1.5.
    #[serde(default = "default_max_p95_latency_ratio")]
    pub max_p95_latency_ratio: f64,
    /// ...and the canary's p95 is slower than stable's by more than this many
    /// milliseconds: a ratio between sub-millisecond numbers is noise, not a
    /// regression anyone would feel. Default 50.
    #[serde(default = "default_min_p95_latency_increase_ms")]
    pub min_p95_latency_increase_ms: f64,
    /// Rollback when the canary's thumbs-down share exceeds stable's by more
    /// than this (absolute). Default 0.10.
    #[serde(default = "default_max_thumbs_down_increase")]
    pub max_thumbs_down_increase: f64,
    /// Fewest canary requests before error rate and latency are judged at all.
    /// Default 20.
    #[serde(default = "default_min_requests_to_judge")]
    pub min_requests_to_judge: u64,
    /// Fewest thumbs votes on EACH side before thumbs-down is judged. Default 20.
    #[serde(default = "default_min_feedback_to_judge")]
    pub min_feedback_to_judge: u64,
    /// One-sided significance level of the two-proportion z-test used for
    /// error rate and thumbs-down. Default 0.05.
    #[serde(default = "default_significance")]
    pub significance: f64,
}

fn default_max_error_rate_increase() -> f64 {
    0.02
}
fn default_max_p95_latency_ratio() -> f64 {
    1.5
}
fn default_min_p95_latency_increase_ms() -> f64 {
    50.0
}
fn default_max_thumbs_down_increase() -> f64 {
    0.10
}
fn default_min_requests_to_judge() -> u64 {
    20
}
fn default_min_feedback_to_judge() -> u64 {
    20
}
fn default_significance() -> f64 {
    0.05
}

/// One step of a rollout: the canary's traffic share and how long it is held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Share of traffic sent to the canary, 0 < w <= 100.
    pub weight_percent: f64,
    /// The step lasts at least this long before it can complete.
    #[serde(default)]
    pub min_duration_secs: u64,
    /// The canary must have served at least this many requests in the step.
    #[serde(default)]
    pub min_requests: u64,
}

impl Plan {
    /// 5% -> 25% -> 50% -> 100%, each held 10 minutes and 100 requests.
    pub fn default_plan() -> Plan {
        let step = |weight_percent| Step {
            weight_percent,
            min_duration_secs: 600,
            min_requests: 100,
        };
        Plan {
            steps: vec![step(5.0), step(25.0), step(50.0), step(100.0)],
            max_error_rate_increase: default_max_error_rate_increase(),
            max_p95_latency_ratio: default_max_p95_latency_ratio(),
            min_p95_latency_increase_ms: default_min_p95_latency_increase_ms(),
            max_thumbs_down_increase: default_max_thumbs_down_increase(),
            min_requests_to_judge: default_min_requests_to_judge(),
            min_feedback_to_judge: default_min_feedback_to_judge(),
            significance: default_significance(),
        }
    }

    /// Checks a plan: at least one step; weights in (0,100] and
    /// non-decreasing; thresholds positive and in range; significance in
    /// (0, 0.5]. The error names the field and says how to fix it.
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.steps.is_empty() {
            return Err(PlanError::NoSteps);
        }
        let mut previous = 0.0_f64;
        for (index, step) in self.steps.iter().enumerate() {
            let weight = step.weight_percent;
            // The negated comparison also rejects NaN, which no ordering accepts.
            if !(weight > 0.0 && weight <= 100.0 && weight >= previous) {
                return Err(PlanError::Weight {
                    index,
                    weight,
                    previous,
                });
            }
            previous = weight;
        }
        // Both the one-sample test against the threshold and the absolute
        // comparison need the threshold strictly inside (0, 1): at 0 any single
        // error would breach, at 1 nothing ever could.
        if !(self.max_error_rate_increase > 0.0 && self.max_error_rate_increase < 1.0) {
            return Err(PlanError::MaxErrorRateIncrease(
                self.max_error_rate_increase,
            ));
        }
        // A ratio below 1 would demand that the canary be faster than stable,
        // which rolls back versions that are merely as fast, so 1 is the floor.
        if !(self.min_p95_latency_increase_ms >= 0.0
            && self.min_p95_latency_increase_ms.is_finite())
        {
            return Err(PlanError::MinP95LatencyIncrease(
                self.min_p95_latency_increase_ms,
            ));
        }
        if !(self.max_p95_latency_ratio >= 1.0 && self.max_p95_latency_ratio.is_finite()) {
            return Err(PlanError::MaxP95LatencyRatio(self.max_p95_latency_ratio));
        }
        if !(self.max_thumbs_down_increase > 0.0 && self.max_thumbs_down_increase < 1.0) {
            return Err(PlanError::MaxThumbsDownIncrease(
                self.max_thumbs_down_increase,
            ));
        }
        if self.min_requests_to_judge == 0 {
            return Err(PlanError::MinRequestsToJudge);
        }
        if self.min_feedback_to_judge == 0 {
            return Err(PlanError::MinFeedbackToJudge);
        }
        if !(self.significance > 0.0 && self.significance <= 0.5) {
            return Err(PlanError::Significance(self.significance));
        }
        Ok(())
    }
}

/// Why a plan was refused: each names the field, the value it had and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("steps: must list at least one step, e.g. steps = [{{ weight_percent = 100 }}]")]
    NoSteps,
    #[error("steps[{index}].weight_percent: must be between 0 and 100 and not below the previous step (got {weight}, previous {previous}); use a value in (0, 100] that is at least {previous}")]
    Weight {
        index: usize,
        weight: f64,
        previous: f64,
    },
    #[error("max_error_rate_increase: must be greater than 0 and less than 1 (got {0}); use a fraction such as 0.02")]
    MaxErrorRateIncrease(f64),
    #[error("min_p95_latency_increase_ms: must be a finite number of milliseconds, 0 or more (got {0}); use e.g. 50")]
    MinP95LatencyIncrease(f64),
    #[error("max_p95_latency_ratio: must be a finite number of at least 1 (got {0}); use a ratio such as 1.5")]
    MaxP95LatencyRatio(f64),
    #[error("max_thumbs_down_increase: must be greater than 0 and less than 1 (got {0}); use a fraction such as 0.10")]
    MaxThumbsDownIncrease(f64),
    #[error("min_requests_to_judge: must be at least 1; use a count such as 20")]
    MinRequestsToJudge,
    #[error("min_feedback_to_judge: must be at least 1; use a count such as 20")]
    MinFeedbackToJudge,
    #[error(
        "significance: must be greater than 0 and at most 0.5 (got {0}); use a level such as 0.05"
    )]
    Significance(f64),
}

/// What was seen for ONE version during the current step's window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Observed {
    pub requests: u64,
    /// 5xx responses plus timeouts.
    pub errors: u64,
    pub p95_latency_ms: Option<f64>,
    pub thumbs_up: u64,
    pub thumbs_down: u64,
}

/// What was seen for both versions during the current step's window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Observations {
    pub canary: Observed,
    pub stable: Observed,
}

/// The rollout's status as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Paused,
    Promoted,
    RolledBack,
    Aborted,
}

impl Status {
    /// The stored snake_case name, the same string serde uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Promoted => "promoted",
            Status::RolledBack => "rolled_back",
            Status::Aborted => "aborted",
        }
    }

    /// A terminal rollout never changes again; a paused one can resume.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Status::Promoted | Status::RolledBack | Status::Aborted
        )
    }
}

/// The rollout's state as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    pub status: Status,
    /// Index into `plan.steps`.
    pub step: usize,
    /// When the current step began, in unix milliseconds.
    pub step_started_ms: i64,
    /// The canary's live share of traffic, in percent. It differs from the
    /// step's weight when an operator set it by hand.
    pub weight_percent: f64,
}

/// What the controller should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing to do yet.
    Hold { reason: String },
    /// Move to the next step and set the canary weight: the larger of the
    /// step's and the current one.
    Advance { step: usize, weight_percent: f64 },
    /// Last step passed: the canary becomes stable.
    Promote,
    /// A regression: weight to 0 and the canary is rolled back.
    Rollback { reason: String },
}

/// The whole decision. Pure: the same inputs always give the same action.
pub fn decide(plan: &Plan, state: &RolloutState, obs: &Observations, now_ms: i64) -> Action {
    // Rule 1: only a running rollout moves.
    if state.status != Status::Running {
        return Action::Hold {
            reason: state.status.as_str().to_string(),
        };
    }

    // Rule 2: regressions roll back at once, whatever the step's progress.
    // They run before the step-range check because they do not depend on the
    // step, and rolling back a regressing canary is the safe direction even
    // when the stored step no longer matches the plan.
    if let Some(reason) = check_regressions(plan, obs) {
        return Action::Rollback { reason };
    }

    // Rule 4: a step index outside the plan means the state and the plan
    // disagree (for example the plan was edited); hold for a human rather
    // than guess.
    let n = plan.steps.len();
    let Some(step) = plan.steps.get(state.step) else {
        return Action::Hold {
            reason: format!(
                "step index {} is out of range: the plan has {n} step(s); fix the plan or reset the rollout",
                state.step
            ),
        };
    };

    // Rule 3: step completion. A clock that runs backwards counts as no time
    // elapsed rather than as an error, so the rollout simply waits.
    let elapsed_ms = now_ms.saturating_sub(state.step_started_ms).max(0) as u64;
    let needed_ms = step.min_duration_secs.saturating_mul(1000);
    let requests = obs.canary.requests;
    if elapsed_ms >= needed_ms && requests >= step.min_requests {
        let next = state.step + 1;
        return match plan.steps.get(next) {
            // Advancing never lowers the live weight: the split is sticky and
            // monotone, so a lower weight would move callers an operator put
            // on the canary back to stable. A weight raised by hand above the
            // next step's is therefore kept.
            Some(next_step) => Action::Advance {
                step: next,
                weight_percent: next_step.weight_percent.max(state.weight_percent),
            },
            None => Action::Promote,
        };
    }
    Action::Hold {
        reason: format!(
            "step {}/{n}: {}s of {}s, {requests} of {} requests",
            state.step + 1,
            elapsed_ms / 1000,
            step.min_duration_secs,
            step.min_requests
        ),
    }
}

/// Runs every regression check that has enough data and returns the first
/// breach as a rollback reason.
fn check_regressions(plan: &Plan, obs: &Observations) -> Option<String> {
    check_error_rate(plan, &obs.canary, &obs.stable)
        .or_else(|| check_latency(plan, &obs.canary, &obs.stable))
        .or_else(|| check_thumbs_down(plan, &obs.canary, &obs.stable))
}

fn check_error_rate(plan: &Plan, canary: &Observed, stable: &Observed) -> Option<String> {
    let min = plan.min_requests_to_judge.max(1);
    if canary.requests < min {
        return None;
    }
    // Counters from different sources can disagree; more errors than requests
    // is treated as every request failing so a rate never exceeds 1.
    let c_err = canary.errors.min(canary.requests);
    let c_rate = c_err as f64 / canary.requests as f64;
    let allowed = plan.max_error_rate_increase;

    if stable.requests >= min {
        let s_err = stable.errors.min(stable.requests);
        let s_rate = s_err as f64 / stable.requests as f64;
        let diff = c_rate - s_rate;
        if diff > allowed {
            let p = two_proportion_p_value(c_err, canary.requests, s_err, stable.requests);
            if p < plan.significance {
                return Some(format!(
                    "error rate {c_rate:.3} on canary vs {s_rate:.3} on stable (+{diff:.3} > +{allowed:.3} allowed, {})",
                    fmt_p(p)
                ));
            }
        }
        return None;
    }

    // Stable has too few requests to be a baseline (for example it gets
    // almost no traffic at a late step). Assuming stable's rate is 0 would
    // read every ordinary error as a regression, so instead the allowed
    // increase becomes an absolute ceiling: breach when the canary's rate
    // exceeds it and a one-sided normal-approximation binomial test of
    // H0: true rate <= max_error_rate_increase gives p < significance. The
    // test's variance uses the null rate, which stays positive for any valid
    // plan, so it is defined even when the canary saw no errors at all.
    if c_rate > allowed {
        let p = one_proportion_p_value(c_err, canary.requests, allowed);
        if p < plan.significance {
            return Some(format!(
                "error rate {c_rate:.3} on canary with only {} stable requests to compare (> {allowed:.3} allowed as an absolute ceiling, {})",
                stable.requests,
                fmt_p(p)
            ));
        }
    }
    None
}

fn check_latency(plan: &Plan, canary: &Observed, stable: &Observed) -> Option<String> {
    // No significance test here: a p95 computed over a window of at least
    // min_requests_to_judge requests is already an aggregate over many
    // samples, and the per-request latencies a test would need are not
    // available to this function. The ratio threshold is the safeguard.
    let min = plan.min_requests_to_judge.max(1);
    if canary.requests < min || stable.requests < min {
        return None;
    }
    let (Some(c_p95), Some(s_p95)) = (canary.p95_latency_ms, stable.p95_latency_ms) else {
        return None;
    };
    // Non-finite or non-positive values are broken measurements, not
    // evidence, and would put NaN or infinity into the reason.
    if !(c_p95.is_finite() && s_p95.is_finite() && c_p95 >= 0.0 && s_p95 > 0.0) {
        return None;
    }
    let ratio = c_p95 / s_p95;
    if ratio > plan.max_p95_latency_ratio && c_p95 - s_p95 > plan.min_p95_latency_increase_ms {
        return Some(format!(
            "p95 latency {c_p95:.0}ms on canary vs {s_p95:.0}ms on stable (ratio {ratio:.2} > {:.2} allowed, +{:.0}ms)",
            plan.max_p95_latency_ratio,
            c_p95 - s_p95
        ));
    }
    None
}

fn check_thumbs_down(plan: &Plan, canary: &Observed, stable: &Observed) -> Option<String> {
    // Requiring enough votes on each side, and a significant difference on
    // top of a large one, is what keeps a handful of votes from killing (or,
    // by staying silent, promoting) a version.
    let min = plan.min_feedback_to_judge.max(1);
    let c_votes = canary.thumbs_up.saturating_add(canary.thumbs_down);
    let s_votes = stable.thumbs_up.saturating_add(stable.thumbs_down);
    if c_votes < min || s_votes < min {
        return None;
    }
    let c_share = canary.thumbs_down as f64 / c_votes as f64;
    let s_share = stable.thumbs_down as f64 / s_votes as f64;
    let diff = c_share - s_share;
    let allowed = plan.max_thumbs_down_increase;
    if diff > allowed {
        let p = two_proportion_p_value(canary.thumbs_down, c_votes, stable.thumbs_down, s_votes);
        if p < plan.significance {
            return Some(format!(
                "thumbs-down share {c_share:.3} on canary vs {s_share:.3} on stable (+{diff:.3} > +{allowed:.3} allowed, {})",
                fmt_p(p)
            ));
        }
    }
    None
}

/// Formats a p-value for a reason string; very small values are shown as a
/// bound because four decimals would print them as zero.
fn fmt_p(p: f64) -> String {
    if p < 0.0001 {
        "p<0.0001".to_string()
    } else {
        format!("p={p:.4}")
    }
}

/// One-sided p-value of the pooled two-proportion z-test of
/// H0: p1 <= p2 against H1: p1 > p2, where p1 = x1/n1 and p2 = x2/n2.
///
/// With no data on either side there is no evidence, so the result is 1.0.
/// The pooled variance is zero only when both samples are all zeros or all
/// ones; then the two proportions are equal, the difference is exactly 0 and
/// there is no evidence of an increase, so the result is 1.0. The `diff > 0`
/// branch of that case cannot happen with consistent counts but is kept so a
/// zero standard error can never become a division and a NaN.
fn two_proportion_p_value(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let (x1, x2) = (x1.min(n1) as f64, x2.min(n2) as f64);
    let (n1, n2) = (n1 as f64, n2 as f64);
    let diff = x1 / n1 - x2 / n2;
    let pooled = (x1 + x2) / (n1 + n2);
    let variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2);
    p_value_from(diff, variance)
}

/// One-sided p-value of the normal-approximation binomial test of
/// H0: true rate <= p0 against H1: true rate > p0, from x successes in n.
/// The variance comes from p0, so it is zero only for p0 of 0 or 1.
fn one_proportion_p_value(x: u64, n: u64, p0: f64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let diff = x.min(n) as f64 / n as f64 - p0;
    let variance = p0 * (1.0 - p0) / n as f64;
    p_value_from(diff, variance)
}

/// Upper-tail p-value of `diff` under a normal with the given variance. A
/// zero (or invalid) variance leaves no randomness, so any positive
/// difference is certain (0.0) and anything else is no evidence (1.0).
fn p_value_from(diff: f64, variance: f64) -> f64 {
    if !(variance.is_finite() && variance > 0.0) {
        return if diff > 0.0 { 0.0 } else { 1.0 };
    }
    upper_tail(diff / variance.sqrt())
}

/// P(Z > z) for a standard normal Z.
fn upper_tail(z: f64) -> f64 {
    if z.is_nan() {
        return 1.0;
    }
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function, from the Chebyshev fit in Numerical Recipes
/// (`erfcc`), whose fractional error is below 1.2e-7 everywhere. A relative
/// bound matters here: p-values near the significance level and deep in the
/// tail both stay accurate, unlike with an absolute-error approximation.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let ans = t * poly.exp();
    if x >= 0.0 {
        ans
    } else {
        2.0 - ans
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a case expects; holds and rollbacks carry a substring the reason
    /// must contain.
    #[derive(Debug)]
    enum Expect {
        Hold(&'static str),
        Advance(usize, f64),
        Promote,
        Rollback(&'static str),
    }

    struct Case {
        name: &'static str,
        tweak: fn(&mut Plan),
        status: Status,
        step: usize,
        /// The canary's live weight; `None` means the step's own.
        weight: Option<f64>,
        canary: Observed,
        stable: Observed,
        now_ms: i64,
        expect: Expect,
    }

    fn no_tweak(_: &mut Plan) {}

    fn reqs(requests: u64, errors: u64) -> Observed {
        Observed {
            requests,
            errors,
            ..Observed::default()
        }
    }

    fn lat(requests: u64, p95: Option<f64>) -> Observed {
        Observed {
            requests,
            p95_latency_ms: p95,
            ..Observed::default()
        }
    }

    fn votes(requests: u64, up: u64, down: u64) -> Observed {
        Observed {
            requests,
            thumbs_up: up,
            thumbs_down: down,
            ..Observed::default()
        }
    }

    /// The default plan holds each step for 600s, so this is "step done".
    const DONE: i64 = 600_000;

    fn case(
        name: &'static str,
        step: usize,
        canary: Observed,
        stable: Observed,
        now_ms: i64,
        expect: Expect,
    ) -> Case {
        Case {
            name,
            tweak: no_tweak,
            status: Status::Running,
            step,
            weight: None,
            canary,
            stable,
            now_ms,
            expect,
        }
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                status: Status::Paused,
                ..case(
                    "paused holds",
                    0,
                    reqs(500, 0),
                    reqs(500, 0),
                    DONE,
                    Expect::Hold("paused"),
                )
            },
            Case {
                status: Status::Promoted,
                ..case(
                    "promoted holds",
                    3,
                    reqs(500, 0),
                    reqs(500, 0),
                    DONE,
                    Expect::Hold("promoted"),
                )
            },
            Case {
                status: Status::RolledBack,
                ..case(
                    "rolled back holds even with a regression",
                    1,
                    reqs(500, 400),
                    reqs(500, 0),
                    DONE,
                    Expect::Hold("rolled_back"),
                )
            },
            Case {
                status: Status::Aborted,
                ..case(
                    "aborted holds",
                    0,
                    reqs(500, 0),
                    reqs(500, 0),
                    DONE,
                    Expect::Hold("aborted"),
                )
            },
            case(
                "holds before min duration",
                1,
                reqs(200, 0),
                reqs(2000, 0),
                45_000,
                Expect::Hold("step 2/4: 45s of 600s, 200 of 100 requests"),
            ),
            case(
                "holds before min requests",
                0,
                reqs(50, 0),
                reqs(2000, 0),
                DONE,
                Expect::Hold("step 1/4: 600s of 600s, 50 of 100 requests"),
            ),
            case(
                "advances",
                0,
                reqs(100, 0),
                reqs(2000, 0),
                DONE,
                Expect::Advance(1, 25.0),
            ),
            case(
                "advances to the last step",
                2,
                reqs(100, 0),
                reqs(100, 0),
                DONE,
                Expect::Advance(3, 100.0),
            ),
            case(
                "last step promotes",
                3,
                reqs(100, 0),
                reqs(0, 0),
                DONE,
                Expect::Promote,
            ),
            case(
                "error regression rolls back",
                1,
                reqs(200, 24),
                reqs(1000, 10),
                60_000,
                Expect::Rollback(
                    "error rate 0.120 on canary vs 0.010 on stable (+0.110 > +0.020 allowed, p",
                ),
            ),
            case(
                "error increase too small is not a regression",
                0,
                reqs(200, 4),
                reqs(1000, 10),
                DONE,
                Expect::Advance(1, 25.0),
            ),
            case(
                "error regression with too few canary requests is not judged",
                0,
                reqs(10, 10),
                reqs(1000, 10),
                DONE,
                Expect::Hold("10 of 100 requests"),
            ),
            case(
                "few stable requests uses the absolute rule",
                2,
                reqs(200, 20),
                reqs(5, 0),
                60_000,
                Expect::Rollback("absolute ceiling"),
            ),
            case(
                "few stable requests and a rate just over the ceiling is not significant",
                2,
                reqs(200, 5),
                reqs(5, 0),
                DONE,
                Expect::Advance(3, 100.0),
            ),
            case(
                "latency ratio breach rolls back",
                1,
                lat(100, Some(900.0)),
                lat(400, Some(300.0)),
                60_000,
                Expect::Rollback(
                    "p95 latency 900ms on canary vs 300ms on stable (ratio 3.00 > 1.50 allowed, +600ms)",
                ),
            ),
            case(
                "latency ratio under threshold passes",
                0,
                lat(100, Some(400.0)),
                lat(400, Some(300.0)),
                DONE,
                Expect::Advance(1, 25.0),
            ),
            case(
                "a large ratio between tiny latencies is noise, not a regression",
                0,
                lat(100, Some(2.0)),
                lat(400, Some(0.8)),
                DONE,
                Expect::Advance(1, 25.0),
            ),
            case(
                "latency with missing stable p95 is not judged",
                0,
                lat(100, Some(900.0)),
                lat(400, None),
                DONE,
                Expect::Advance(1, 25.0),
            ),
            case(
                "latency with missing canary p95 is not judged",
                0,
                lat(100, None),
                lat(400, Some(300.0)),
                DONE,
                Expect::Advance(1, 25.0),
            ),
            case(
                "latency with too few stable requests is not judged",
                3,
                lat(100, Some(900.0)),
                lat(5, Some(300.0)),
                DONE,
                Expect::Promote,
            ),
            case(
                "thumbs-down breach with enough votes rolls back",
                0,
                votes(50, 12, 8),
                votes(500, 20, 0),
                60_000,
                Expect::Rollback(
                    "thumbs-down share 0.400 on canary vs 0.000 on stable (+0.400 > +0.100 allowed, p=0.0008)",
                ),
            ),
            case(
                "same thumbs-down rates with 5 votes each are not judged",
                0,
                votes(50, 3, 2),
                votes(500, 5, 0),
                60_000,
                Expect::Hold("step 1/4"),
            ),
            case(
                "large but not significant thumbs-down difference holds",
                0,
                votes(50, 14, 6),
                votes(500, 17, 3),
                60_000,
                Expect::Hold("step 1/4"),
            ),
            case(
                "regression beats step completion",
                3,
                reqs(200, 24),
                reqs(1000, 10),
                DONE,
                Expect::Rollback("error rate"),
            ),
            case(
                "step out of range holds",
                9,
                reqs(500, 0),
                reqs(500, 0),
                DONE,
                Expect::Hold("out of range"),
            ),
            Case {
                tweak: |p| p.steps.clear(),
                ..case(
                    "empty plan holds",
                    0,
                    reqs(500, 0),
                    reqs(500, 0),
                    DONE,
                    Expect::Hold("out of range"),
                )
            },
            case(
                "zero variance: all zeros",
                0,
                Observed {
                    requests: 200,
                    ..Observed::default()
                },
                Observed {
                    requests: 200,
                    ..Observed::default()
                },
                DONE,
                Expect::Advance(1, 25.0),
            ),
            case(
                "zero variance: all ones",
                0,
                Observed {
                    requests: 200,
                    errors: 200,
                    p95_latency_ms: Some(0.0),
                    thumbs_up: 0,
                    thumbs_down: 30,
                },
                Observed {
                    requests: 200,
                    errors: 200,
                    p95_latency_ms: Some(0.0),
                    thumbs_up: 0,
                    thumbs_down: 30,
                },
                DONE,
                Expect::Advance(1, 25.0),
            ),
            case(
                "zero variance while holding gives a clean reason",
                0,
                Observed {
                    requests: 20,
                    p95_latency_ms: Some(f64::NAN),
                    ..Observed::default()
                },
                Observed {
                    requests: 20,
                    p95_latency_ms: Some(0.0),
                    ..Observed::default()
                },
                1_000,
                Expect::Hold("step 1/4: 1s of 600s, 20 of 100 requests"),
            ),
            case(
                "a clock running backwards holds",
                0,
                reqs(500, 0),
                reqs(500, 0),
                -5_000,
                Expect::Hold("0s of 600s"),
            ),
            case(
                "more errors than requests counts as all failing",
                0,
                reqs(100, 500),
                reqs(1000, 0),
                60_000,
                Expect::Rollback("error rate 1.000 on canary"),
            ),
            Case {
                tweak: |p| p.steps[0].min_requests = 0,
                ..case(
                    "a step without a request minimum completes on time alone",
                    0,
                    reqs(0, 0),
                    reqs(0, 0),
                    DONE,
                    Expect::Advance(1, 25.0),
                )
            },
            Case {
                tweak: |p| {
                    p.steps.truncate(2);
                    p.steps[0].weight_percent = 10.0;
                    p.steps[1].weight_percent = 50.0;
                },
                weight: Some(60.0),
                ..case(
                    "advancing keeps a weight raised by hand above the next step's",
                    0,
                    reqs(500, 0),
                    reqs(500, 0),
                    DONE,
                    Expect::Advance(1, 60.0),
                )
            },
            Case {
                weight: Some(25.0),
                ..case(
                    "advancing from a weight equal to the next step's keeps it",
                    0,
                    reqs(500, 0),
                    reqs(500, 0),
                    DONE,
                    Expect::Advance(1, 25.0),
                )
            },
            Case {
                weight: Some(0.0),
                ..case(
                    "advancing raises a weight lowered by hand to the next step's",
                    0,
                    reqs(500, 0),
                    reqs(500, 0),
                    DONE,
                    Expect::Advance(1, 25.0),
                )
            },
            Case {
                tweak: |p| p.min_feedback_to_judge = 5,
                ..case(
                    "five votes are judged when the plan allows it",
                    0,
                    votes(50, 0, 5),
                    votes(500, 5, 0),
                    60_000,
                    Expect::Rollback("thumbs-down share 1.000"),
                )
            },
        ]
    }

    #[test]
    fn decision_table() {
        for c in cases() {
            let mut plan = Plan::default_plan();
            (c.tweak)(&mut plan);
            let state = RolloutState {
                status: c.status,
                step: c.step,
                step_started_ms: 0,
                weight_percent: c
                    .weight
                    .or_else(|| plan.steps.get(c.step).map(|s| s.weight_percent))
                    .unwrap_or(0.0),
            };
            let obs = Observations {
                canary: c.canary,
                stable: c.stable,
            };
            let got = decide(&plan, &state, &obs, c.now_ms);
            if let Action::Hold { reason } | Action::Rollback { reason } = &got {
                assert!(
                    !reason.contains("NaN") && !reason.contains("inf"),
                    "{}: non-finite number in reason {reason:?}",
                    c.name
                );
            }
            let ok = match (&c.expect, &got) {
                (Expect::Hold(s), Action::Hold { reason }) => reason.contains(s),
                (Expect::Rollback(s), Action::Rollback { reason }) => reason.contains(s),
                (
                    Expect::Advance(step, w),
                    Action::Advance {
                        step: gs,
                        weight_percent: gw,
                    },
                ) => step == gs && w == gw,
                (Expect::Promote, Action::Promote) => true,
                _ => false,
            };
            assert!(ok, "{}: expected {:?}, got {:?}", c.name, c.expect, got);
        }
    }

    #[test]
    fn upper_tail_known_values() {
        let close = |z: f64, want: f64, tol: f64| {
            let got = upper_tail(z);
            assert!((got - want).abs() < tol, "z={z}: got {got}, want {want}");
        };
        close(0.0, 0.5, 1e-7);
        close(1.6449, 0.05, 1e-5);
        close(1.96, 0.025, 1e-5);
        close(2.3263, 0.01, 1e-5);
        close(3.0902, 0.001, 1e-6);
        close(-1.6449, 0.95, 1e-5);
        let deep = upper_tail(6.0);
        assert!(
            deep > 0.0 && (deep - 9.865876e-10).abs() < 1e-15,
            "deep tail {deep}"
        );
        assert_eq!(upper_tail(f64::INFINITY), 0.0);
        assert_eq!(upper_tail(f64::NEG_INFINITY), 1.0);
        assert_eq!(upper_tail(f64::NAN), 1.0);
    }

    #[test]
    fn two_proportion_test_values() {
        // 0.4 of 20 vs 0.0 of 20: pooled 0.2, se sqrt(0.016), z 3.1623.
        let p = two_proportion_p_value(8, 20, 0, 20);
        assert!((p - 0.000_782_7).abs() < 1e-6, "p={p}");
        // A decrease is never evidence of an increase.
        assert!(two_proportion_p_value(0, 20, 8, 20) > 0.99);
        // Zero variance and empty samples give no evidence, never NaN.
        assert_eq!(two_proportion_p_value(0, 100, 0, 100), 1.0);
        assert_eq!(two_proportion_p_value(100, 100, 50, 50), 1.0);
        assert_eq!(two_proportion_p_value(3, 0, 0, 10), 1.0);
        assert_eq!(two_proportion_p_value(3, 10, 0, 0), 1.0);
    }

    #[test]
    fn one_proportion_test_values() {
        // 0.10 of 200 against 0.02: se sqrt(0.0196/200), z 8.08.
        assert!(one_proportion_p_value(20, 200, 0.02) < 1e-10);
        // 0.025 of 200 against 0.02: z 0.505, p about 0.307.
        let p = one_proportion_p_value(5, 200, 0.02);
        assert!((p - 0.3068).abs() < 1e-3, "p={p}");
        // Degenerate null rates must not divide by zero.
        assert_eq!(one_proportion_p_value(0, 10, 0.0), 1.0);
        assert_eq!(one_proportion_p_value(1, 10, 0.0), 0.0);
        assert_eq!(one_proportion_p_value(10, 10, 1.0), 1.0);
        assert_eq!(one_proportion_p_value(0, 0, 0.02), 1.0);
    }

    #[test]
    fn default_plan_validates() {
        assert_eq!(Plan::default_plan().validate(), Ok(()));
    }

    #[test]
    fn validate_rejections() {
        type Tweak = fn(&mut Plan);
        let table: Vec<(&str, Tweak, &str)> = vec![
            (
                "no steps",
                |p| p.steps.clear(),
                "steps: must list at least one step",
            ),
            (
                "zero weight",
                |p| p.steps[0].weight_percent = 0.0,
                "steps[0].weight_percent: must be between 0 and 100 and not below the previous step",
            ),
            (
                "over 100",
                |p| p.steps[3].weight_percent = 101.0,
                "steps[3].weight_percent",
            ),
            (
                "decreasing",
                |p| p.steps[2].weight_percent = 10.0,
                "steps[2].weight_percent: must be between 0 and 100 and not below the previous step",
            ),
            (
                "nan weight",
                |p| p.steps[1].weight_percent = f64::NAN,
                "steps[1].weight_percent",
            ),
            (
                "error increase zero",
                |p| p.max_error_rate_increase = 0.0,
                "max_error_rate_increase:",
            ),
            (
                "error increase one",
                |p| p.max_error_rate_increase = 1.0,
                "max_error_rate_increase:",
            ),
            (
                "latency ratio below one",
                |p| p.max_p95_latency_ratio = 0.9,
                "max_p95_latency_ratio:",
            ),
            (
                "latency ratio infinite",
                |p| p.max_p95_latency_ratio = f64::INFINITY,
                "max_p95_latency_ratio:",
            ),
            (
                "thumbs increase negative",
                |p| p.max_thumbs_down_increase = -0.1,
                "max_thumbs_down_increase:",
            ),
            (
                "min requests zero",
                |p| p.min_requests_to_judge = 0,
                "min_requests_to_judge:",
            ),
            (
                "min feedback zero",
                |p| p.min_feedback_to_judge = 0,
                "min_feedback_to_judge:",
            ),
            (
                "significance zero",
                |p| p.significance = 0.0,
                "significance:",
            ),
            (
                "significance too big",
                |p| p.significance = 0.6,
                "significance:",
            ),
        ];
        for (name, tweak, want) in table {
            let mut plan = Plan::default_plan();
            tweak(&mut plan);
            let err = plan.validate().expect_err(name).to_string();
            assert!(err.contains(want), "{name}: {err}");
            assert!(!err.ends_with('.'), "{name}: trailing period in {err}");
            assert!(
                err.contains("use ") || err.contains("e.g."),
                "{name}: no fix in {err}"
            );
        }
        let mut equal = Plan::default_plan();
        equal.steps[1].weight_percent = 5.0;
        assert_eq!(equal.validate(), Ok(()), "equal weights are allowed");
    }

    #[test]
    fn plan_parses_from_json_with_only_steps() {
        let plan: Plan = serde_json::from_str(
            r#"{"steps":[{"weight_percent":10},{"weight_percent":100,"min_duration_secs":60}]}"#,
        )
        .unwrap();
        assert_eq!(plan.steps.len(), 2);
        assert_eq!(plan.steps[0].min_duration_secs, 0);
        assert_eq!(plan.steps[0].min_requests, 0);
        assert_eq!(plan.steps[1].min_duration_secs, 60);
        let d = Plan::default_plan();
        assert_eq!(plan.max_error_rate_increase, d.max_error_rate_increase);
        assert_eq!(plan.max_p95_latency_ratio, d.max_p95_latency_ratio);
        assert_eq!(plan.max_thumbs_down_increase, d.max_thumbs_down_increase);
        assert_eq!(plan.min_requests_to_judge, d.min_requests_to_judge);
        assert_eq!(plan.min_feedback_to_judge, d.min_feedback_to_judge);
        assert_eq!(plan.significance, d.significance);
        assert_eq!(plan.validate(), Ok(()));

        let round: Plan = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(round, d);
    }

    #[test]
    fn plan_rejects_unknown_fields() {
        assert!(serde_json::from_str::<Plan>(r#"{"steps":[],"max_error_rate":0.1}"#).is_err());
        assert!(
            serde_json::from_str::<Plan>(r#"{"steps":[{"weight_percent":5,"weight":5}]}"#).is_err()
        );
        assert!(serde_json::from_str::<Plan>(r#"{"max_error_rate_increase":0.1}"#).is_err());
    }

    #[test]
    fn status_strings_match_serde() {
        for s in [
            Status::Running,
            Status::Paused,
            Status::Promoted,
            Status::RolledBack,
            Status::Aborted,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
            assert_eq!(
                s.is_terminal(),
                !matches!(s, Status::Running | Status::Paused)
            );
        }
        assert_eq!(
            serde_json::from_str::<Status>("\"rolled_back\"").unwrap(),
            Status::RolledBack
        );
    }
}
