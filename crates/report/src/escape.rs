//! Text we did not write (answers and error bodies from servers, ids and fields from datasets)
//! made safe for where it goes: a terminal, a Markdown document, or a CSV file that a spreadsheet
//! opens. One function, [`escape`]; the [`Sink`] says where.
//!
//! For every sink, control characters (C0, DEL, C1) and the invisible characters that reorder or
//! hide text (bidi embeddings, overrides, isolates and marks, zero-width space, line and
//! paragraph separators) are shown escaped, as `\u{1b}` (`\n`, `\r`, `\t` for those three), so an
//! answer can neither clear the screen, set the window title nor make `abc` display as `cba`.
//! Each sink keeps the layout characters that it owns. JSON output is not escaped here: serde
//! escapes control characters itself, and JSON is data that must read back exactly.

use std::borrow::Cow;
use std::fmt::Write;

/// Where a piece of text is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// One line on a terminal (a table cell, a `failed:` line): line breaks are shown as `\n`.
    Line,
    /// Terminal text with line breaks of its own (a whole report): `\n` and `\t` are kept.
    Text,
    /// A Markdown table cell or sentence: `\` and `|` are escaped with `\`, a `<` that could
    /// open an HTML tag (`<script>`, `</a>`, `<!--`) becomes `&lt;`, line breaks become `<br>`,
    /// and the text is trimmed.
    Markdown,
    /// A CSV cell (the writer quotes it): line breaks and tabs are kept, and a cell that a
    /// spreadsheet would run as a formula (starting with `=`, `+`, `-` or `@` and not a number)
    /// gets a leading `'`.
    Csv,
}

/// `text` made safe for `sink`; borrowed when nothing needed changing.
pub fn escape(text: &str, sink: Sink) -> Cow<'_, str> {
    let text = match sink {
        Sink::Markdown => text.trim(),
        _ => text,
    };
    let formula = sink == Sink::Csv && is_formula(text);
    let needs_work = formula
        || text
            .char_indices()
            .any(|(i, c)| needs_escape(c, sink) || markdown_special(text, i, c, sink));
    if !needs_work {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    if formula {
        out.push('\'');
    }
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if sink == Sink::Markdown && c == '\r' && chars.peek().is_some_and(|&(_, n)| n == '\n') {
            continue;
        }
        if markdown_special(text, i, c, sink) {
            match c {
                '\n' => out.push_str("<br>"),
                '<' => out.push_str("&lt;"),
                _ => {
                    out.push('\\');
                    out.push(c);
                }
            }
        } else if needs_escape(c, sink) {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                _ => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Control characters, and the invisible ones that reorder or hide text ("Trojan Source").
fn dangerous(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// Whether `c` is shown as an escape in `sink` (layout characters the sink owns are kept).
fn needs_escape(c: char, sink: Sink) -> bool {
    let kept = match sink {
        Sink::Line => false,
        Sink::Text => matches!(c, '\n' | '\t'),
        Sink::Markdown => c == '\n',
        Sink::Csv => matches!(c, '\n' | '\r' | '\t'),
    };
    dangerous(c) && !kept
}

/// Markdown's own characters: `\`, `|`, a line break, and a `<` that could start raw HTML or an
/// autolink (followed by a letter, `/`, `!` or `?`). `p < 0.05` stays as it is.
fn markdown_special(text: &str, i: usize, c: char, sink: Sink) -> bool {
    if sink != Sink::Markdown {
        return false;
    }
    match c {
        '\\' | '|' | '\n' => true,
        '<' => text[i + 1..]
            .chars()
            .next()
            .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?')),
        _ => false,
    }
}

/// A cell a spreadsheet would evaluate (OWASP's CSV-injection list), unless it is a number such
/// as `-0.5`, which must stay a number.
fn is_formula(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r']) && text.trim().parse::<f64>().is_err()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, sink: Sink, expected: &str) {
        assert_eq!(escape(text, sink), expected);
    }

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for sink in [Sink::Line, Sink::Text, Sink::Markdown, Sink::Csv] {
            assert!(matches!(
                escape("positive, 0.5 é 日本 👍", sink),
                Cow::Borrowed(_)
            ));
        }
    }

    #[test]
    fn terminal_escapes_are_shown_not_sent() {
        let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2Jyes";
        let shown = r"\u{1b}]0;pwned\u{7}\u{1b}[2Jyes";
        for sink in [Sink::Line, Sink::Text, Sink::Markdown, Sink::Csv] {
            check(hostile, sink, shown);
        }
        // C1 controls (an 8-bit CSI) and DEL too.
        check("a\u{9b}2Jb\u{7f}", Sink::Line, r"a\u{9b}2Jb\u{7f}");
    }

    #[test]
    fn bidi_overrides_are_shown() {
        check(
            "abc\u{202e}fed\u{202c}",
            Sink::Line,
            r"abc\u{202e}fed\u{202c}",
        );
        check(
            "\u{2067}x\u{2069}\u{200f}",
            Sink::Text,
            r"\u{2067}x\u{2069}\u{200f}",
        );
        // A zero-width joiner is part of emoji and scripts, not a trick.
        check("👨\u{200d}👩", Sink::Line, "👨\u{200d}👩");
    }

    #[test]
    fn each_sink_keeps_its_layout() {
        check("a\nb\tc\r", Sink::Line, r"a\nb\tc\r");
        check("a\nb\tc\r", Sink::Text, "a\nb\tc\\r");
        check("a\r\nb\tc", Sink::Csv, "a\r\nb\tc");
        check(" a\r\nb\nc\t ", Sink::Markdown, r"a<br>b<br>c");
    }

    #[test]
    fn markdown_cannot_open_html_or_cells() {
        check(
            "<script>alert(1)</script>",
            Sink::Markdown,
            "&lt;script>alert(1)&lt;/script>",
        );
        check("<!-- x --> <?php", Sink::Markdown, "&lt;!-- x --> &lt;?php");
        check(r"a | b \ c", Sink::Markdown, r"a \| b \\ c");
        check("p < 0.05, 3<4", Sink::Markdown, "p < 0.05, 3<4");
        check("<script>", Sink::Line, "<script>");
    }

    #[test]
    fn csv_cells_cannot_be_formulas() {
        check(
            "=HYPERLINK(\"http://x\")",
            Sink::Csv,
            "'=HYPERLINK(\"http://x\")",
        );
        check("+1+cmd|' /C calc'!A0", Sink::Csv, "'+1+cmd|' /C calc'!A0");
        check("@SUM(A1)", Sink::Csv, "'@SUM(A1)");
        check("-x", Sink::Csv, "'-x");
        check("\t=1", Sink::Csv, "'\t=1");
        // Numbers stay numbers.
        check("-0.25", Sink::Csv, "-0.25");
        check("+3", Sink::Csv, "+3");
        check("a=b", Sink::Csv, "a=b");
        check("=1", Sink::Line, "=1");
    }
}
