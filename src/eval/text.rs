//! The tokenisations the text scorers are defined over, each written to
//! give the same tokens as the published implementation its metric is
//! quoted from, so that a token F1 or a ROUGE-L reported by Flywheel means
//! what it means elsewhere:
//!
//! - [`squad_tokens`]: the normalisation of SQuAD's official evaluation
//!   script (`normalize_answer`: lowercase, drop ASCII punctuation, drop the
//!   articles "a", "an" and "the", split on whitespace), for token F1.
//! - [`rouge_tokens`]: the tokenizer of Google's `rouge-score` package
//!   (lowercase, every run of characters that are not letters or digits is a
//!   separator), without stemming, for ROUGE-L.
//! - [`collapse_whitespace`]: the whitespace normalisation of the matching
//!   scorers (exact match, contains).
//!
//! Where the Rust standard library and Python differ on a character class,
//! the code says which side it takes and why.

use std::sync::LazyLock;

use regex::Regex;

/// The articles the SQuAD script removes, as whole words (`\b` is
/// Unicode-aware here as in Python 3, whose `re` treats `str` patterns as
/// Unicode; the two agree on word characters except for a few marks).
static ARTICLES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(a|an|the)\b").expect("the articles pattern is valid"));

/// Whitespace as Python's `str.split()` sees it: Unicode `White_Space` plus
/// the four ASCII information separators (U+001C..U+001F), which Python
/// counts as whitespace and Rust's `char::is_whitespace` does not.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// SQuAD's `normalize_answer`: lowercase, remove ASCII punctuation (the 32
/// characters of Python's `string.punctuation`, exactly the ASCII
/// punctuation class), replace the articles "a", "an", "the" with a space,
/// then join the words with single spaces. Non-ASCII punctuation such as
/// "–" or "“" is kept, as in the script.
pub fn squad_normalize(text: &str) -> String {
    let without_punctuation: String = text
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    let without_articles = ARTICLES.replace_all(&without_punctuation, " ");
    without_articles
        .split(is_python_space)
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The tokens SQuAD's F1 counts: the words of [`squad_normalize`].
pub fn squad_tokens(text: &str) -> Vec<String> {
    squad_normalize(text)
        .split(' ')
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The tokens of `rouge-score`'s tokenizer (without its optional Porter
/// stemmer): the text lowercased, split at every character that is not a
/// letter or a digit, empty pieces dropped.
///
/// On ASCII text this is exactly `rouge-score`. It differs on purpose for
/// other scripts: `rouge-score` keeps only `[a-z0-9]`, so "café" becomes
/// "caf" and a text in Greek or Cyrillic has no tokens at all (every score
/// 0); here any Unicode letter or digit is part of a token. Scripts
/// written without spaces (Chinese, Japanese, Thai) still come out as one
/// token per run of letters, which makes ROUGE-L coarse for them.
pub fn rouge_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|token| !token.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every run of whitespace replaced by one space (a leading or trailing run
/// too: trimming is a separate step).
pub fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values are the output of `normalize_answer` from SQuAD's
    /// official v2.0 evaluation script (the same function as v1.1's, with
    /// the articles pattern compiled `re.UNICODE`), run under Python 3.11
    /// on these inputs.
    #[test]
    fn squad_normalisation_matches_the_official_script() {
        let cases = [
            ("the Denver Broncos", "denver broncos"),
            (
                "Levi's Stadium in the San Francisco Bay Area at Santa Clara, California",
                "levis stadium in san francisco bay area at santa clara california",
            ),
            ("Feb. 7th 2016", "feb 7th 2016"),
            // Only whole words are articles; "an" inside "Anaheim" stays.
            (
                "An apple and THE Anaheim theatre",
                "apple and anaheim theatre",
            ),
            ("the the a an", ""),
            // The script drops ASCII punctuation only: the en dash stays,
            // the hyphen goes.
            ("24–10", "24–10"),
            ("24-10", "2410"),
            ("  tabs\tand\nnewlines  ", "tabs and newlines"),
            ("The_Beatles!", "thebeatles"),
        ];
        for (input, expected) in cases {
            assert_eq!(squad_normalize(input), expected, "input {input:?}");
        }
        assert_eq!(squad_tokens("the the a an"), Vec::<String>::new());
        assert_eq!(
            squad_tokens("The Broncos of Denver"),
            ["broncos", "of", "denver"]
        );
    }

    /// Expected tokens are those of `rouge_score.tokenize.tokenize(text,
    /// None)` from `rouge-score` 0.1.2 for the ASCII cases; the non-ASCII
    /// case is where this tokenizer departs from it (see `rouge_tokens`).
    #[test]
    fn rouge_tokens_match_rouge_score_on_ascii() {
        assert_eq!(
            rouge_tokens("The quick brown dog jumps on the log."),
            ["the", "quick", "brown", "dog", "jumps", "on", "the", "log"]
        );
        assert_eq!(
            rouge_tokens("testing, ONE... two-three!"),
            ["testing", "one", "two", "three"]
        );
        assert_eq!(rouge_tokens("3.14 is pi"), ["3", "14", "is", "pi"]);
        assert_eq!(rouge_tokens("--- ... !!!"), Vec::<String>::new());
        // rouge-score gives ["das", "caf", "ist", "sch", "n"] here.
        assert_eq!(
            rouge_tokens("Das Café ist schön"),
            ["das", "café", "ist", "schön"]
        );
    }

    #[test]
    fn whitespace_runs_become_one_space() {
        assert_eq!(collapse_whitespace("a \t\n b"), "a b");
        assert_eq!(collapse_whitespace("\n  a  "), " a ");
        assert_eq!(collapse_whitespace(""), "");
    }
}
