//! `providers:` entries: `type: openai` (any OpenAI-compatible endpoint) and `type: local`
//! (Candle in-process), each with its own keys and defaults. Unique ids are checked in
//! `validate`, not here.

use domain::{Device, ModelSource, Pricing};

use super::{Defaults, RawProvider, device, id, non_negative};
use crate::decode::{Ctx, Fields, fields, suggest};
use crate::plan::{LocalProviderSpec, OpenAiProviderSpec, ProviderSpec};
use crate::yaml::Node;

/// Where OpenAI-compatible requests go when neither the spec nor `$OPENAI_BASE_URL` says.
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

const OPENAI_ONLY: &[&str] = &[
    "base_url",
    "api_key_env",
    "max_concurrency",
    "requests_per_minute",
    "pricing",
    "timeout_s",
    "max_retries",
    "batch_api",
    "structured_outputs",
    "logprobs",
];
const LOCAL_ONLY: &[&str] = &["device", "cost_per_hour", "batch_size"];
const PROVIDER: &[&str] = &[
    "id",
    "type",
    "model",
    "base_url",
    "api_key_env",
    "max_concurrency",
    "requests_per_minute",
    "pricing",
    "timeout_s",
    "max_retries",
    "batch_api",
    "structured_outputs",
    "logprobs",
    "device",
    "cost_per_hour",
    "batch_size",
];
const PRICING: &[&str] = &["input_per_mtok", "output_per_mtok"];

pub(super) fn provider(cx: &mut Ctx<'_>, node: &Node, defaults: &Defaults) -> RawProvider {
    let Some(f) = fields(cx, node, "a provider", PROVIDER, &[]) else {
        return RawProvider {
            id: None,
            model: None,
            spec: None,
        };
    };
    let model = f.req_string(cx, "model");
    let id = id(cx, &f, false).or_else(|| {
        let m = model.clone()?;
        // Model names often hold `/` and `:` (`org/model`, `model:tag`); a provider's id names
        // no folder, so those may stay.
        if !super::is_safe_id(&m.value, &['/', ':']) {
            cx.error(
                m.pos,
                format!(
                    "model `{}` cannot name arms: give this provider an `id`",
                    m.value
                ),
            );
        }
        Some(m)
    });
    let kind = f.req_string(cx, "type");
    let kind = match kind.as_ref().map(|k| k.value.as_str()) {
        Some("openai") => Some("openai"),
        Some("local") => Some("local"),
        Some(other) => {
            let hint = match suggest(other, ["openai", "local"]) {
                Some(s) => format!(", did you mean `{s}`?"),
                None => ": expected `openai` or `local`".to_owned(),
            };
            if let Some(k) = &kind {
                cx.error(k.pos, format!("unknown provider type `{other}`{hint}"));
            }
            None
        }
        None => None,
    };
    // Keys of the other provider type are known names in the wrong place: say so plainly.
    if let Some(kind) = kind {
        let (foreign, owner) = if kind == "openai" {
            (LOCAL_ONLY, "local")
        } else {
            (OPENAI_ONLY, "openai")
        };
        for (name, key) in f.names() {
            if foreign.contains(&name) {
                cx.error(
                    key.pos,
                    format!("`{name}` applies to `type: {owner}` providers, not `type: {kind}`"),
                );
            }
        }
    }
    let spec = match kind {
        Some("openai") => openai(cx, &f, defaults).and_then(|mut p| {
            p.id = id.as_ref()?.value.clone();
            p.model = model.as_ref()?.value.clone();
            Some(ProviderSpec::OpenAi(p))
        }),
        Some(_) => {
            let device = if f.get("device").is_some() {
                device(cx, &f)
            } else {
                Some(Device::Cpu)
            };
            let cost_per_hour = f
                .number(cx, "cost_per_hour", non_negative, "zero or more")
                .map_or(0.05, |s| s.value);
            let batch_size = f.usize_in(cx, "batch_size", 1, 1024).map_or(8, |s| s.value);
            match (&id, &model, device) {
                (Some(id), Some(model), Some(device)) => {
                    Some(ProviderSpec::Local(LocalProviderSpec {
                        id: id.value.clone(),
                        model: model.value.clone(),
                        // `validate` resolves paths against the spec's folder.
                        weights: ModelSource::Named(model.value.clone()),
                        device,
                        cost_per_hour,
                        batch_size,
                    }))
                }
                _ => None,
            }
        }
        None => None,
    };
    RawProvider { id, model, spec }
}

/// Whether a URL carries `user[:password]@` before its host.
fn has_credentials(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@')
}

/// Whether a would-be variable name is more likely a pasted key: a known key prefix, or a long
/// mix of lower case and digits, which variable names (by convention upper case) never are.
fn looks_like_a_key(name: &str) -> bool {
    const PREFIXES: [&str; 5] = ["gsk_", "sk_", "hf_", "xai_", "pk_"];
    let lower = name.chars().filter(char::is_ascii_lowercase).count();
    let digits = name.chars().filter(char::is_ascii_digit).count();
    (name.len() >= 20 && PREFIXES.iter().any(|p| name.starts_with(p)))
        || (name.len() >= 24 && lower >= 4 && digits >= 4)
}

fn openai(cx: &mut Ctx<'_>, f: &Fields<'_>, defaults: &Defaults) -> Option<OpenAiProviderSpec> {
    let mut ok = true;
    let base_url = match f.string(cx, "base_url") {
        Some(u) if has_credentials(&u.value) => {
            // Never echo the URL: the credentials are in it.
            cx.error(
                u.pos,
                "`base_url` holds credentials (`user:password@`): they would be stored with \
                 the run; put the key in the environment variable `api_key_env` names",
            );
            ok = false;
            String::new()
        }
        Some(u) => {
            if !(u.value.starts_with("http://") || u.value.starts_with("https://")) {
                cx.error(
                    u.pos,
                    format!(
                        "`base_url` must start with `http://` or `https://`, found `{}`",
                        u.value
                    ),
                );
                ok = false;
            }
            u.value
        }
        None => defaults
            .openai_base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_OPENAI_BASE_URL.to_owned()),
    };
    let api_key_env = match f.string(cx, "api_key_env") {
        Some(v) => {
            let mut chars = v.value.chars();
            let valid = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid || looks_like_a_key(&v.value) {
                // Never echo the value: people paste the key itself here.
                cx.error(
                    v.pos,
                    "`api_key_env` takes the name of an environment variable (such as \
                     `OPENAI_API_KEY`), not the key itself",
                );
                ok = false;
            }
            v.value
        }
        None => "OPENAI_API_KEY".to_owned(),
    };
    let pricing = match f.get("pricing") {
        Some(n) => match fields(cx, n, "`pricing`", PRICING, &[]) {
            Some(p) => {
                let input = p
                    .required(cx, "input_per_mtok")
                    .and_then(|_| p.number(cx, "input_per_mtok", non_negative, "zero or more"));
                let output = p
                    .required(cx, "output_per_mtok")
                    .and_then(|_| p.number(cx, "output_per_mtok", non_negative, "zero or more"));
                match (input, output) {
                    (Some(i), Some(o)) => Some(Pricing {
                        input_per_mtok: i.value,
                        output_per_mtok: o.value,
                    }),
                    _ => {
                        ok = false;
                        None
                    }
                }
            }
            None => {
                ok = false;
                None
            }
        },
        None => None,
    };
    let spec = OpenAiProviderSpec {
        id: String::new(),
        model: String::new(),
        base_url: base_url.trim_end_matches('/').to_owned(),
        api_key_env,
        max_concurrency: f
            .usize_in(cx, "max_concurrency", 1, 4096)
            .map_or(8, |s| s.value),
        requests_per_minute: f.u32(cx, "requests_per_minute", 1).map(|s| s.value),
        pricing,
        timeout_secs: f
            .number(
                cx,
                "timeout_s",
                |x| x > 0.0 && x <= 3600.0,
                "more than 0 and at most 3600",
            )
            .map_or(60.0, |s| s.value),
        max_retries: f
            .usize_in(cx, "max_retries", 0, 100)
            .map_or(5, |s| s.value as u32),
        batch_api: f.bool(cx, "batch_api").is_some_and(|s| s.value),
        structured_outputs: f.bool(cx, "structured_outputs").map(|s| s.value),
        logprobs: f.bool(cx, "logprobs").map(|s| s.value),
    };
    ok.then_some(spec)
}
