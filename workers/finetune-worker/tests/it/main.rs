//! End-to-end tests of the `finetune-worker` binary: the protocol, files and exit codes on a
//! tiny GGUF written by the test (`protocol`), resuming after SIGKILL from the step checkpoints
//! of `save_steps` (`checkpoints`), several jobs served by one process (`serve`), and, with `ORCHESTRATOR_SLOW_TESTS=1`, a short
//! fine-tune of the real SmolLM2-135M-Instruct against its own zero-shot answers (`slow`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod checkpoints;
mod protocol;
mod serve;
mod slow;
