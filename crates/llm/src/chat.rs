//! The model's chat template, recognised rather than interpreted: running arbitrary Jinja is out
//! of scope, so the template text is matched to a known family — ChatML (`<|im_start|>`, used by
//! SmolLM2 and Qwen2) or Llama 3 (`<|start_header_id|>`) — and formatted by hand, including the
//! default system prompt a ChatML template injects when the conversation has none (SmolLM2:
//! "You are a helpful AI assistant named SmolLM, trained by Hugging Face"). Unknown templates are
//! an error, never a silent guess.
//!
//! Not here: tokenisation (the formatted text contains special tokens as text, which the
//! tokenizer keeps whole).

use domain::{Message, Role};

use crate::{Error, LocalModel};

/// Llama 3.1's default `date_string` (its template uses it when none is passed).
const LLAMA31_DATE: &str = "26 Jul 2024";

/// A chat template family this crate can format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\ncontent<|im_end|>\n` per message; `default_system` is prepended when
    /// the first message is not a system message.
    ChatMl { default_system: Option<String> },
    /// `<|begin_of_text|>` then `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`;
    /// with `knowledge_preamble` (Llama 3.1+), the system message starts with the "Cutting
    /// Knowledge Date" lines, and one is added when absent.
    Llama3 { knowledge_preamble: bool },
}

impl ChatTemplate {
    /// Recognises the family of a Jinja chat template.
    pub fn detect(template: &str) -> Result<Self, Error> {
        if template.contains("<|im_start|>") {
            return Ok(ChatTemplate::ChatMl {
                default_system: chatml_default_system(template),
            });
        }
        if template.contains("<|start_header_id|>") {
            return Ok(ChatTemplate::Llama3 {
                knowledge_preamble: template.contains("Cutting Knowledge Date"),
            });
        }
        Err(Error::UnknownChatTemplate {
            excerpt: template.chars().take(120).collect(),
        })
    }

    /// The text of `messages`; with `add_generation_prompt`, followed by the assistant header
    /// the model's answer continues.
    pub fn format(&self, messages: &[Message], add_generation_prompt: bool) -> String {
        let mut out = String::new();
        match self {
            ChatTemplate::ChatMl { default_system } => {
                if let Some(sys) = default_system
                    && messages.first().is_none_or(|m| m.role != Role::System)
                {
                    chatml_turn(&mut out, "system", sys);
                }
                for m in messages {
                    chatml_turn(&mut out, m.role.as_str(), &m.content);
                }
                if add_generation_prompt {
                    out.push_str("<|im_start|>assistant\n");
                }
            }
            ChatTemplate::Llama3 { knowledge_preamble } => {
                out.push_str("<|begin_of_text|>");
                let (system, rest) = match messages.split_first() {
                    Some((first, rest)) if first.role == Role::System => {
                        (Some(first.content.trim()), rest)
                    }
                    _ => (None, messages),
                };
                if *knowledge_preamble {
                    let sys = format!(
                        "Cutting Knowledge Date: December 2023\nToday Date: {LLAMA31_DATE}\n\n{}",
                        system.unwrap_or("")
                    );
                    llama3_turn(&mut out, "system", &sys);
                } else if let Some(sys) = system {
                    llama3_turn(&mut out, "system", sys);
                }
                for m in rest {
                    llama3_turn(&mut out, m.role.as_str(), m.content.trim());
                }
                if add_generation_prompt {
                    out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
                }
            }
        }
        out
    }

    /// The token that ends an assistant turn (`<|im_end|>`, `<|eot_id|>`): generation stops at
    /// it and training appends it to every answer.
    pub fn end_of_turn(&self) -> &'static str {
        match self {
            ChatTemplate::ChatMl { .. } => "<|im_end|>",
            ChatTemplate::Llama3 { .. } => "<|eot_id|>",
        }
    }
}

fn chatml_turn(out: &mut String, role: &str, content: &str) {
    out.push_str("<|im_start|>");
    out.push_str(role);
    out.push('\n');
    out.push_str(content);
    out.push_str("<|im_end|>\n");
}

fn llama3_turn(out: &mut String, role: &str, content: &str) {
    out.push_str("<|start_header_id|>");
    out.push_str(role);
    out.push_str("<|end_header_id|>\n\n");
    out.push_str(content);
    out.push_str("<|eot_id|>");
}

/// The literal system prompt a ChatML template writes itself (SmolLM2's, Qwen2's), if any: the
/// text between `<|im_start|>system` + newline and `<|im_end|>` when it is a plain string
/// literal, not an expression over the messages.
fn chatml_default_system(template: &str) -> Option<String> {
    let marker = "<|im_start|>system";
    let mut rest = template;
    while let Some(i) = rest.find(marker) {
        rest = &rest[i + marker.len()..];
        // The newline is either a real one or a Jinja escape.
        let body = rest.strip_prefix('\n').or_else(|| rest.strip_prefix("\\n"));
        let Some(body) = body else { continue };
        let Some(end) = body.find("<|im_end|>") else {
            continue;
        };
        let text = &body[..end];
        if !text.is_empty() && !text.contains(['\'', '"', '{', '}']) {
            return Some(text.replace("\\n", "\n"));
        }
    }
    None
}

/// Chat formatting on a loaded model: its template, then its tokenizer.
impl LocalModel {
    /// `messages` in the model's chat template.
    pub fn format_chat(&self, messages: &[Message], add_generation_prompt: bool) -> String {
        self.chat.format(messages, add_generation_prompt)
    }

    /// Token ids of the prompt for `messages`, ending with the assistant header.
    pub fn encode_prompt(&self, messages: &[Message]) -> Result<Vec<u32>, Error> {
        self.tokenizer.encode(&self.format_chat(messages, true))
    }

    /// A training example: the prompt's ids (chat-formatted `messages` plus the assistant
    /// header) and the answer's ids (the answer then the end-of-turn token). The loss belongs on
    /// the answer ids only.
    pub fn format_example(
        &self,
        messages: &[Message],
        answer: &str,
    ) -> Result<(Vec<u32>, Vec<u32>), Error> {
        let prompt = self.encode_prompt(messages)?;
        let mut ans = self.tokenizer.encode(answer)?;
        match self.tokenizer.token_id(self.chat.end_of_turn()) {
            Some(eot) => ans.push(eot),
            None => ans.extend(self.tokenizer.encode(self.chat.end_of_turn())?),
        }
        Ok((prompt, ans))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// SmolLM2-135M-Instruct's template, as its GGUF stores it.
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn smollm2_injects_its_default_system_prompt() {
        let t = ChatTemplate::detect(SMOLLM2).unwrap();
        let text = t.format(&[Message::user("Hi")], true);
        assert_eq!(
            text,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let text = t.format(&[Message::system("Be brief."), Message::user("Hi")], false);
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        );
    }

    #[test]
    fn chatml_without_literal_system_has_no_default() {
        let t = ChatTemplate::detect(
            "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}{% endfor %}",
        )
        .unwrap();
        assert_eq!(
            t,
            ChatTemplate::ChatMl {
                default_system: None
            }
        );
    }

    #[test]
    fn llama3_format() {
        let t = ChatTemplate::detect("{{ bos_token }}<|start_header_id|>...").unwrap();
        let text = t.format(&[Message::system("S"), Message::user(" Q ")], true);
        assert_eq!(
            text,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn unknown_template_is_an_error() {
        assert!(matches!(
            ChatTemplate::detect("[INST] {{ message }} [/INST]"),
            Err(Error::UnknownChatTemplate { .. })
        ));
    }
}
