//! A YAML document as a small tree in which every node knows where it starts in the source, so
//! that every later check can say `FILE:LINE:COL`.
//!
//! Built from `saphyr-parser`'s event stream (a YAML 1.2 parser that reports a span for every
//! event). Plain scalars are typed by the YAML 1.2 core schema (`null`, `true`, `12`, `2.0e-4`);
//! quoted and block scalars are always strings. This is deliberately not a general YAML library:
//! it keeps only what specs need (no tags beyond `!!str`, aliases expanded by copy, one document).
//!
//! Expanding aliases by copy is what lets a few hundred bytes ask for gigabytes ("billion
//! laughs"), and a spec arrives in pull requests: the nodes that aliases add, and the nesting
//! depth, are bounded ([`MAX_ALIAS_NODES`], [`MAX_DEPTH`]), far above what any spec needs.

use saphyr_parser::{Event, Marker, Parser, ScalarStyle};

/// Where a node starts: 1-based line and column (in characters), and the 0-based character
/// offset in the source (used to find text inside a scalar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
    pub index: usize,
}

impl Pos {
    fn from_marker(m: &Marker) -> Self {
        Pos {
            line: m.line().max(1),
            col: m.col() + 1,
            index: m.index(),
        }
    }
}

/// One YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `text` is the scalar's content; `plain` is true for unquoted, non-block scalars, the only
    /// ones that can be anything other than a string.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Keys in source order (duplicates kept, so the decoder can report them).
    Map(Vec<(Node, Node)>),
}

/// A scalar typed by the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Node {
    /// The node as a typed scalar, or None for a list or mapping.
    pub(crate) fn scalar(&self) -> Option<Scalar<'_>> {
        match &self.value {
            Value::Scalar { text, plain: true } => Some(resolve_plain(text)),
            Value::Scalar { text, plain: false } => Some(Scalar::Str(text)),
            _ => None,
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self.scalar(), Some(Scalar::Null))
    }

    /// How the node reads in a message: "a list", "a mapping", "the string `abc`".
    pub(crate) fn describe(&self) -> String {
        match &self.value {
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
            Value::Scalar { .. } => match self.scalar() {
                Some(Scalar::Null) | None => "nothing".into(),
                Some(Scalar::Bool(b)) => format!("the boolean `{b}`"),
                Some(Scalar::Int(i)) => format!("the integer `{i}`"),
                Some(Scalar::Float(x)) => format!("the number `{x}`"),
                Some(Scalar::Str(s)) => format!("the string `{}`", shorten(s)),
            },
        }
    }
}

/// A long or multi-line string cut to fit in one message line.
pub(crate) fn shorten(s: &str) -> String {
    let first = s.lines().next().unwrap_or("");
    let cut: String = first.chars().take(40).collect();
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

fn resolve_plain(text: &str) -> Scalar<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Scalar::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        _ => {}
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Scalar::Int(i);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Scalar::Int(i);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = text.parse()
    {
        return Scalar::Int(i);
    }
    if is_core_float(digits)
        && let Ok(x) = text.parse()
    {
        return Scalar::Float(x);
    }
    Scalar::Str(text)
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, the core schema's float without its sign.
fn is_core_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (mantissa, None),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => all_digits(int) && all_digits(f) && !(int.is_empty() && f.is_empty()),
        None => !int.is_empty() && all_digits(int),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && all_digits(e)
        }
    };
    mantissa_ok && exponent_ok
}

/// A YAML syntax error, or a document shape this module refuses (several documents).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

/// Most nodes that aliases may add to a document, over all its aliases.
pub(crate) const MAX_ALIAS_NODES: usize = 10_000;
/// Most levels of nested lists and mappings.
pub(crate) const MAX_DEPTH: usize = 64;

/// How many nodes `node` holds, itself included.
fn size(node: &Node) -> usize {
    match &node.value {
        Value::Scalar { .. } => 1,
        Value::Seq(items) => 1 + items.iter().map(size).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| size(k) + size(v))
                .sum::<usize>()
        }
    }
}

/// The anchor name an alias at `pos` refers to, read from the source (`*name`).
fn alias_name(src: &str, pos: Pos) -> String {
    let rest: String = src.chars().skip(pos.index).collect();
    let rest = rest.strip_prefix('*').unwrap_or(&rest);
    rest.chars()
        .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
        .take(40)
        .collect()
}

/// Parses one YAML document. An empty document is a null scalar at 1:1.
pub(crate) fn parse(src: &str) -> Result<Node, SyntaxError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, (Node, usize)> =
        std::collections::HashMap::new();
    let mut docs: Vec<Node> = Vec::new();
    let mut expanded = 0usize;

    for event in Parser::new_from_str(src) {
        let (event, span) = event.map_err(|e| SyntaxError {
            pos: Pos::from_marker(e.marker()),
            message: format!("invalid YAML: {}", e.info()),
        })?;
        let pos = Pos::from_marker(&span.start);
        let done = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let forced_str = tag.is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
                let node = Node {
                    pos,
                    value: Value::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain && !forced_str,
                    },
                };
                Some((node, anchor))
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some((n, n_size)) => {
                    expanded += n_size;
                    if expanded > MAX_ALIAS_NODES {
                        return Err(SyntaxError {
                            pos,
                            message: format!(
                                "aliases expand to more than {MAX_ALIAS_NODES} nodes (here                                  `*{}` adds {n_size}); write the values out instead",
                                alias_name(src, pos)
                            ),
                        });
                    }
                    Some((
                        Node {
                            pos,
                            value: n.value.clone(),
                        },
                        0,
                    ))
                }
                None => {
                    return Err(SyntaxError {
                        pos,
                        message: "invalid YAML: alias to an unknown anchor".into(),
                    });
                }
            },
            Event::SequenceStart(..) | Event::MappingStart(..) if stack.len() >= MAX_DEPTH => {
                return Err(SyntaxError {
                    pos,
                    message: format!("lists and mappings nest deeper than {MAX_DEPTH} levels"),
                });
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                });
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq { pos, anchor, items }) => Some((
                    Node {
                        pos,
                        value: Value::Seq(items),
                    },
                    anchor,
                )),
                Some(Frame::Map {
                    pos,
                    anchor,
                    entries,
                    ..
                }) => Some((
                    Node {
                        pos,
                        value: Value::Map(entries),
                    },
                    anchor,
                )),
                None => None,
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => None,
        };
        let Some((node, anchor)) = done else {
            continue;
        };
        if anchor != 0 {
            anchors.insert(anchor, (node.clone(), size(&node)));
        }
        match stack.last_mut() {
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => *key = Some(node),
            },
            None => docs.push(node),
        }
    }

    let mut docs = docs.into_iter();
    let first = docs.next().unwrap_or(Node {
        pos: Pos {
            line: 1,
            col: 1,
            index: 0,
        },
        value: Value::Scalar {
            text: String::new(),
            plain: true,
        },
    });
    if let Some(second) = docs.next() {
        return Err(SyntaxError {
            pos: second.pos,
            message: "a spec holds one YAML document; remove the second `---`".into(),
        });
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_of(src: &str) -> String {
        let n = parse(src).unwrap();
        format!("{:?}", n.scalar().unwrap())
    }

    #[test]
    fn core_schema_typing() {
        assert_eq!(scalar_of("12"), "Int(12)");
        assert_eq!(scalar_of("-3"), "Int(-3)");
        assert_eq!(scalar_of("2.0e-4"), "Float(0.0002)");
        assert_eq!(scalar_of("1e3"), "Float(1000.0)");
        assert_eq!(scalar_of(".5"), "Float(0.5)");
        assert_eq!(scalar_of("true"), "Bool(true)");
        assert_eq!(scalar_of("~"), "Null");
        assert_eq!(scalar_of("'12'"), "Str(\"12\")");
        assert_eq!(scalar_of("inf"), "Str(\"inf\")");
        assert_eq!(scalar_of("yes"), "Str(\"yes\")");
        assert_eq!(scalar_of("!!str 5"), "Str(\"5\")");
        assert_eq!(scalar_of("1.2.3"), "Str(\"1.2.3\")");
    }

    #[test]
    fn positions_are_one_based() {
        let n = parse("a: 1\nb:\n  - x\n  - {c: 2}\n").unwrap();
        let Value::Map(entries) = &n.value else {
            panic!("not a map")
        };
        let (k, v) = &entries[1];
        assert_eq!((k.pos.line, k.pos.col), (2, 1));
        let Value::Seq(items) = &v.value else {
            panic!("not a seq")
        };
        assert_eq!((items[0].pos.line, items[0].pos.col), (3, 5));
        let Value::Map(inner) = &items[1].value else {
            panic!("not a map")
        };
        assert_eq!((inner[0].1.pos.line, inner[0].1.pos.col), (4, 9));
    }

    #[test]
    fn aliases_are_copied() {
        let n = parse("a: &x [1, 2]\nb: *x\n").unwrap();
        let Value::Map(entries) = &n.value else {
            panic!("not a map")
        };
        assert_eq!(entries[0].1.value, entries[1].1.value);
        assert_eq!(entries[1].1.pos.line, 2);
    }

    /// Nine levels of nine aliases would be 9^9 nodes: refused at the alias that crosses the
    /// bound, naming it, before the memory is spent.
    #[test]
    fn alias_bombs_are_refused() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for level in 1..9 {
            let prev = format!("*a{}", level - 1);
            let list = [prev.as_str(); 9].join(", ");
            src.push_str(&format!("a{level}: &a{level} [{list}]\n"));
        }
        let e = parse(&src).unwrap_err();
        assert!(e.message.contains("more than 10000 nodes"), "{e:?}");
        assert!(e.message.contains("`*a3`"), "{e:?}");
        assert_eq!(e.pos.line, 5);
        // Aliases within the bound still expand.
        assert!(parse("a: &a [1, 2]\nb: [*a, *a]\n").is_ok());
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let e = parse(&deep).unwrap_err();
        assert!(e.message.contains("deeper than 64"), "{e:?}");
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn syntax_error_has_a_place() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.message.starts_with("invalid YAML"), "{e:?}");
        assert!(e.pos.line >= 1);
    }

    #[test]
    fn one_document_only() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.pos.line, 3);
    }
}
