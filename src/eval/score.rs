//! Scorers: what one check says about one answer against its example's
//! reference, as a number in 0..=1 (1 best).
//!
//! The reference-similarity measures are the published ones, computed as
//! their reference implementations compute them: [`token_f1`] (SQuAD) and
//! [`rouge_l`] (ROUGE-L F-measure).

use std::collections::HashMap;

use super::text;

/// SQuAD's token F1 between a prediction and a reference, exactly as
/// `compute_f1` in the official evaluation script (v2.0): over the tokens
/// of `text::squad_tokens`, 1 if both have none, 0 if one has none,
/// otherwise the F1 of their multiset overlap.
pub fn token_f1(prediction: &str, reference: &str) -> f64 {
    let predicted = text::squad_tokens(prediction);
    let gold = text::squad_tokens(reference);
    if predicted.is_empty() || gold.is_empty() {
        return if predicted == gold { 1.0 } else { 0.0 };
    }
    let mut unmatched: HashMap<&str, usize> = HashMap::new();
    for token in &gold {
        *unmatched.entry(token).or_default() += 1;
    }
    let mut same = 0usize;
    for token in &predicted {
        if let Some(count) = unmatched.get_mut(token.as_str()).filter(|c| **c > 0) {
            *count -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / predicted.len() as f64;
    let recall = same as f64 / gold.len() as f64;
    (2.0 * precision * recall) / (precision + recall)
}

/// ROUGE-L F-measure (β = 1) of a prediction against a reference, as
/// Google's `rouge-score` computes it (`rougeL`, no stemming): precision
/// is the longest common subsequence of tokens over the prediction's
/// length, recall over the reference's; 0 if either has no token. Time is
/// the product of the two token counts, memory the shorter one.
pub fn rouge_l(prediction: &str, reference: &str) -> f64 {
    let predicted = text::rouge_tokens(prediction);
    let target = text::rouge_tokens(reference);
    if predicted.is_empty() || target.is_empty() {
        return 0.0;
    }
    let lcs = lcs_len(&predicted, &target);
    let precision = lcs as f64 / predicted.len() as f64;
    let recall = lcs as f64 / target.len() as f64;
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

/// The length of the longest common subsequence, by the usual dynamic
/// programme keeping one row of the shorter side.
fn lcs_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let mut row = vec![0usize; short.len() + 1];
    for x in long {
        // `diagonal` is the previous row's value one column to the left.
        let mut diagonal = 0;
        for (j, y) in short.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[short.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() < 1e-12
    }

    /// Expected values from `compute_f1` of SQuAD's official v2.0
    /// evaluation script (Python 3.11), on answers to the SQuAD dev set's
    /// first question ("Which NFL team represented the AFC at Super Bowl
    /// 50?", gold "Denver Broncos") and its neighbours, plus cases for
    /// repeated tokens and articles.
    #[test]
    fn token_f1_matches_squads_official_script() {
        let cases = [
            ("Denver Broncos", "Denver Broncos", 1.0),
            ("Denver Broncos", "the Denver Broncos", 1.0),
            ("Denver Broncos", "Broncos", 0.6666666666666666),
            ("Denver Broncos", "The Broncos of Denver", 0.8),
            (
                "Santa Clara, California",
                "Levi's Stadium in the San Francisco Bay Area at Santa Clara, California",
                0.42857142857142855,
            ),
            ("Super Bowl L", "L", 0.5),
            ("gold", "golden anniversary", 0.0),
            ("February 7, 2016", "Feb. 7th 2016", 0.3333333333333333),
            ("Carolina Panthers", "Denver Broncos", 0.0),
            ("a a b", "a b b", 0.6666666666666666),
            ("x y y z", "y y y", 0.5714285714285715),
            ("Theatre and an apple", "the theatre, an apple!", 0.8),
            ("24–10", "24-10", 0.0),
            // Both normalise to nothing: the script's "no answer" agreement.
            ("the the a an", "An", 1.0),
        ];
        for (gold, prediction, expected) in cases {
            let got = token_f1(prediction, gold);
            assert!(
                close(got, expected),
                "{prediction:?} vs {gold:?}: {got} != {expected}"
            );
        }
    }

    /// Expected values from Google's `rouge-score` 0.1.2,
    /// `RougeScorer(["rougeL"], use_stemmer=False).score(target,
    /// prediction)["rougeL"].fmeasure`. The first two "police" cases are
    /// also the worked example of Lin's ROUGE paper (2004, section 3.1):
    /// against "police killed the gunman", S2 scores 3/4 and S3 2/4.
    #[test]
    fn rouge_l_matches_rouge_score() {
        let cases = [
            (
                "The quick brown fox jumps over the lazy dog",
                "The quick brown dog jumps on the log.",
                0.5882352941176471,
            ),
            ("police killed the gunman", "police kill the gunman", 0.75),
            ("police killed the gunman", "the gunman kill police", 0.5),
            ("police killed the gunman", "the gunman police killed", 0.5),
            ("Testing one two three", "testing, ONE... two-three!", 1.0),
            ("a b c d e f", "f e d c b a", 0.16666666666666666),
            ("The cat sat on the mat.", "The cat sat on the mat.", 1.0),
            ("hello world", "goodbye moon", 0.0),
            ("3.14 is pi", "pi is 3 14", 0.5),
            ("hello world", "", 0.0),
        ];
        for (target, prediction, expected) in cases {
            let got = rouge_l(prediction, target);
            assert!(
                close(got, expected),
                "{prediction:?} vs {target:?}: {got} != {expected}"
            );
        }
        // Where this tokenizer departs from rouge-score on purpose: it
        // keeps "café" and "schön" whole (rouge-score: 0.4444444444444445).
        assert!(close(
            rouge_l("Das Cafe ist schon", "Das Café ist schön"),
            0.5
        ));
    }

    #[test]
    fn lcs_is_symmetric_and_handles_empty_sides() {
        let a = ["a", "b", "c", "b", "d", "a", "b"];
        let b = ["b", "d", "c", "a", "b", "a"];
        assert_eq!(lcs_len(&a, &b), 4);
        assert_eq!(lcs_len(&b, &a), 4);
        assert_eq!(lcs_len::<&str>(&[], &b), 0);
    }
}
