//! Our request in `async-openai`'s types: messages, the token limit in the field the model
//! reads, sampling settings, and the optional parts (structured outputs, logprobs) that
//! `choices.rs` decides. It builds requests only; sending them is `client.rs`.

use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    CreateChatCompletionRequest, StopConfiguration,
};
use domain::{GenerationParams, Message, Role};

use crate::choices::{self, Extras};

/// The answer-token limit the request sets, in whichever field `build_request` used.
#[allow(deprecated)]
pub(crate) fn requested_max_tokens(request: &CreateChatCompletionRequest) -> Option<u32> {
    request.max_completion_tokens.or(request.max_tokens)
}

/// OpenAI's reasoning models (o1, o3, o4, gpt-5) reject `max_tokens` and any temperature but
/// the default; they take `max_completion_tokens` instead.
pub(crate) fn is_reasoning_model(model: &str) -> bool {
    let lower = model.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    ["o1", "o3", "o4", "gpt-5"]
        .iter()
        .any(|p| name == *p || name.starts_with(&format!("{p}-")))
}

/// Our request in `async-openai`'s types, with the optional parts `extras` asks for.
// `max_tokens` and `seed` are deprecated in OpenAI's schema, but they are what most
// OpenAI-compatible servers (vLLM, Groq, Together, llama.cpp) read.
#[allow(deprecated)]
pub(crate) fn build_request(
    model: &str,
    messages: &[Message],
    params: &GenerationParams,
    reasoning_model: bool,
    extras: Extras,
) -> CreateChatCompletionRequest {
    let messages = messages
        .iter()
        .map(|m| match m.role {
            Role::System => ChatCompletionRequestMessage::System(
                ChatCompletionRequestSystemMessage::from(m.content.as_str()),
            ),
            Role::User => ChatCompletionRequestMessage::User(
                ChatCompletionRequestUserMessage::from(m.content.as_str()),
            ),
            Role::Assistant => ChatCompletionRequestMessage::Assistant(
                ChatCompletionRequestAssistantMessage::from(m.content.as_str()),
            ),
        })
        .collect();
    let mut request = CreateChatCompletionRequest {
        model: model.to_owned(),
        messages,
        ..Default::default()
    };
    if reasoning_model {
        request.max_completion_tokens = Some(params.max_tokens);
    } else {
        request.max_tokens = Some(params.max_tokens);
        request.temperature = Some(params.temperature);
        request.top_p = params.top_p;
    }
    if !params.stop.is_empty() {
        request.stop = Some(StopConfiguration::StringArray(params.stop.clone()));
    }
    request.seed = params.seed.and_then(|s| i64::try_from(s).ok());
    choices::apply(&mut request, params.choices.as_ref(), extras);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_models_are_recognised() {
        assert!(is_reasoning_model("o4-mini"));
        assert!(is_reasoning_model("o3"));
        assert!(is_reasoning_model("openai/gpt-5-mini"));
        assert!(!is_reasoning_model("gpt-4o-mini"));
        assert!(!is_reasoning_model("olmo-7b"));
    }

    #[test]
    fn request_uses_the_right_token_field() {
        let msgs = [Message::system("s"), Message::user("u")];
        let params = GenerationParams {
            stop: vec!["\n".into()],
            seed: Some(7),
            ..GenerationParams::default()
        };
        let plain = serde_json::to_value(build_request(
            "gpt-4o-mini",
            &msgs,
            &params,
            false,
            Extras::default(),
        ))
        .unwrap();
        assert_eq!(plain["max_tokens"], 64);
        assert_eq!(plain["temperature"], 0.0);
        assert_eq!(plain["stop"], serde_json::json!(["\n"]));
        assert_eq!(plain["seed"], 7);
        assert_eq!(plain["messages"][0]["role"], "system");
        assert_eq!(plain["messages"][1]["content"], "u");
        let reasoning = serde_json::to_value(build_request(
            "o4-mini",
            &msgs,
            &params,
            true,
            Extras::default(),
        ))
        .unwrap();
        assert_eq!(reasoning["max_completion_tokens"], 64);
        assert!(reasoning.get("max_tokens").is_none());
        assert!(reasoning.get("temperature").is_none());
    }
}
