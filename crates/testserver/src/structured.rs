//! Structured outputs and log-probabilities, as much as a test double needs: which shape a
//! request asks its answer in (`response_format`), the content in that shape, and the
//! `logprobs` block of a choice.
//!
//! A `json_schema` format must be the one label-constrained answers use: an object whose
//! required string property `answer` has an `enum` of labels. The answer is the scripted one when
//! it is a label (case-insensitively), else the first label. Log-probabilities are scripted per
//! answer text; tokens are the server's whitespace words, each carrying the whitespace before it
//! so the tokens spell the content exactly, as a real tokenizer's do. A structured answer's JSON
//! framing (`{"answer":"` and `"}`) is a token each. Nothing here does IO.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::wire::ChatRequest;

/// The log-probability of every token nothing scripts.
pub const DEFAULT_LOGPROB: f32 = -0.1;

/// Most `top_logprobs` alternatives per token, as OpenAI allows.
const MAX_TOP_LOGPROBS: u64 = 20;

/// The shape a request asks its answer in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// No `response_format`, or `{"type": "text"}`.
    Text,
    /// `json_object`: `{"answer": "<answer>"}`.
    Json,
    /// `json_schema` with an `answer` enum: `{"answer": "<label>"}`.
    Labels(Vec<String>),
}

/// Why a request is refused (an HTTP 400): a part of it this server is set not to support.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refusal {
    pub message: String,
    /// The request parameter at fault, as OpenAI's error bodies name it.
    pub param: &'static str,
}

/// The shape `request` asks for, or why it is refused.
pub(crate) fn check(
    request: &ChatRequest,
    structured_outputs: bool,
    logprobs: bool,
) -> Result<Shape, Refusal> {
    let shape = shape(request.response_format.as_ref(), structured_outputs)?;
    if request.logprobs == Some(true) && !logprobs {
        return Err(Refusal {
            message: "logprobs are not supported by this server".to_owned(),
            param: "logprobs",
        });
    }
    Ok(shape)
}

/// The `type` of a request's `response_format`, for the request log.
pub(crate) fn format_type(response_format: Option<&Value>) -> Option<String> {
    response_format.map(|f| f["type"].as_str().unwrap_or("").to_owned())
}

/// The shape `response_format` asks for; refused when the server has structured outputs
/// switched off, or the format is not one this double knows.
pub(crate) fn shape(
    response_format: Option<&Value>,
    structured_outputs: bool,
) -> Result<Shape, Refusal> {
    let refuse = |message: &str| {
        Err(Refusal {
            message: message.to_owned(),
            param: "response_format",
        })
    };
    let Some(format) = response_format else {
        return Ok(Shape::Text);
    };
    let kind = format["type"].as_str().unwrap_or("");
    if kind == "text" {
        return Ok(Shape::Text);
    }
    if !structured_outputs {
        return refuse(
            "response_format is not supported by this server: json_schema structured outputs \
             are unavailable",
        );
    }
    match kind {
        "json_object" => Ok(Shape::Json),
        "json_schema" => {
            let labels: Vec<String> =
                format["json_schema"]["schema"]["properties"]["answer"]["enum"]
                    .as_array()
                    .map(|values| {
                        values
                            .iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
            if labels.is_empty() {
                return refuse(
                    "response_format.json_schema: the test server supports only a schema whose \
                     property `answer` is a non-empty string enum",
                );
            }
            Ok(Shape::Labels(labels))
        }
        other => refuse(&format!("response_format.type {other:?} is not supported")),
    }
}

/// What the server says, in `shape`: the content and the answer text its log-probabilities are
/// scripted by (the label, for a structured answer).
pub(crate) fn shaped_answer(shape: &Shape, answer: &str) -> (String, String) {
    let as_json = |value: &str| json!({ "answer": value }).to_string();
    match shape {
        Shape::Text => (answer.to_owned(), answer.to_owned()),
        Shape::Json => (as_json(answer), answer.to_owned()),
        Shape::Labels(labels) => {
            let wanted = answer.trim().to_lowercase();
            let label = labels
                .iter()
                .find(|l| l.to_lowercase() == wanted)
                .or(labels.first())
                .cloned()
                .unwrap_or_default();
            (as_json(&label), label)
        }
    }
}

/// The `logprobs` block of a choice whose message says `content`: one entry per token, the
/// tokens of `scripted_by` taking their values from `scripts` (then [`DEFAULT_LOGPROB`]), each
/// with `top` alternatives (the token itself first).
pub(crate) fn logprobs_block(
    content: &str,
    scripted_by: &str,
    scripts: &HashMap<String, Vec<f32>>,
    top: Option<u64>,
) -> Value {
    let script = scripts.get(scripted_by).map(Vec::as_slice).unwrap_or(&[]);
    let top = top.unwrap_or(0).min(MAX_TOP_LOGPROBS);
    let entries: Vec<Value> = tokens(content, scripted_by)
        .into_iter()
        .map(|(token, word)| {
            let logprob = word
                .and_then(|i| script.get(i).copied())
                .unwrap_or(DEFAULT_LOGPROB);
            token_entry(&token, logprob, top)
        })
        .collect();
    json!({ "content": entries, "refusal": null })
}

fn token_entry(token: &str, logprob: f32, top: u64) -> Value {
    let alternatives: Vec<Value> = (0..top)
        .map(|k| {
            let alt = if k == 0 {
                token.to_owned()
            } else {
                format!(" <alt-{k}>")
            };
            let lp = logprob - k as f32;
            json!({ "token": alt, "logprob": lp, "bytes": alt.as_bytes() })
        })
        .collect();
    json!({
        "token": token, "logprob": logprob, "bytes": token.as_bytes(),
        "top_logprobs": alternatives,
    })
}

/// The tokens of `content`, each with the index of the word of `scripted_by` it spells (None
/// for JSON framing, or when the content does not contain `scripted_by` as written).
fn tokens(content: &str, scripted_by: &str) -> Vec<(String, Option<usize>)> {
    let inner = content
        .strip_prefix("{\"answer\":\"")
        .and_then(|rest| rest.strip_suffix("\"}"));
    match inner {
        Some(inner) => {
            let mut out = vec![("{\"answer\":\"".to_owned(), None)];
            out.extend(words(inner, inner == scripted_by));
            out.push(("\"}".to_owned(), None));
            out
        }
        None => words(content, content == scripted_by),
    }
}

/// Whitespace words with the whitespace before each attached (leading whitespace joins the
/// first word, trailing whitespace is a token of its own), numbered when `scripted`.
fn words(text: &str, scripted: bool) -> Vec<(String, Option<usize>)> {
    let mut out: Vec<(String, Option<usize>)> = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for c in text.chars() {
        if c.is_whitespace() && in_word {
            out.push((std::mem::take(&mut current), None));
            in_word = false;
        }
        in_word |= !c.is_whitespace();
        current.push(c);
    }
    if !current.is_empty() {
        out.push((current, None));
    }
    let mut word = 0;
    for (token, index) in &mut out {
        if scripted && !token.trim().is_empty() {
            *index = Some(word);
            word += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels_format(labels: &[&str]) -> Value {
        json!({"type": "json_schema", "json_schema": {"name": "choice", "strict": true, "schema": {
            "type": "object", "required": ["answer"],
            "properties": {"answer": {"type": "string", "enum": labels}}}}})
    }

    #[test]
    fn shapes_and_refusals() {
        let f = labels_format(&["yes", "no"]);
        assert_eq!(
            shape(Some(&f), true),
            Ok(Shape::Labels(vec!["yes".into(), "no".into()]))
        );
        assert!(
            shape(Some(&f), false)
                .unwrap_err()
                .message
                .contains("not supported")
        );
        assert_eq!(
            shape(Some(&json!({"type": "text"})), false),
            Ok(Shape::Text)
        );
        assert_eq!(shape(None, false), Ok(Shape::Text));
        assert!(shape(Some(&labels_format(&[])), true).is_err());
        assert_eq!(format_type(Some(&f)).as_deref(), Some("json_schema"));
    }

    #[test]
    fn labels_match_case_insensitively_else_the_first() {
        let s = Shape::Labels(vec!["Yes".into(), "No".into()]);
        assert_eq!(
            shaped_answer(&s, "no"),
            (r#"{"answer":"No"}"#.into(), "No".into())
        );
        assert_eq!(shaped_answer(&s, "maybe").1, "Yes");
        assert_eq!(shaped_answer(&Shape::Text, "maybe").0, "maybe");
    }

    #[test]
    fn tokens_spell_the_content_and_carry_scripted_logprobs() {
        let scripts = HashMap::from([("very good".to_owned(), vec![-0.5, -0.25])]);
        let content = r#"{"answer":"very good"}"#;
        let block = logprobs_block(content, "very good", &scripts, Some(2));
        let entries = block["content"].as_array().unwrap();
        let spelled: String = entries
            .iter()
            .map(|e| e["token"].as_str().unwrap())
            .collect();
        assert_eq!(spelled, content);
        let lps: Vec<f64> = entries
            .iter()
            .map(|e| e["logprob"].as_f64().unwrap())
            .collect();
        assert_eq!(lps, vec![-0.1f32 as f64, -0.5, -0.25, -0.1f32 as f64]);
        assert_eq!(entries[1]["top_logprobs"].as_array().unwrap().len(), 2);
        assert_eq!(entries[1]["top_logprobs"][0]["token"], "very");

        let plain = logprobs_block(" a  b ", "x", &scripts, None);
        let toks: Vec<&str> = plain["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["token"].as_str().unwrap())
            .collect();
        assert_eq!(toks, vec![" a", "  b", " "]);
    }
}
