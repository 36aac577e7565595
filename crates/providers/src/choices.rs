//! Answers constrained to labels on a hosted endpoint (`GenerationParams::choices`): the
//! optional request parts that ask for them (`response_format` with a JSON-schema enum of the
//! labels, `logprobs`), what the endpoint has refused of those so far, and reading a label and
//! its confidence back out of the answer.
//!
//! Endpoints differ: OpenAI honours a strict schema; vLLM, llama.cpp and older deployments may
//! refuse `response_format` or `logprobs` with a 400, or ignore `response_format` and answer
//! free text. A refusal drops that part for the call and for every later call of the client
//! (unless the [`crate::Endpoint`] fixed it); free text, and JSON naming no label, are mapped with
//! [`domain::map_free_text`]. The retry itself lives in `client.rs`; nothing here does IO.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use async_openai::types::chat::{
    ChatCompletionTokenLogprob, CreateChatCompletionRequest, ResponseFormat,
    ResponseFormatJsonSchema,
};
use domain::{ChoiceRecord, ChoiceVia, Choices, GenerationParams};
use serde_json::{Value, json};

use crate::{CallError, Endpoint};

/// The schema's name (OpenAI requires one) and its single property.
const SCHEMA_NAME: &str = "choice";
const ANSWER_FIELD: &str = "answer";

/// A structured answer needs tokens for its JSON framing as well as the label: at least this
/// many answer tokens more than the longest label's estimate are requested.
const SCHEMA_TOKEN_SLACK: u32 = 16;

/// An optional request part an endpoint may refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feature {
    Schema,
    Logprobs,
}

/// Which optional parts one request carries, and which of them a refusal may drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Extras {
    pub schema: bool,
    pub logprobs: bool,
    /// Auto-detected (the endpoint left it `None`), so a refusal drops it instead of failing.
    schema_auto: bool,
    logprobs_auto: bool,
}

impl Extras {
    /// The same parts without `feature`.
    pub(crate) fn without(self, feature: Feature) -> Extras {
        match feature {
            Feature::Schema => Extras {
                schema: false,
                ..self
            },
            Feature::Logprobs => Extras {
                logprobs: false,
                ..self
            },
        }
    }

    fn may_drop(self, feature: Feature) -> bool {
        match feature {
            Feature::Schema => self.schema && self.schema_auto,
            Feature::Logprobs => self.logprobs && self.logprobs_auto,
        }
    }
}

/// What an endpoint has refused so far; one per client, shared by its clones.
#[derive(Debug, Default)]
pub(crate) struct Support {
    schema_refused: AtomicBool,
    logprobs_refused: AtomicBool,
}

impl Support {
    /// The parts a call with `params` sends: the schema when choosing labels, unless the
    /// endpoint says never or has refused it; logprobs likewise, or always or never as the
    /// endpoint says. OpenAI's reasoning models reject `logprobs`, so auto-detection leaves it
    /// off for them.
    pub(crate) fn extras(
        &self,
        endpoint: &Endpoint,
        params: &GenerationParams,
        reasoning_model: bool,
    ) -> Extras {
        let choosing = params.choices.is_some();
        let (schema, schema_auto) = match endpoint.structured_outputs {
            Some(fixed) => (choosing && fixed, false),
            None => (
                choosing && !self.schema_refused.load(Ordering::Relaxed),
                true,
            ),
        };
        let (logprobs, logprobs_auto) = match endpoint.logprobs {
            Some(fixed) => (fixed, false),
            None => {
                let refused = self.logprobs_refused.load(Ordering::Relaxed);
                (choosing && !reasoning_model && !refused, true)
            }
        };
        Extras {
            schema,
            logprobs,
            schema_auto,
            logprobs_auto,
        }
    }

    /// Remembers that the endpoint refused `feature`: later calls do not send it.
    pub(crate) fn refuse(&self, feature: Feature) {
        let flag = match feature {
            Feature::Schema => &self.schema_refused,
            Feature::Logprobs => &self.logprobs_refused,
        };
        flag.store(true, Ordering::Relaxed);
    }
}

/// The droppable part a failed call's error says the endpoint refuses: a 400 (or 422) whose
/// body names `response_format`, `json_schema` or structured outputs (the schema), or
/// `logprobs`; a bare "not supported" is taken to mean the schema, else logprobs.
pub(crate) fn refused(error: &CallError, extras: Extras) -> Option<Feature> {
    let CallError::Http {
        status: 400 | 422,
        body_excerpt,
    } = error
    else {
        return None;
    };
    let body = body_excerpt.to_lowercase();
    let names = |words: &[&str]| words.iter().any(|w| body.contains(w));
    let schema = names(&["response_format", "json_schema", "structured output"]);
    let logprobs = names(&["logprobs"]);
    let vague = !schema && !logprobs && names(&["not supported", "unsupported"]);
    [(Feature::Schema, schema), (Feature::Logprobs, logprobs)]
        .into_iter()
        .find(|&(feature, named)| (named || vague) && extras.may_drop(feature))
        .map(|(feature, _)| feature)
}

/// Adds the parts `extras` asks for to `request`.
// `max_tokens` is deprecated in OpenAI's schema but is what `build_request` sets for most models.
#[allow(deprecated)]
pub(crate) fn apply(
    request: &mut CreateChatCompletionRequest,
    choices: Option<&Choices>,
    extras: Extras,
) {
    if let (true, Some(choices)) = (extras.schema, choices) {
        request.response_format = Some(ResponseFormat::JsonSchema {
            json_schema: ResponseFormatJsonSchema {
                description: None,
                name: SCHEMA_NAME.to_owned(),
                schema: schema(&choices.labels),
                strict: Some(true),
            },
        });
        let longest = choices
            .labels
            .iter()
            .map(|l| crate::estimate_tokens(l))
            .max()
            .unwrap_or(0);
        let floor = longest.saturating_add(SCHEMA_TOKEN_SLACK);
        let limits = [&mut request.max_tokens, &mut request.max_completion_tokens];
        for limit in limits.into_iter().flatten() {
            *limit = (*limit).max(floor);
        }
    }
    if extras.logprobs {
        request.logprobs = Some(true);
    }
}

/// An object with one required string property, `answer`, that must be one of `labels`; no
/// other properties (strict mode requires saying so).
pub(crate) fn schema(labels: &[String]) -> Value {
    json!({
        "type": "object",
        "properties": { ANSWER_FIELD: { "type": "string", "enum": labels } },
        "required": [ANSWER_FIELD],
        "additionalProperties": false,
    })
}

/// What an answer says once read: the text to score, the choice, the token logprobs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reading {
    pub text: String,
    pub choice: Option<ChoiceRecord>,
    pub token_logprobs: Option<Vec<f32>>,
}

/// Reads a label out of `text` when `choices` is set: the schema's `answer` when it is a label
/// (`Schema` if the schema was sent), else that value or the whole text mapped onto the labels.
/// The text becomes the label; an unmapped answer keeps its text.
pub(crate) fn read(
    text: String,
    tokens: Option<&[ChatCompletionTokenLogprob]>,
    choices: Option<&Choices>,
    schema_sent: bool,
) -> Reading {
    let token_logprobs = tokens.map(|t| t.iter().map(|t| t.logprob).collect());
    let Some(choices) = choices else {
        return Reading {
            text,
            choice: None,
            token_logprobs,
        };
    };
    let (label, via, span) = match structured_answer(&text) {
        Some((value, span)) if schema_sent && choices.labels.contains(&value) => {
            (Some(value), ChoiceVia::Schema, span)
        }
        Some((value, span)) => {
            let (label, via) = domain::map_free_text(choices, &value);
            (label, via, span)
        }
        None => {
            let (label, via) = domain::map_free_text(choices, &text);
            (label, via, None)
        }
    };
    let confidence = match (&label, tokens) {
        (Some(_), Some(tokens)) => probability(tokens, &text, span),
        _ => None,
    };
    let choice = ChoiceRecord {
        label: label.clone(),
        via,
        confidence,
        probabilities: Vec::new(),
    };
    Reading {
        text: label.unwrap_or(text),
        choice: Some(choice),
        token_logprobs,
    }
}

/// The `answer` string of a JSON object answer, and where it stands in `text` when it is
/// written there as is (no escapes).
fn structured_answer(text: &str) -> Option<(String, Option<Range<usize>>)> {
    let value: Value = serde_json::from_str(text.trim()).ok()?;
    let answer = value.get(ANSWER_FIELD)?.as_str()?.to_owned();
    let key = text.find(&format!("\"{ANSWER_FIELD}\""))?;
    let quoted = format!("\"{answer}\"");
    let span = text[key + ANSWER_FIELD.len() + 2..]
        .find(&quoted)
        .map(|at| {
            let start = key + ANSWER_FIELD.len() + 2 + at + 1;
            start..start + answer.len()
        });
    Some((answer, span))
}

/// `exp` of the summed logprobs of the tokens that spell `span` of `text` (a structured
/// answer's label), or of all tokens when there is no span or the tokens do not spell `text`.
/// None when no token came back.
fn probability(
    tokens: &[ChatCompletionTokenLogprob],
    text: &str,
    span: Option<Range<usize>>,
) -> Option<f64> {
    if tokens.is_empty() {
        return None;
    }
    let all = || tokens.iter().map(|t| f64::from(t.logprob)).sum::<f64>();
    let spelled: String = tokens.iter().map(|t| t.token.as_str()).collect();
    let sum = match span {
        Some(span) if spelled == text => {
            let mut start = 0;
            let mut sum = None;
            for t in tokens {
                let end = start + t.token.len();
                if start < span.end && end > span.start {
                    *sum.get_or_insert(0.0) += f64::from(t.logprob);
                }
                start = end;
            }
            sum.unwrap_or_else(all)
        }
        _ => all(),
    };
    Some(sum.exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(xs: &[&str]) -> Choices {
        Choices {
            labels: xs.iter().map(|s| s.to_string()).collect(),
            normalize: false,
        }
    }

    fn token(text: &str, logprob: f32) -> ChatCompletionTokenLogprob {
        ChatCompletionTokenLogprob {
            token: text.into(),
            logprob,
            bytes: None,
            top_logprobs: Vec::new(),
        }
    }

    fn auto() -> Extras {
        Extras {
            schema: true,
            logprobs: true,
            schema_auto: true,
            logprobs_auto: true,
        }
    }

    #[test]
    fn refusals_are_read_from_400_bodies() {
        let http = |status, body: &str| CallError::Http {
            status,
            body_excerpt: body.into(),
        };
        let check = |e: CallError, extras: Extras, want: Option<Feature>| {
            assert_eq!(refused(&e, extras), want, "{e}");
        };
        let schema = Some(Feature::Schema);
        check(
            http(400, "response_format is not supported"),
            auto(),
            schema,
        );
        check(http(400, "Unknown field json_schema"), auto(), schema);
        check(http(422, "Structured outputs unavailable"), auto(), schema);
        check(http(400, "feature not supported"), auto(), schema);
        check(
            http(400, "logprobs are not supported"),
            auto(),
            Some(Feature::Logprobs),
        );
        let vague = http(400, "this is unsupported");
        check(
            vague.clone(),
            auto().without(Feature::Schema),
            Some(Feature::Logprobs),
        );
        check(http(400, "Invalid request"), auto(), None);
        check(http(500, "response_format broke us"), auto(), None);
        // Set by the endpoint, not detected: a refusal is the call's error.
        check(
            vague,
            Extras {
                schema_auto: false,
                logprobs_auto: false,
                ..auto()
            },
            None,
        );
    }

    #[test]
    fn schema_answers_count_only_the_label_tokens() {
        let c = labels(&["negative", "very positive"]);
        let text = r#"{"answer":"very positive"}"#;
        let tokens = [
            token(r#"{"answer":""#, -1.0),
            token("very", -0.5),
            token(" positive", -0.25),
            token(r#""}"#, -1.0),
        ];
        let r = read(text.into(), Some(&tokens), Some(&c), true);
        assert_eq!(r.text, "very positive");
        let choice = r.choice.unwrap();
        assert_eq!(choice.via, ChoiceVia::Schema);
        assert!((choice.confidence.unwrap() - (-0.75f64).exp()).abs() < 1e-9);
        assert_eq!(r.token_logprobs, Some(vec![-1.0, -0.5, -0.25, -1.0]));
        // Tokens that do not spell the text: all of them count.
        let odd = [token("x", -1.0), token("y", -2.0)];
        let r = read(text.into(), Some(&odd), Some(&c), true);
        assert!((r.choice.unwrap().confidence.unwrap() - (-3.0f64).exp()).abs() < 1e-9);
    }

    #[test]
    fn free_text_and_unknown_labels_are_mapped() {
        let c = labels(&["negative", "positive"]);
        let check = |text: &str, schema_sent, label: Option<&str>, via, shown: &str| {
            let r = read(text.into(), None, Some(&c), schema_sent);
            let choice = r.choice.unwrap();
            assert_eq!(
                (choice.label.as_deref(), choice.via),
                (label, via),
                "{text}"
            );
            assert_eq!(r.text, shown);
            assert_eq!(choice.confidence, None);
        };
        check(
            r#"{"answer":"Positive"}"#,
            true,
            Some("positive"),
            ChoiceVia::Exact,
            "positive",
        );
        check(
            r#"{"answer":"positive"}"#,
            false,
            Some("positive"),
            ChoiceVia::Exact,
            "positive",
        );
        check(
            "Negative, clearly.",
            false,
            Some("negative"),
            ChoiceVia::FirstWord,
            "negative",
        );
        check(
            "it is positive",
            true,
            Some("positive"),
            ChoiceVia::Contains,
            "positive",
        );
        check(
            r#"{"answer":"meh"}"#,
            true,
            None,
            ChoiceVia::Unmapped,
            r#"{"answer":"meh"}"#,
        );
        let free = read(
            "no choices here".into(),
            Some(&[token("no", -0.1)]),
            None,
            false,
        );
        assert_eq!((free.choice, free.token_logprobs), (None, Some(vec![-0.1])));
    }

    #[test]
    #[allow(deprecated)]
    fn the_schema_is_a_strict_enum_and_leaves_room_for_its_framing() {
        let mut request = CreateChatCompletionRequest {
            max_tokens: Some(2),
            ..Default::default()
        };
        apply(&mut request, Some(&labels(&["a", "b"])), auto());
        let v = serde_json::to_value(&request).unwrap();
        assert_eq!(v["response_format"]["type"], "json_schema");
        let js = &v["response_format"]["json_schema"];
        assert_eq!(js["strict"], true);
        assert_eq!(
            js["schema"]["properties"]["answer"]["enum"],
            json!(["a", "b"])
        );
        assert_eq!(js["schema"]["required"], json!(["answer"]));
        assert_eq!(v["logprobs"], true);
        assert_eq!(v["max_tokens"], 1 + SCHEMA_TOKEN_SLACK);
    }
}
