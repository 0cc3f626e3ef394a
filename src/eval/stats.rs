//! Paired statistics over an eval set: the candidate's and the baseline's
//! scores on the same examples compared pairwise, with a 95% confidence
//! interval from a seeded paired bootstrap, and the plain summaries
//! (latency percentiles, error rate, mean tokens) that the gate's other
//! checks read.
//!
//! Everything here is a pure function of its inputs and a seed. The bootstrap
//! draws from [`SplitMix64`], written out here rather than taken from a crate,
//! so that the same outputs and seed give the same interval on every platform
//! and every version of the dependencies. This module must never read a clock,
//! the environment or any other source of entropy.

use super::Score;

/// Errors in the inputs to [`compare_paired`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// The two sides were scored on a different number of examples.
    #[error("candidate has {candidate} scores but baseline has {baseline}; score both sides on the same examples, in the same order")]
    LengthMismatch {
        /// Number of candidate scores.
        candidate: usize,
        /// Number of baseline scores.
        baseline: usize,
    },
    /// A score was NaN or infinite.
    #[error("{side} score at example {index} is not a finite number (got {value}); a scorer that cannot score must return Score::Failed")]
    NotFinite {
        /// `"candidate"` or `"baseline"`.
        side: &'static str,
        /// The example's position.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// The bootstrap settings are unusable; the message names the field.
    #[error("{field}: {message}")]
    Spec {
        /// The [`BootstrapSpec`] field.
        field: &'static str,
        /// What is wrong and how to fix it.
        message: &'static str,
    },
}

/// SplitMix64 (Steele, Lea and Flood 2014), as in Vigna's reference
/// `splitmix64.c`: a 64-bit state advanced by a fixed odd constant and mixed
/// by a fixed finaliser. Small, fast, and with a published output sequence,
/// which is what a reproducible bootstrap needs; it is not for cryptography.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose state starts at `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// An index in `0..n` (`n` at least 1), by Lemire's multiply-shift. It
    /// skips Lemire's rejection step: the bias is below n / 2^64, far under
    /// anything an eval set of any real size could show, and without it every
    /// draw consumes exactly one output, which keeps reruns easy to reason about.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A uniform number in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// How the paired bootstrap runs and what counts as a tie.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapSpec {
    /// Number of bootstrap resamples (B). Default 10,000: the percentile
    /// bounds then move by well under 0.01 from one seed to another.
    pub resamples: usize,
    /// Seed of the generator; the same seed and scores give the same interval.
    pub seed: u64,
    /// Confidence level of the interval, in (0, 1). Default 0.95.
    pub confidence: f64,
    /// A pair whose difference is within this of zero counts as a tie.
    /// Default 1e-9: only equal scores tie.
    pub tie_tolerance: f64,
}

impl Default for BootstrapSpec {
    fn default() -> Self {
        Self {
            resamples: 10_000,
            seed: 0,
            confidence: 0.95,
            tie_tolerance: 1e-9,
        }
    }
}

impl BootstrapSpec {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), StatsError> {
        if self.resamples == 0 {
            return Err(StatsError::Spec {
                field: "resamples",
                message: "must be at least 1; use e.g. 10000",
            });
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(StatsError::Spec {
                field: "confidence",
                message: "must be strictly between 0 and 1; use e.g. 0.95",
            });
        }
        if !(self.tie_tolerance.is_finite() && self.tie_tolerance >= 0.0) {
            return Err(StatsError::Spec {
                field: "tie_tolerance",
                message: "must be a finite number, 0 or more; use e.g. 1e-9",
            });
        }
        Ok(())
    }
}

/// A closed interval `[low, high]`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Interval {
    /// `high - low`.
    pub fn width(&self) -> f64 {
        self.high - self.low
    }

    /// Whether `x` lies in the interval, bounds included.
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

/// A mean over the scored pairs with its bootstrap confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Estimate {
    /// The mean over the scored pairs themselves.
    pub mean: f64,
    /// The bootstrap percentile interval around it.
    pub ci: Interval,
}

/// The comparison of two versions' scores from one scorer over an eval set.
///
/// The means and intervals are taken over the scored pairs only (examples
/// where both sides have a value), each side's included, and all three from
/// the same resamples: so `difference.mean == candidate.mean - baseline.mean`
/// up to rounding, and a side's failures never shift the other side's mean.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PairedComparison {
    /// Examples given (scored or not).
    pub examples: usize,
    /// Examples where both sides have a score.
    pub pairs: usize,
    /// Candidate minus baseline; `None` when there is no scored pair.
    pub difference: Option<Estimate>,
    /// The candidate's mean over the pairs; `None` with no pair.
    pub candidate: Option<Estimate>,
    /// The baseline's mean over the pairs; `None` with no pair.
    pub baseline: Option<Estimate>,
    /// Pairs where the candidate scored higher by more than the tolerance.
    pub wins: usize,
    /// Pairs within the tie tolerance.
    pub ties: usize,
    /// Pairs where the candidate scored lower by more than the tolerance.
    pub losses: usize,
    /// Examples where the candidate's scorer failed.
    pub candidate_failures: usize,
    /// Examples where the baseline's scorer failed.
    pub baseline_failures: usize,
}

impl PairedComparison {
    /// A comparison over `examples` examples with no scored pair and no
    /// failure counted yet: every count 0 and no estimate.
    pub fn empty(examples: usize) -> Self {
        Self {
            examples,
            pairs: 0,
            difference: None,
            candidate: None,
            baseline: None,
            wins: 0,
            ties: 0,
            losses: 0,
            candidate_failures: 0,
            baseline_failures: 0,
        }
    }
}

/// Compares the candidate's scores with the baseline's, example by example
/// (`candidate[i]` and `baseline[i]` are the same example).
///
/// The interval is the percentile bootstrap: `spec.resamples` times, draw
/// as many pairs as there are, with replacement, and take the mean; the
/// bounds are the (1 - confidence)/2 and (1 + confidence)/2 quantiles of those
/// means, with linear interpolation between order statistics (NumPy's default
/// `percentile`, which `scipy.stats.bootstrap(method="percentile")` uses).
/// Resampling pairs, not each side apart, keeps the correlation between the
/// two sides on the same example, which is what makes a paired comparison
/// tighter than two independent ones.
pub fn compare_paired(
    candidate: &[Score],
    baseline: &[Score],
    spec: &BootstrapSpec,
) -> Result<PairedComparison, StatsError> {
    spec.validate()?;
    if candidate.len() != baseline.len() {
        return Err(StatsError::LengthMismatch {
            candidate: candidate.len(),
            baseline: baseline.len(),
        });
    }
    let mut comparison = PairedComparison::empty(candidate.len());
    let mut pairs = Vec::with_capacity(candidate.len());
    for (index, (c, b)) in candidate.iter().zip(baseline).enumerate() {
        let c = finite(c, "candidate", index)?;
        let b = finite(b, "baseline", index)?;
        comparison.candidate_failures += usize::from(c.is_none());
        comparison.baseline_failures += usize::from(b.is_none());
        if let (Some(c), Some(b)) = (c, b) {
            let d = c - b;
            if d > spec.tie_tolerance {
                comparison.wins += 1;
            } else if d < -spec.tie_tolerance {
                comparison.losses += 1;
            } else {
                comparison.ties += 1;
            }
            pairs.push((c, b));
        }
    }
    comparison.pairs = pairs.len();
    if pairs.is_empty() {
        return Ok(comparison);
    }

    let n = pairs.len();
    let mut rng = SplitMix64::new(spec.seed);
    let mut means = [
        Vec::with_capacity(spec.resamples),
        Vec::with_capacity(spec.resamples),
        Vec::with_capacity(spec.resamples),
    ];
    for _ in 0..spec.resamples {
        let (mut sc, mut sb, mut sd) = (0.0, 0.0, 0.0);
        for _ in 0..n {
            let (c, b) = pairs[rng.below(n)];
            sc += c;
            sb += b;
            sd += c - b;
        }
        means[0].push(sc / n as f64);
        means[1].push(sb / n as f64);
        means[2].push(sd / n as f64);
    }
    let [mc, mb, md] = means;
    let mean_c = pairs.iter().map(|p| p.0).sum::<f64>() / n as f64;
    let mean_b = pairs.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let mean_d = pairs.iter().map(|p| p.0 - p.1).sum::<f64>() / n as f64;
    comparison.candidate = Some(estimate(mean_c, mc, spec.confidence));
    comparison.baseline = Some(estimate(mean_b, mb, spec.confidence));
    comparison.difference = Some(estimate(mean_d, md, spec.confidence));
    Ok(comparison)
}

fn finite(score: &Score, side: &'static str, index: usize) -> Result<Option<f64>, StatsError> {
    match score.value() {
        Some(value) if !value.is_finite() => Err(StatsError::NotFinite { side, index, value }),
        other => Ok(other),
    }
}

fn estimate(mean: f64, mut resampled: Vec<f64>, confidence: f64) -> Estimate {
    resampled.sort_by(f64::total_cmp);
    let alpha = (1.0 - confidence) / 2.0;
    Estimate {
        mean,
        ci: Interval {
            low: quantile_linear(&resampled, alpha),
            high: quantile_linear(&resampled, 1.0 - alpha),
        },
    }
}

/// The `q` quantile (0..=1) of sorted, non-empty `sorted`, interpolating
/// linearly between the order statistics at ranks `floor(h)` and
/// `ceil(h)`, `h = q (n - 1)`: Hyndman and Fan's definition 7, NumPy's
/// default.
pub fn quantile_linear(sorted: &[f64], q: f64) -> f64 {
    let h = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The `p`-th percentile (0 < p <= 100) of sorted, non-empty `sorted` by
/// nearest rank: the smallest value with at least p% of the values at or
/// below it, i.e. the value of rank `ceil(p/100 * n)` (1-based). It is
/// always an observed value, never an interpolation between two.
pub fn percentile_nearest_rank<T: Copy>(sorted: &[T], p: f64) -> T {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// One call made to a version during an eval, as the summaries see it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Call {
    /// Wall time of the call, in milliseconds, retries included.
    pub latency_ms: u64,
    /// Total tokens (prompt and completion) the upstream reported, if it did.
    pub tokens: Option<u64>,
    /// Whether the call ended in an error (after retries).
    pub error: bool,
}

/// One version's plain figures over an eval: what the gate's latency,
/// error-rate and cost checks read. Each figure is `None` when there is
/// nothing to compute it from, never NaN.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Calls made.
    pub calls: usize,
    /// Calls that ended in an error.
    pub errors: usize,
    /// `errors / calls`; `None` with no call.
    pub error_rate: Option<f64>,
    /// Median latency of the successful calls, in ms, by nearest rank.
    pub p50_latency_ms: Option<u64>,
    /// 95th percentile latency of the successful calls, in ms, by nearest rank.
    pub p95_latency_ms: Option<u64>,
    /// Mean total tokens over the successful calls that reported usage.
    pub mean_tokens: Option<f64>,
}

/// Summarises one version's calls. Latency and tokens are taken over the
/// successful calls only: a failed call's latency is mostly the timeout and
/// retry policy, not the model, and it is already counted in the error rate.
pub fn summarize(calls: &[Call]) -> Summary {
    let errors = calls.iter().filter(|c| c.error).count();
    let mut latencies: Vec<u64> = calls
        .iter()
        .filter(|c| !c.error)
        .map(|c| c.latency_ms)
        .collect();
    latencies.sort_unstable();
    let tokens: Vec<u64> = calls
        .iter()
        .filter(|c| !c.error)
        .filter_map(|c| c.tokens)
        .collect();
    Summary {
        calls: calls.len(),
        errors,
        error_rate: (!calls.is_empty()).then(|| errors as f64 / calls.len() as f64),
        p50_latency_ms: (!latencies.is_empty()).then(|| percentile_nearest_rank(&latencies, 50.0)),
        p95_latency_ms: (!latencies.is_empty()).then(|| percentile_nearest_rank(&latencies, 95.0)),
        mean_tokens: (!tokens.is_empty())
            .then(|| tokens.iter().map(|&t| t as f64).sum::<f64>() / tokens.len() as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(xs: &[f64]) -> Vec<Score> {
        xs.iter().map(|&x| Score::Value(x)).collect()
    }

    #[test]
    fn splitmix64_matches_the_reference_output() {
        // The first ten outputs of Vigna's splitmix64.c with the state set to
        // 1477776061723855037, as published in rand_xoshiro's test suite
        // (rand_xoshiro/src/splitmix64.rs, test `reference`).
        let expected: [u64; 10] = [
            1985237415132408290,
            2979275885539914483,
            13511426838097143398,
            8488337342461049707,
            15141737807933549159,
            17093170987380407015,
            16389528042912955399,
            13177319091862933652,
            10841969400225389492,
            17094824097954834098,
        ];
        let mut rng = SplitMix64::new(1477776061723855037);
        for e in expected {
            assert_eq!(rng.next_u64(), e);
        }
    }

    #[test]
    fn splitmix64_draws_stay_in_range() {
        let mut rng = SplitMix64::new(7);
        for n in [1, 2, 3, 10, 1000] {
            for _ in 0..1000 {
                assert!(rng.below(n) < n);
                let x = rng.next_f64();
                assert!((0.0..1.0).contains(&x));
            }
        }
    }

    #[test]
    fn counts_wins_ties_losses_and_failures() {
        let c = vec![
            Score::Value(1.0),
            Score::Value(0.5),
            Score::Value(0.0),
            Score::Failed("judge timed out".into()),
            Score::Value(1.0),
            Score::Value(0.2),
        ];
        let b = vec![
            Score::Value(0.0),
            Score::Value(0.5),
            Score::Value(1.0),
            Score::Value(1.0),
            Score::Failed("unreadable".into()),
            Score::Value(0.1),
        ];
        let spec = BootstrapSpec {
            tie_tolerance: 0.15,
            ..BootstrapSpec::default()
        };
        let r = compare_paired(&c, &b, &spec).unwrap();
        assert_eq!((r.examples, r.pairs), (6, 4));
        // 0.2 vs 0.1 is within the tolerance of 0.15: a tie.
        assert_eq!((r.wins, r.ties, r.losses), (1, 2, 1));
        assert_eq!((r.candidate_failures, r.baseline_failures), (1, 1));
        let d = r.difference.unwrap();
        assert!((d.mean - 0.025).abs() < 1e-12);
        let (cm, bm) = (r.candidate.unwrap().mean, r.baseline.unwrap().mean);
        assert!((cm - 0.425).abs() < 1e-12 && (bm - 0.4).abs() < 1e-12);
    }

    #[test]
    fn no_pairs_gives_no_estimate() {
        let c = vec![Score::Failed("x".into()); 3];
        let b = values(&[1.0, 0.0, 1.0]);
        let r = compare_paired(&c, &b, &BootstrapSpec::default()).unwrap();
        assert_eq!(r.pairs, 0);
        assert_eq!(r.candidate_failures, 3);
        assert!(r.difference.is_none() && r.candidate.is_none() && r.baseline.is_none());
        let empty = compare_paired(&[], &[], &BootstrapSpec::default()).unwrap();
        assert_eq!((empty.examples, empty.pairs), (0, 0));
    }

    #[test]
    fn bad_inputs_are_refused_with_the_reason() {
        let spec = BootstrapSpec::default();
        assert_eq!(
            compare_paired(&values(&[1.0]), &values(&[1.0, 0.0]), &spec),
            Err(StatsError::LengthMismatch {
                candidate: 1,
                baseline: 2
            })
        );
        let err = compare_paired(&values(&[f64::NAN]), &values(&[1.0]), &spec).unwrap_err();
        assert!(err.to_string().starts_with("candidate score at example 0"));
        for (bad, field) in [
            (
                BootstrapSpec {
                    resamples: 0,
                    ..spec.clone()
                },
                "resamples",
            ),
            (
                BootstrapSpec {
                    confidence: 1.0,
                    ..spec.clone()
                },
                "confidence",
            ),
            (
                BootstrapSpec {
                    tie_tolerance: -1.0,
                    ..spec.clone()
                },
                "tie_tolerance",
            ),
        ] {
            let err = compare_paired(&values(&[1.0]), &values(&[1.0]), &bad).unwrap_err();
            assert!(err.to_string().starts_with(field), "{err}");
        }
    }

    #[test]
    fn constant_differences_give_a_degenerate_interval() {
        let c = values(&[0.9, 0.6, 0.8, 0.4, 0.7]);
        let b = values(&[0.7, 0.4, 0.6, 0.2, 0.5]);
        let r = compare_paired(&c, &b, &BootstrapSpec::default()).unwrap();
        let d = r.difference.unwrap();
        assert!((d.mean - 0.2).abs() < 1e-12);
        assert!((d.ci.low - 0.2).abs() < 1e-12 && (d.ci.high - 0.2).abs() < 1e-12);
    }

    #[test]
    fn same_inputs_and_seed_give_the_same_numbers() {
        let mut data = SplitMix64::new(3);
        let (c, b): (Vec<Score>, Vec<Score>) = (0..50)
            .map(|_| (Score::Value(data.next_f64()), Score::Value(data.next_f64())))
            .unzip();
        let spec = BootstrapSpec {
            seed: 42,
            ..BootstrapSpec::default()
        };
        let first = compare_paired(&c, &b, &spec).unwrap();
        assert_eq!(first, compare_paired(&c, &b, &spec).unwrap());
        let other_seed = BootstrapSpec { seed: 43, ..spec };
        assert_ne!(
            first.difference,
            compare_paired(&c, &b, &other_seed).unwrap().difference
        );
    }

    /// `n` examples where the candidate is right with probability `pc` and
    /// the baseline, independently, with probability `pb`: the true mean
    /// difference is `pc - pb`.
    fn simulated(rng: &mut SplitMix64, n: usize, pc: f64, pb: f64) -> (Vec<Score>, Vec<Score>) {
        let mut bernoulli = |p: f64| Score::Value(if rng.next_f64() < p { 1.0 } else { 0.0 });
        (0..n).map(|_| (bernoulli(pc), bernoulli(pb))).unzip()
    }

    #[test]
    fn the_interval_covers_the_true_difference() {
        // 200 simulated eval sets of 80 examples with a true shift of +0.10.
        // A 95% percentile interval should cover it in about 95% of them
        // (a little less at small n); 90% leaves room for that and for the
        // Monte Carlo noise of 200 trials (standard error about 1.5%).
        let mut data = SplitMix64::new(2024);
        let mut covered = 0;
        for trial in 0..200 {
            let (c, b) = simulated(&mut data, 80, 0.7, 0.6);
            let spec = BootstrapSpec {
                resamples: 1000,
                seed: trial,
                ..BootstrapSpec::default()
            };
            let d = compare_paired(&c, &b, &spec).unwrap().difference.unwrap();
            covered += usize::from(d.ci.contains(0.1));
        }
        assert!(covered >= 180, "covered {covered} of 200");
    }

    #[test]
    fn the_interval_shrinks_with_more_examples() {
        // The standard error falls as 1/sqrt(n): four times the examples
        // should about halve the width.
        let mut data = SplitMix64::new(9);
        let spec = BootstrapSpec {
            resamples: 2000,
            ..BootstrapSpec::default()
        };
        let width = |n: usize, data: &mut SplitMix64| {
            let (c, b) = simulated(data, n, 0.7, 0.6);
            compare_paired(&c, &b, &spec)
                .unwrap()
                .difference
                .unwrap()
                .ci
                .width()
        };
        let (w100, w400, w1600) = (
            width(100, &mut data),
            width(400, &mut data),
            width(1600, &mut data),
        );
        assert!(w400 < 0.65 * w100 && w400 > 0.35 * w100, "{w100} {w400}");
        assert!(w1600 < 0.65 * w400, "{w400} {w1600}");
    }

    #[test]
    fn agrees_with_scipy_bootstrap() {
        // Expected values from SciPy 1.17.1:
        //   scipy.stats.bootstrap((c, b), lambda x, y, axis=-1: np.mean(x - y, axis=axis),
        //       paired=True, vectorized=True, n_resamples=100000,
        //       confidence_level=0.95, method="percentile",
        //       random_state=np.random.default_rng(12345))
        // gives [0.0255, 0.101] around a mean difference of 0.064, with a
        // standard error of 0.0193. SciPy draws from its own generator, so
        // the bounds agree only up to Monte Carlo noise: 0.003 is about a
        // sixth of the standard error, and several times that noise at
        // 20,000 resamples.
        let c = values(&[
            0.91, 0.35, 0.62, 0.78, 0.12, 0.55, 0.83, 0.47, 0.69, 0.30, 0.95, 0.58, 0.41, 0.74,
            0.66, 0.22, 0.88, 0.51, 0.37, 0.79,
        ]);
        let b = values(&[
            0.80, 0.40, 0.50, 0.70, 0.20, 0.45, 0.85, 0.30, 0.60, 0.35, 0.90, 0.40, 0.45, 0.60,
            0.70, 0.10, 0.75, 0.55, 0.20, 0.65,
        ]);
        let spec = BootstrapSpec {
            resamples: 20_000,
            seed: 1,
            ..BootstrapSpec::default()
        };
        let d = compare_paired(&c, &b, &spec).unwrap().difference.unwrap();
        assert!((d.mean - 0.064).abs() < 1e-12);
        assert!((d.ci.low - 0.0255).abs() < 0.003, "{:?}", d.ci);
        assert!((d.ci.high - 0.101).abs() < 0.003, "{:?}", d.ci);
    }

    #[test]
    fn percentiles_follow_their_definitions() {
        // Nearest rank, from its textbook example (Wikipedia, "Percentile",
        // nearest-rank method): for 15, 20, 35, 40, 50 the 5th percentile is
        // 15, the 30th 20, the 40th 20, the 50th 35 and the 100th 50.
        let xs = [15, 20, 35, 40, 50];
        for (p, v) in [(5.0, 15), (30.0, 20), (40.0, 20), (50.0, 35), (100.0, 50)] {
            assert_eq!(percentile_nearest_rank(&xs, p), v, "p{p}");
        }
        // Linear interpolation, against numpy.percentile([1, 2, 3, 4], q)
        // = 1.0, 1.75, 2.5, 4.0 for q = 0, 25, 50, 100.
        let ys = [1.0, 2.0, 3.0, 4.0];
        for (q, v) in [(0.0, 1.0), (0.25, 1.75), (0.5, 2.5), (1.0, 4.0)] {
            assert!((quantile_linear(&ys, q) - v).abs() < 1e-12);
        }
    }

    #[test]
    fn summaries_of_calls() {
        let mut calls: Vec<Call> = (1..=20)
            .map(|i| Call {
                latency_ms: i * 10,
                tokens: Some(i),
                error: false,
            })
            .collect();
        calls.push(Call {
            latency_ms: 30_000,
            tokens: None,
            error: true,
        });
        let s = summarize(&calls);
        assert_eq!((s.calls, s.errors), (21, 1));
        assert!((s.error_rate.unwrap() - 1.0 / 21.0).abs() < 1e-12);
        // Nearest rank over the 20 successes: ranks 10 and 19; the failed
        // call's 30 s timeout is not a latency of the model.
        assert_eq!((s.p50_latency_ms, s.p95_latency_ms), (Some(100), Some(190)));
        assert_eq!(s.mean_tokens, Some(10.5));

        let all_failed = summarize(&[Call {
            latency_ms: 5,
            tokens: Some(3),
            error: true,
        }]);
        assert_eq!(all_failed.error_rate, Some(1.0));
        assert_eq!(
            (all_failed.p95_latency_ms, all_failed.mean_tokens),
            (None, None)
        );
        assert_eq!(summarize(&[]).error_rate, None);
    }
}
