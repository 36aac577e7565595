//! `LocalModel::generate_each` on the tiny llama: a prompt longer than the model's context fails
//! alone, with its token count and the context length, and the rest of its batch is answered as
//! if it had not been there; the batched `generate` fails the whole call, naming the prompt.

use domain::{GenerationParams, Message};

fn params() -> GenerationParams {
    GenerationParams {
        max_tokens: 6,
        ..GenerationParams::default()
    }
}

/// The text and token counts of an answer (its seconds differ from run to run).
fn answer(g: &llm::Generation) -> (String, u32, u32) {
    (g.text.clone(), g.prompt_tokens, g.completion_tokens)
}

#[test]
fn an_over_long_prompt_fails_alone_and_the_rest_of_its_batch_is_answered() {
    let mut m = llm::testing::tiny_local_model(5).unwrap();
    m.set_max_batch(4);
    let context = m.model().config().context_length();
    assert_eq!(context, 512);
    let long = vec![Message::user("forty thousand words ".repeat(100))];
    let prompts = vec![
        vec![Message::user("hello")],
        long.clone(),
        vec![Message::system("S"), Message::user("12")],
        vec![Message::user("what now?")],
    ];
    let tokens = m.encode_prompt(&long).unwrap().len();
    assert!(tokens > context, "{tokens}");

    let each = m.generate_each(&prompts, &params());
    assert_eq!(each.len(), 4);
    let err = each[1].as_ref().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the prompt has {tokens} tokens; with 6 new tokens it exceeds the model's context of 512"
        )
    );
    let others = [0, 2, 3].map(|i| prompts[i].clone());
    let without = m.generate(&others, &params()).unwrap();
    let answered: Vec<_> = [0, 2, 3]
        .iter()
        .map(|&i| answer(each[i].as_ref().unwrap()))
        .collect();
    assert_eq!(answered, without.iter().map(answer).collect::<Vec<_>>());
    assert!(answered.iter().all(|(_, _, completion)| *completion > 0));

    let whole = m.generate(&prompts, &params()).unwrap_err();
    assert!(
        whole
            .to_string()
            .starts_with(&format!("prompt 1: the prompt has {tokens} tokens")),
        "{whole}"
    );
}
