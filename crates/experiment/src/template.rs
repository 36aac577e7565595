//! Prompt templates: text with `{{ name }}` placeholders filled from a dataset row.
//!
//! `name` is any field of the row, or `input` for the row's input field. There is no escaping,
//! no filters and no logic: a template is a sentence with holes. Checking that every name exists
//! (and that none leaks the target) happens once in `validate`; rendering here never fails.

use crate::plan::Row;

/// One `{{ name }}` in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placeholder<'a> {
    /// The name, trimmed.
    pub name: &'a str,
    /// The placeholder as written, braces included (`{{ text }}`).
    pub raw: &'a str,
    /// Character offset of the opening braces in the template.
    pub char_offset: usize,
}

/// A template that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateError {
    pub char_offset: usize,
    pub message: String,
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The placeholders of `template`, in order, or every syntax error in it.
pub(crate) fn placeholders(template: &str) -> Result<Vec<Placeholder<'_>>, Vec<TemplateError>> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let mut rest = 0;
    while let Some(open) = template[rest..].find("{{").map(|i| rest + i) {
        let char_offset = template[..open].chars().count();
        let Some(close) = template[open + 2..].find("}}").map(|i| open + 2 + i) else {
            errors.push(TemplateError {
                char_offset,
                message: "`{{` is never closed with `}}`".into(),
            });
            break;
        };
        let raw = &template[open..close + 2];
        let name = template[open + 2..close].trim();
        if is_name(name) {
            found.push(Placeholder {
                name,
                raw,
                char_offset,
            });
        } else {
            errors.push(TemplateError {
                char_offset,
                message: format!(
                    "`{raw}` is not a placeholder: write `{{{{field}}}}` with a dataset field name"
                ),
            });
        }
        rest = close + 2;
    }
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(errors)
    }
}

/// The value `name` stands for in `row`: a field of that name, else the input for `input`.
pub(crate) fn lookup<'r>(row: &'r Row, name: &str) -> Option<&'r str> {
    match row.fields.get(name) {
        Some(v) => Some(v),
        None if name == "input" => Some(&row.input),
        None => None,
    }
}

/// Fills `template` from `row`, and drops the trailing newlines that a YAML `|` block leaves.
/// A name the row lacks renders as nothing; a template that does not parse renders as written
/// (neither happens to a validated plan).
pub(crate) fn render(template: &str, row: &Row) -> String {
    let text = template.trim_end_matches(['\n', '\r']);
    let Ok(holes) = placeholders(text) else {
        return text.to_owned();
    };
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    for hole in holes {
        // Holes come in order, so each is found in what is left after the previous one.
        if let Some(at) = rest.find(hole.raw) {
            out.push_str(&rest[..at]);
            out.push_str(lookup(row, hole.name).unwrap_or(""));
            rest = &rest[at + hole.raw.len()..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn row() -> Row {
        let fields: BTreeMap<String, String> = [("text", "Great film"), ("label", "positive")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Row {
            id: "1".into(),
            fields,
            input: "Great film".into(),
            target: "positive".into(),
        }
    }

    #[test]
    fn fills_fields_and_input() {
        let r = row();
        assert_eq!(
            render("Review: {{text}} / {{ input }}|\n\n", &r),
            "Review: Great film / Great film|"
        );
        assert_eq!(render("{{missing}}!", &r), "!");
        assert_eq!(render("no holes {x}", &r), "no holes {x}");
    }

    #[test]
    fn reports_bad_placeholders() {
        let errs = placeholders("é {{ }} and {{a b}} and {{ok}} {{open").unwrap_err();
        let offsets: Vec<usize> = errs.iter().map(|e| e.char_offset).collect();
        assert_eq!(offsets, vec![2, 12, 31]);
        let names: Vec<&str> = placeholders("{{a}}{{ b.c }}")
            .unwrap()
            .iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, vec!["a", "b.c"]);
    }
}
