//! The scorers: one function per `domain::ScorerKind`, each turning (answer, target) into a
//! value in [0, 1], and [`Scorer`], which checks a kind once (compiles its regex) so a bad
//! pattern is reported when the spec is validated, not halfway through a paid run.
//!
//! Scorers never fail on an answer: an answer that does not parse or match scores 0. They do no
//! IO and keep no state between items.

use std::collections::HashMap;

use domain::ScorerKind;
use regex::Regex;

use crate::Error;
use crate::text::{extract_json, normalize_equals, rouge_tokens, squad_tokens};

/// The placeholder a `regex` pattern may contain; it is replaced by the regex-escaped target.
/// `{{ target }}` (with inner spaces) is accepted too, as the prompt templates accept it.
const TARGET_PLACEHOLDERS: [&str; 2] = ["{{target}}", "{{ target }}"];

/// A scorer whose kind has been checked: its regex, if any, compiles.
///
/// Build one per scorer before a run ([`Scorer::new`]), then call [`Scorer::score`] per item.
#[derive(Debug, Clone)]
pub struct Scorer {
    kind: ScorerKind,
    regex: Option<RegexScorer>,
}

/// A `regex` scorer's pattern. Without the target placeholder it compiles once; with it, the
/// pattern has to be compiled per target, so `new` compiles it with a stand-in target to catch
/// syntax errors up front.
#[derive(Debug, Clone)]
enum RegexScorer {
    Fixed(Regex),
    PerTarget(String),
}

impl Scorer {
    /// Checks `kind` and precompiles what can be: a `regex` pattern that does not compile is an
    /// [`Error::InvalidRegex`]. Every other kind always succeeds.
    pub fn new(kind: &ScorerKind) -> Result<Scorer, Error> {
        let regex = match kind {
            ScorerKind::Regex { pattern } => Some(RegexScorer::new(pattern)?),
            _ => None,
        };
        Ok(Scorer {
            kind: kind.clone(),
            regex,
        })
    }

    /// The kind this scorer checks.
    pub fn kind(&self) -> &ScorerKind {
        &self.kind
    }

    /// Scores one answer against its target; see each kind's rule in the crate docs.
    pub fn score(&self, answer: &str, target: &str) -> f64 {
        match &self.kind {
            ScorerKind::Equals => bool_score(normalize_equals(answer) == normalize_equals(target)),
            ScorerKind::Contains { value } => contains(answer, value.as_deref().unwrap_or(target)),
            ScorerKind::Regex { .. } => match &self.regex {
                Some(r) => bool_score(r.is_match(answer, target)),
                // `new` sets `regex` for every regex kind.
                None => 0.0,
            },
            ScorerKind::IsJson => bool_score(extract_json(answer).is_some()),
            ScorerKind::JsonField { field, value } => {
                json_field(answer, field, value.as_deref().unwrap_or(target))
            }
            ScorerKind::F1 => token_f1(answer, target),
            ScorerKind::RougeL => rouge_l(answer, target),
            // Needs embeddings: the runner scores it with `cosine` and `similar_score`.
            ScorerKind::Similar { .. } => 0.0,
        }
    }
}

/// Scores one answer with a scorer built on the spot. A `regex` kind whose pattern does not
/// compile scores 0 (and logs a warning): validate specs with [`Scorer::new`] first, and build
/// a `Scorer` once when scoring many items.
pub fn score(kind: &ScorerKind, answer: &str, target: &str) -> f64 {
    match Scorer::new(kind) {
        Ok(scorer) => scorer.score(answer, target),
        Err(err) => {
            tracing::warn!(cause = %err, "scorer did not build; scoring 0");
            0.0
        }
    }
}

impl RegexScorer {
    fn new(pattern: &str) -> Result<Self, Error> {
        let invalid = |source| Error::InvalidRegex {
            pattern: pattern.to_string(),
            source,
        };
        if TARGET_PLACEHOLDERS.iter().any(|p| pattern.contains(p)) {
            // Any escaped target is a sequence of literals, which parses wherever the one
            // literal `x` does; only an empty target can still fail (e.g. `{{target}}+`).
            Regex::new(&substitute_target(pattern, "x")).map_err(invalid)?;
            Ok(RegexScorer::PerTarget(pattern.to_string()))
        } else {
            Ok(RegexScorer::Fixed(Regex::new(pattern).map_err(invalid)?))
        }
    }

    fn is_match(&self, answer: &str, target: &str) -> bool {
        match self {
            RegexScorer::Fixed(re) => re.is_match(answer),
            RegexScorer::PerTarget(pattern) => {
                match Regex::new(&substitute_target(pattern, target)) {
                    Ok(re) => re.is_match(answer),
                    Err(err) => {
                        tracing::warn!(%pattern, %target, cause = %err, "regex with this target does not compile; scoring 0");
                        false
                    }
                }
            }
        }
    }
}

fn substitute_target(pattern: &str, target: &str) -> String {
    let escaped = regex::escape(target);
    TARGET_PLACEHOLDERS
        .iter()
        .fold(pattern.to_string(), |p, placeholder| {
            p.replace(placeholder, &escaped)
        })
}

fn bool_score(pass: bool) -> f64 {
    if pass { 1.0 } else { 0.0 }
}

/// Case-folded substring test; the needle is trimmed. An empty needle is contained in every
/// answer, as `str::contains` has it.
fn contains(answer: &str, needle: &str) -> f64 {
    bool_score(
        answer
            .to_lowercase()
            .contains(&needle.trim().to_lowercase()),
    )
}

/// 1 when the answer's JSON has `path` and its value, in string form, equals `expected` after
/// the `equals` normalisation of both. String form: a string is its contents, `null`, booleans
/// and numbers their JSON text, arrays and objects their compact JSON. Two values that both
/// parse as numbers compare as numbers, so `1.0` equals a target of `1`.
fn json_field(answer: &str, path: &str, expected: &str) -> f64 {
    let Some(doc) = extract_json(answer) else {
        return 0.0;
    };
    let Some(found) = lookup(&doc, path) else {
        return 0.0;
    };
    let actual = match found {
        serde_json::Value::String(s) => normalize_equals(s),
        other => normalize_equals(&other.to_string()),
    };
    let expected = normalize_equals(expected);
    let numbers_equal = match (actual.parse::<f64>(), expected.parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    };
    bool_score(actual == expected || numbers_equal)
}

/// Follows a dotted path: each segment is an object key, or an index into an array. An empty
/// path is the document itself.
fn lookup<'a>(doc: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    if path.is_empty() {
        return Some(doc);
    }
    path.split('.').try_fold(doc, |v, segment| match v {
        serde_json::Value::Object(map) => map.get(segment),
        serde_json::Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// SQuAD token F1 (the official evaluation script, v2 edge cases): tokens from
/// [`squad_tokens`]; when either side has no tokens the score is 1 if both have none, else 0.
fn token_f1(answer: &str, target: &str) -> f64 {
    let pred = squad_tokens(answer);
    let gold = squad_tokens(target);
    if pred.is_empty() || gold.is_empty() {
        return bool_score(pred == gold);
    }
    let mut gold_counts: HashMap<&str, usize> = HashMap::new();
    for t in &gold {
        *gold_counts.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in &pred {
        if let Some(c) = gold_counts.get_mut(t.as_str())
            && *c > 0
        {
            *c -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / pred.len() as f64;
    let recall = same as f64 / gold.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// ROUGE-L F-measure with beta = 1 over [`rouge_tokens`]: with L the length of the longest
/// common subsequence, P = L / |answer|, R = L / |target|, F = 2PR / (P + R). Both empty scores
/// 1, one empty scores 0 (`rouge-score` scores both-empty 0; an empty answer to an empty
/// target is a match here, as in F1).
fn rouge_l(answer: &str, target: &str) -> f64 {
    let pred = rouge_tokens(answer);
    let gold = rouge_tokens(target);
    if pred.is_empty() || gold.is_empty() {
        return bool_score(pred.is_empty() && gold.is_empty());
    }
    let lcs = lcs_len(&pred, &gold);
    if lcs == 0 {
        return 0.0;
    }
    let precision = lcs as f64 / pred.len() as f64;
    let recall = lcs as f64 / gold.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// Length of the longest common subsequence, in O(|a|·|b|) time and O(|b|) memory.
fn lcs_len(a: &[String], b: &[String]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diagonal = 0;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row: answer, target, expected score.
    fn check(kind: ScorerKind, table: &[(&str, &str, f64)]) {
        let scorer = Scorer::new(&kind).unwrap();
        for &(answer, target, expected) in table {
            let got = scorer.score(answer, target);
            assert!(
                (got - expected).abs() < 1e-9,
                "{kind:?}: score({answer:?}, {target:?}) = {got}, expected {expected}"
            );
            assert_eq!(got, score(&kind, answer, target), "free fn agrees");
        }
    }

    #[test]
    fn equals() {
        check(
            ScorerKind::Equals,
            &[
                ("positive", "positive", 1.0),
                ("Positive.", "positive", 1.0),
                ("\"NEGATIVE\"", "negative", 1.0),
                ("positive\nThe review is upbeat.", "Positive", 1.0),
                ("positive review", "positive", 0.0),
                ("negative", "positive", 0.0),
                ("", "positive", 0.0),
                ("", "", 1.0),
            ],
        );
    }

    #[test]
    fn contains_target() {
        check(
            ScorerKind::Contains { value: None },
            &[
                ("The answer is Paris.", "paris", 1.0),
                ("PARIS", " Paris ", 1.0),
                ("London", "Paris", 0.0),
                ("anything", "", 1.0),
            ],
        );
    }

    #[test]
    fn contains_value() {
        check(
            ScorerKind::Contains {
                value: Some("Refund".into()),
            },
            &[
                ("We will issue a REFUND.", "ignored", 1.0),
                ("No money back", "refund", 0.0),
            ],
        );
    }

    #[test]
    fn regex_fixed() {
        check(
            ScorerKind::Regex {
                pattern: r"^\s*(?i)(yes|no)\b".into(),
            },
            &[
                ("Yes, it is.", "", 1.0),
                ("  no", "", 1.0),
                ("maybe yes", "", 0.0),
            ],
        );
    }

    #[test]
    fn regex_with_target() {
        check(
            ScorerKind::Regex {
                pattern: r"(?i)^answer:\s*{{target}}$".into(),
            },
            &[
                ("Answer: 3.5", "3.5", 1.0),
                // The target is escaped: `.` matches only a dot.
                ("Answer: 3x5", "3.5", 0.0),
                ("answer: (a+b)*c", "(a+b)*c", 1.0),
                ("Answer: 4", "3.5", 0.0),
            ],
        );
        check(
            ScorerKind::Regex {
                pattern: r"\b{{ target }}\b".into(),
            },
            &[("it is C++ code", "C++", 0.0), ("it is cat", "cat", 1.0)],
        );
    }

    #[test]
    fn regex_that_fails_only_for_an_empty_target_scores_zero() {
        check(
            ScorerKind::Regex {
                pattern: "{{target}}+".into(),
            },
            &[("aaa", "a", 1.0), ("aaa", "", 0.0)],
        );
    }

    #[test]
    fn invalid_regex_is_a_typed_error() {
        for pattern in ["(unclosed", "a{{target}}(", "[z-a]"] {
            let err = Scorer::new(&ScorerKind::Regex {
                pattern: pattern.into(),
            })
            .unwrap_err();
            let Error::InvalidRegex { pattern: p, .. } = &err;
            assert_eq!(p, pattern);
            assert_eq!(
                err.to_string(),
                format!("invalid regex pattern {pattern:?}")
            );
            assert!(std::error::Error::source(&err).is_some());
        }
        assert_eq!(
            score(
                &ScorerKind::Regex {
                    pattern: "(".into()
                },
                "(",
                ""
            ),
            0.0
        );
    }

    #[test]
    fn is_json() {
        check(
            ScorerKind::IsJson,
            &[
                (r#"{"label": "positive"}"#, "", 1.0),
                ("```json\n{\"label\": \"positive\"}\n```", "", 1.0),
                ("Sure! ```json\n[1, 2]\n```", "", 1.0),
                ("42", "", 1.0),
                ("{label: positive}", "", 0.0),
                ("positive", "", 0.0),
            ],
        );
    }

    #[test]
    fn json_field() {
        check(
            ScorerKind::JsonField {
                field: "label".into(),
                value: None,
            },
            &[
                (r#"{"label": "Positive"}"#, "positive", 1.0),
                ("```json\n{\"label\": \"negative\"}\n```", "negative", 1.0),
                (r#"{"label": "negative"}"#, "positive", 0.0),
                (r#"{"other": "positive"}"#, "positive", 0.0),
                ("positive", "positive", 0.0),
                (r#"{"label": null}"#, "null", 1.0),
                (r#"{"label": true}"#, "True", 1.0),
            ],
        );
        check(
            ScorerKind::JsonField {
                field: "result.items.1.score".into(),
                value: None,
            },
            &[
                (
                    r#"{"result": {"items": [{"score": 1}, {"score": 2.0}]}}"#,
                    "2",
                    1.0,
                ),
                (
                    r#"{"result": {"items": [{"score": 1}, {"score": 2.5}]}}"#,
                    "2",
                    0.0,
                ),
                (r#"{"result": {"items": [{"score": 1}]}}"#, "1", 0.0),
                (r#"{"result": {"items": {"1": {"score": 2}}}}"#, "2", 1.0),
            ],
        );
        check(
            ScorerKind::JsonField {
                field: "tags".into(),
                value: Some("[\"a\",\"b\"]".into()),
            },
            &[
                (r#"{"tags": ["a", "b"]}"#, "ignored", 1.0),
                (r#"{"tags": ["b", "a"]}"#, "ignored", 0.0),
            ],
        );
    }

    #[test]
    fn f1() {
        // Expected values from the official SQuAD v2.0 evaluation script (evaluate-v2.0.py),
        // `compute_f1(a_gold=target, a_pred=answer)`, e.g.
        //   compute_f1("a cat on a mat", "the cat sat on the mat") -> 0.8571428571428571
        check(
            ScorerKind::F1,
            &[
                ("the cat sat on the mat", "a cat on a mat", 6.0 / 7.0),
                ("Paris", "paris.", 1.0),
                ("Paris, France", "Paris", 2.0 / 3.0),
                ("London", "Paris", 0.0),
                ("the", "a", 1.0), // both normalise to no tokens
                ("the", "Paris", 0.0),
                // Repeated tokens count once per occurrence in the gold answer.
                ("cat cat cat", "cat dog", 0.4),
            ],
        );
    }

    #[test]
    fn rouge_l_against_rouge_score() {
        // Expected values from Google's rouge-score 0.1.2:
        //   from rouge_score import rouge_scorer
        //   rouge_scorer.RougeScorer(["rougeL"]).score(target, answer)["rougeL"].fmeasure
        check(
            ScorerKind::RougeL,
            &[
                // score("the cat sat on the mat", "the cat on the mat") -> 0.9090909090909091
                (
                    "the cat on the mat",
                    "the cat sat on the mat",
                    0.9090909090909091,
                ),
                // score("police killed the gunman", "the gunman kill police") -> 0.5
                ("the gunman kill police", "police killed the gunman", 0.5),
                // score("A B C D E", "E D C B A") -> 0.20000000000000004
                ("E D C B A", "A B C D E", 0.2),
                // score("The quick brown fox!", "quick, brown dog") -> 0.5714285714285715
                (
                    "quick, brown dog",
                    "The quick brown fox!",
                    0.5714285714285715,
                ),
                ("same words here", "Same words, here.", 1.0),
                ("nothing shared", "completely different", 0.0),
                ("", "", 1.0),
                ("", "target", 0.0),
            ],
        );
    }

    #[test]
    fn lcs() {
        let toks = |s: &str| rouge_tokens(s);
        assert_eq!(lcs_len(&toks("a b c d"), &toks("a c d b")), 3);
        assert_eq!(lcs_len(&toks(""), &toks("a")), 0);
        assert_eq!(lcs_len(&toks("a b a b"), &toks("b a b a")), 3);
    }
}
