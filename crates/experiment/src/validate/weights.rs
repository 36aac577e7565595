//! The local models a spec names: every `type: local` provider's `model` and every fine-tune's
//! `base_model` must be a known name, an `hf:` id, or a path (relative to the spec's folder, like
//! dataset paths) that holds a model the local engine reads. A known model that is not
//! downloaded yet is fine: `run` fetches it. Nothing is loaded here; `models` reads only headers.

use std::path::Path;

use domain::ModelSource;

use crate::decode::{Ctx, Spanned, suggest};

/// Where `model` (written at `model.pos`, where a model of `kind` belongs) is, or None after
/// reporting why it is nowhere, or why a known model of another kind does not fit there.
pub(super) fn source(
    cx: &mut Ctx<'_>,
    model: &Spanned<String>,
    spec_dir: &Path,
    kind: models::ModelKind,
) -> Option<ModelSource> {
    match models::locate(&model.value, spec_dir) {
        Ok(models::Located::Path(path)) => Some(ModelSource::Path(path)),
        Ok(models::Located::Cached { .. } | models::Located::NotCached { .. }) => {
            let known = models::known().iter().find(|m| m.name == model.value);
            if let Some(k) = known.filter(|k| k.kind != kind) {
                cx.error(
                    model.pos,
                    format!(
                        "`{}` is {}; here the spec needs {}",
                        k.name,
                        k.kind.describe(),
                        kind.describe()
                    ),
                );
                return None;
            }
            Some(ModelSource::Named(model.value.clone()))
        }
        Err(models::Error::UnknownModel { name, known }) => {
            let names = models::known().iter().map(|m| m.name);
            let message = match suggest(&name, names) {
                Some(s) => format!("unknown model `{name}` (did you mean `{s}`?)"),
                None => format!(
                    "unknown model `{name}`: expected a known model ({known}), \
                     `hf:owner/repo[:file]`, or a path to a .gguf/.safetensors model"
                ),
            };
            cx.error(model.pos, message);
            None
        }
        Err(models::Error::NotFound { path }) => {
            cx.error(
                model.pos,
                format!("model path {} does not exist", path.display()),
            );
            None
        }
        Err(err) => {
            cx.error(model.pos, err.to_string());
            None
        }
    }
}
