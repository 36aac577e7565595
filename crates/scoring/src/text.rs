//! Text normalisation the scorers share: the `equals` normal form, SQuAD answer normalisation,
//! ROUGE tokenisation, and pulling a JSON document out of a chatty answer.
//!
//! These are pure string functions. They deliberately know nothing of scorer kinds or scores:
//! `scorers` decides which normal form a scorer compares.

/// Characters that count as quotes around an answer, straight and typographic.
const QUOTES: &[char] = &[
    '"', '\'', '`', '\u{201C}', '\u{201D}', '\u{2018}', '\u{2019}',
];

/// Punctuation stripped from the end of an answer by [`normalize_equals`].
const TRAILING_PUNCTUATION: &[char] = &['.', ',', ';', ':', '!', '?'];

/// The normal form `equals` compares, applied to answer and target alike:
///
/// 1. keep the first line that is not blank (an empty string when every line is);
/// 2. case-fold it (`str::to_lowercase`, Unicode-aware);
/// 3. repeat until nothing changes: trim whitespace, strip trailing `. , ; : ! ?`, and strip
///    one pair of surrounding quotes (any two of `" ' ` “ ” ‘ ’`, at both ends).
///
/// So `"Positive."`, `positive!` and `  POSITIVE\nbecause…` all become `positive`; punctuation
/// and quotes inside the answer are kept.
pub fn normalize_equals(s: &str) -> String {
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut current = line.to_lowercase();
    loop {
        let trimmed = current
            .trim()
            .trim_end_matches(TRAILING_PUNCTUATION)
            .trim_end();
        let unquoted = strip_surrounding_quotes(trimmed);
        if unquoted.len() == current.len() {
            return current;
        }
        current = unquoted.to_string();
    }
}

fn strip_surrounding_quotes(s: &str) -> &str {
    let mut chars = s.chars();
    match (chars.next(), chars.next_back()) {
        (Some(first), Some(last)) if QUOTES.contains(&first) && QUOTES.contains(&last) => {
            &s[first.len_utf8()..s.len() - last.len_utf8()]
        }
        _ => s,
    }
}

/// SQuAD's `normalize_answer`, step for step: lowercase, delete ASCII punctuation (Python's
/// `string.punctuation`), delete the words `a`, `an`, `the`, and split on whitespace.
pub fn squad_tokens(s: &str) -> Vec<String> {
    let lowered = s.to_lowercase();
    let without_punctuation: String = lowered
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    without_punctuation
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .map(str::to_string)
        .collect()
}

/// ROUGE tokens as Google's `rouge-score` makes them without stemming: lowercase, every run of
/// non-alphanumeric characters becomes a separator. Unlike `rouge-score` (ASCII `[a-z0-9]`),
/// letters and digits of any script are kept, so non-English answers are not scored as empty.
pub fn rouge_tokens(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The JSON document in an answer: the whole answer if it parses, else the first fenced code
/// block (```` ```json ```` or a bare ```` ``` ````) that parses. Text around the fence, such as
/// "Here is the JSON:", is ignored. `None` when nothing parses.
pub fn extract_json(answer: &str) -> Option<serde_json::Value> {
    let trimmed = answer.trim();
    if let Ok(v) = serde_json::from_str(trimmed) {
        return Some(v);
    }
    fenced_blocks(trimmed)
        .filter(|(info, _)| info.is_empty() || info.eq_ignore_ascii_case("json"))
        .find_map(|(_, body)| serde_json::from_str(body.trim()).ok())
}

/// Fenced code blocks of a Markdown text as `(info string, body)`. An unclosed last fence runs
/// to the end of the text, as models that hit `max_tokens` leave it.
fn fenced_blocks(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let open = rest.find("```")?;
        let after = &rest[open + 3..];
        let (info, body_start) = match after.find('\n') {
            Some(nl) => (after[..nl].trim(), &after[nl + 1..]),
            None => (after.trim(), ""),
        };
        let (body, next) = match body_start.find("```") {
            Some(close) => (&body_start[..close], &body_start[close + 3..]),
            None => (body_start, ""),
        };
        rest = next;
        Some((info, body))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_equals(input: &str, expected: &str) {
        assert_eq!(normalize_equals(input), expected, "input: {input:?}");
    }

    #[test]
    fn equals_normal_form() {
        check_equals("positive", "positive");
        check_equals("  Positive.  ", "positive");
        check_equals("\"Positive.\"", "positive");
        check_equals("\"positive\".", "positive");
        check_equals("'negative'!", "negative");
        check_equals("“Paris”", "paris");
        check_equals("`42`", "42");
        check_equals("\n\n  POSITIVE\nBecause the review praises it.", "positive");
        check_equals("", "");
        check_equals(" \n \n", "");
        check_equals("\"\"", "");
        check_equals("e.g. this", "e.g. this");
        check_equals("it's fine", "it's fine");
        check_equals("3.14", "3.14");
        check_equals("why?!", "why");
        check_equals("ÉCOLE", "école");
    }

    fn check_squad(input: &str, expected: &[&str]) {
        assert_eq!(squad_tokens(input), expected, "input: {input:?}");
    }

    #[test]
    fn squad_normalisation() {
        check_squad("The Cat sat on a mat.", &["cat", "sat", "on", "mat"]);
        check_squad("An apple, an orange", &["apple", "orange"]);
        check_squad("the-end", &["theend"]);
        check_squad("  ", &[]);
        check_squad("Theatre", &["theatre"]);
    }

    fn check_rouge(input: &str, expected: &[&str]) {
        assert_eq!(rouge_tokens(input), expected, "input: {input:?}");
    }

    #[test]
    fn rouge_tokenisation() {
        check_rouge("The cat, the HAT!", &["the", "cat", "the", "hat"]);
        check_rouge("state-of-the-art", &["state", "of", "the", "art"]);
        check_rouge("naïve café", &["naïve", "café"]);
        check_rouge("...", &[]);
    }

    fn check_json(input: &str, expected: Option<&str>) {
        let got = extract_json(input).map(|v| v.to_string());
        assert_eq!(got.as_deref(), expected, "input: {input:?}");
    }

    #[test]
    fn json_extraction() {
        check_json(r#"{"a": 1}"#, Some(r#"{"a":1}"#));
        check_json("  [1, 2]\n", Some("[1,2]"));
        check_json("```json\n{\"a\": 1}\n```", Some(r#"{"a":1}"#));
        check_json(
            "Here you go:\n```JSON\n{\"a\": 1}\n```\nDone.",
            Some(r#"{"a":1}"#),
        );
        check_json("```\n{\"a\": 1}\n```", Some(r#"{"a":1}"#));
        check_json(
            "```python\nx = 1\n```\n```json\n{\"b\": 2}\n```",
            Some(r#"{"b":2}"#),
        );
        check_json("```json\n{\"a\": 1}", Some(r#"{"a":1}"#));
        check_json("```json\n{\"a\": \n```", None);
        check_json("not json", None);
        check_json("", None);
    }
}
