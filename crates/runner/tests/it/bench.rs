//! `bench_serving` on the tiny llama: a fine-tune arm is measured with its adapter (a real
//! PEFT folder, random LoRA weights) at each batch size, and refused without one.

use runner::{BenchError, BenchRequest, bench_serving};

use crate::support::Bench;

fn spec(model: &std::path::Path) -> String {
    format!(
        "name: bench\n\
         dataset: {{ path: data.jsonl, input: text, target: label, split: {{ eval: 6, train: 10 }} }}\n\
         providers:\n  - {{ id: tiny, type: local, model: {m}, batch_size: 4 }}\n\
         prompts:\n  - id: plain\n    template: \"Q: {{{{text}}}}\"\n\
         generation: {{ max_tokens: 3, temperature: 0 }}\n\
         finetunes:\n  - id: lora\n    base_model: {m}\n    prompt: plain\n",
        m = model.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fine_tune_is_measured_with_its_adapter_at_each_batch_size() {
    let b = Bench::new().await;
    b.dataset(16);
    let model = b.path("tiny.gguf");
    llm::testing::write_tiny_gguf(&model, 5).unwrap();
    let plan = b.plan(&spec(&model));
    let mut llama = llm::testing::tiny_llama(5).unwrap();
    let cfg = llm::LoraConfig::new(4, 8.0, 0.0, &[llm::LoraTarget::Q, llm::LoraTarget::V]).unwrap();
    llama.add_lora(&cfg, 1).unwrap();
    let adapter = b.path("adapter");
    finetune::adapter::save_adapter(&adapter, &llama, "tiny").unwrap();

    let request = BenchRequest {
        sizes: vec![1, 3],
        items: 4,
    };
    let (tx, _rx) = tokio::sync::mpsc::channel(8);
    let rows = bench_serving(&plan, "lora", Some(&adapter), &request, tx)
        .await
        .unwrap();
    let sizes: Vec<u32> = rows.iter().map(|r| r.batch_size).collect();
    assert_eq!(sizes, [1, 3]);
    for r in &rows {
        assert_eq!((r.arm.as_str(), r.items), ("lora", 4));
        assert!(
            r.items_per_second > 0.0 && r.latency_p95_ms >= r.latency_p50_ms,
            "{r:?}"
        );
    }

    let (tx, _rx) = tokio::sync::mpsc::channel(8);
    let missing = bench_serving(&plan, "lora", None, &request, tx).await;
    assert!(
        matches!(&missing, Err(BenchError::BadArm(m)) if m.contains("no trained adapter")),
        "{missing:?}"
    );
    let (tx, _rx) = tokio::sync::mpsc::channel(8);
    let broken = bench_serving(&plan, "lora", Some(&b.path("nowhere")), &request, tx).await;
    assert!(
        matches!(&broken, Err(BenchError::Model(m)) if m.contains("adapter")),
        "{broken:?}"
    );
}

/// Prompts past the tiny model's 512-token context (every other row) fail, and a timing that skipped
/// them would flatter the arm: the benchmark refuses instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_that_cannot_be_answered_fails_the_benchmark() {
    let b = Bench::new().await;
    let mut rows = String::new();
    for i in 0..16 {
        let text = if i % 2 == 1 {
            "forty thousand words ".repeat(100)
        } else {
            format!("<q{i}> ?")
        };
        let row = serde_json::json!({ "id": format!("item-{i}"), "text": text, "label": "yes" });
        rows.push_str(&format!("{row}\n"));
    }
    std::fs::write(b.path("data.jsonl"), rows).unwrap();
    let model = b.path("tiny.gguf");
    llm::testing::write_tiny_gguf(&model, 5).unwrap();
    let plan = b.plan(&spec(&model));
    let request = BenchRequest {
        sizes: vec![2],
        items: 6,
    };
    let (tx, _rx) = tokio::sync::mpsc::channel(8);
    let out = bench_serving(&plan, "plain@tiny", None, &request, tx).await;
    assert!(
        matches!(&out, Err(BenchError::Model(m)) if m.contains("could not be answered")),
        "{out:?}"
    );
}
