//! RDF graphs and their three serialisations: Turtle, RDF/XML and JSON-LD
//! (expanded form, no remote `@context`, so a harvester parses it offline).
//!
//! The graph is small (one catalogue page), so it is built in memory and
//! written at once. Every text that reaches the output is escaped for its
//! syntax: IRIs (characters Turtle forbids are percent-encoded), literals
//! (quotes, backslashes, line ends, control characters), XML (markup
//! characters; characters XML 1.0 cannot hold are dropped).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// An RDF term.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Term {
    Iri(String),
    /// A blank node label (letters, digits, `_`, `-`).
    Blank(String),
    Literal {
        value: String,
        /// Datatype IRI; `None` with no language is `xsd:string`.
        datatype: Option<String>,
        language: Option<String>,
    },
}

impl Term {
    pub fn iri(iri: impl Into<String>) -> Term {
        Term::Iri(iri.into())
    }

    pub fn text(value: impl Into<String>) -> Term {
        Term::Literal {
            value: value.into(),
            datatype: None,
            language: None,
        }
    }

    pub fn french(value: impl Into<String>) -> Term {
        Term::Literal {
            value: value.into(),
            datatype: None,
            language: Some("fr".into()),
        }
    }

    pub fn typed(value: impl Into<String>, datatype: &str) -> Term {
        Term::Literal {
            value: value.into(),
            datatype: Some(datatype.to_owned()),
            language: None,
        }
    }
}

/// The namespaces the serialisations abbreviate with (prefix, IRI).
pub const PREFIXES: &[(&str, &str)] = &[
    ("rdf", "http://www.w3.org/1999/02/22-rdf-syntax-ns#"),
    ("rdfs", "http://www.w3.org/2000/01/rdf-schema#"),
    ("xsd", "http://www.w3.org/2001/XMLSchema#"),
    ("dcat", "http://www.w3.org/ns/dcat#"),
    ("dct", "http://purl.org/dc/terms/"),
    ("foaf", "http://xmlns.com/foaf/0.1/"),
    ("vcard", "http://www.w3.org/2006/vcard/ns#"),
    ("hydra", "http://www.w3.org/ns/hydra/core#"),
    ("adms", "http://www.w3.org/ns/adms#"),
];

/// `prefix:local` expanded to a full IRI (`dcat:Dataset`).
pub fn expand(name: &str) -> String {
    match name.split_once(':') {
        Some((prefix, local)) => match PREFIXES.iter().find(|(known, _)| *known == prefix) {
            Some((_, namespace)) => format!("{namespace}{local}"),
            None => name.to_owned(),
        },
        None => name.to_owned(),
    }
}

/// A set of triples, subjects kept in insertion order.
#[derive(Debug, Default, Clone)]
pub struct Graph {
    subjects: Vec<Term>,
    /// Per subject: (predicate IRI, object) in insertion order.
    statements: BTreeMap<Term, Vec<(String, Term)>>,
}

impl Graph {
    /// Adds `subject predicate object`; `predicate` may be `prefix:local`.
    pub fn add(&mut self, subject: &Term, predicate: &str, object: Term) {
        let predicate = expand(predicate);
        if !self.statements.contains_key(subject) {
            self.subjects.push(subject.clone());
        }
        let statements = self.statements.entry(subject.clone()).or_default();
        if !statements.contains(&(predicate.clone(), object.clone())) {
            statements.push((predicate, object));
        }
    }

    /// Adds `subject rdf:type class`.
    pub fn add_type(&mut self, subject: &Term, class: &str) {
        self.add(subject, "rdf:type", Term::iri(expand(class)));
    }

    fn each(&self) -> impl Iterator<Item = (&Term, &Vec<(String, Term)>)> {
        self.subjects
            .iter()
            .map(|subject| (subject, &self.statements[subject]))
    }

    /// Number of triples.
    pub fn len(&self) -> usize {
        self.statements.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Turtle.
    pub fn to_turtle(&self) -> String {
        let mut out = String::new();
        for (prefix, namespace) in PREFIXES {
            let _ = writeln!(out, "@prefix {prefix}: <{namespace}> .");
        }
        for (subject, statements) in self.each() {
            out.push('\n');
            out.push_str(&turtle_term(subject));
            for (index, (predicate, object)) in statements.iter().enumerate() {
                out.push_str(if index == 0 { "\n    " } else { " ;\n    " });
                if predicate == RDF_TYPE {
                    out.push('a');
                } else {
                    out.push_str(&turtle_iri(predicate));
                }
                out.push(' ');
                out.push_str(&turtle_term(object));
            }
            out.push_str(" .\n");
        }
        out
    }

    /// RDF/XML: one `rdf:Description` per subject.
    pub fn to_rdf_xml(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rdf:RDF");
        for (prefix, namespace) in PREFIXES {
            let _ = write!(out, "\n    xmlns:{prefix}=\"{}\"", xml_escape(namespace));
        }
        out.push_str(">\n");
        for (subject, statements) in self.each() {
            match subject {
                Term::Blank(label) => {
                    let _ = writeln!(
                        out,
                        "  <rdf:Description rdf:nodeID=\"{}\">",
                        xml_escape(label)
                    );
                }
                other => {
                    let iri = match other {
                        Term::Iri(iri) => iri.as_str(),
                        _ => continue,
                    };
                    let _ = writeln!(out, "  <rdf:Description rdf:about=\"{}\">", xml_escape(iri));
                }
            }
            for (predicate, object) in statements {
                let Some(name) = qualified_name(predicate) else {
                    // Every predicate of this crate is in PREFIXES (unit-tested).
                    continue;
                };
                match object {
                    Term::Iri(iri) => {
                        let _ = writeln!(out, "    <{name} rdf:resource=\"{}\"/>", xml_escape(iri));
                    }
                    Term::Blank(label) => {
                        let _ = writeln!(out, "    <{name} rdf:nodeID=\"{}\"/>", xml_escape(label));
                    }
                    Term::Literal {
                        value,
                        datatype,
                        language,
                    } => {
                        let attribute = match (datatype, language) {
                            (_, Some(language)) => {
                                format!(" xml:lang=\"{}\"", xml_escape(language))
                            }
                            (Some(datatype), None) => {
                                format!(" rdf:datatype=\"{}\"", xml_escape(datatype))
                            }
                            (None, None) => String::new(),
                        };
                        let _ =
                            writeln!(out, "    <{name}{attribute}>{}</{name}>", xml_escape(value));
                    }
                }
            }
            out.push_str("  </rdf:Description>\n");
        }
        out.push_str("</rdf:RDF>\n");
        out
    }

    /// JSON-LD in expanded form (full IRIs, no `@context` to fetch).
    pub fn to_json_ld(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .each()
            .map(|(subject, statements)| {
                let mut node = serde_json::Map::new();
                node.insert("@id".into(), serde_json::Value::String(node_id(subject)));
                let mut types = Vec::new();
                let mut properties: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
                for (predicate, object) in statements {
                    if predicate == RDF_TYPE
                        && let Term::Iri(class) = object
                    {
                        types.push(serde_json::Value::String(class.clone()));
                        continue;
                    }
                    let value = match object {
                        Term::Iri(_) | Term::Blank(_) => {
                            serde_json::json!({"@id": node_id(object)})
                        }
                        Term::Literal {
                            value,
                            datatype,
                            language,
                        } => match (datatype, language) {
                            (_, Some(language)) => {
                                serde_json::json!({"@value": value, "@language": language})
                            }
                            (Some(datatype), None) => {
                                serde_json::json!({"@value": value, "@type": datatype})
                            }
                            (None, None) => serde_json::json!({"@value": value}),
                        },
                    };
                    match properties.iter_mut().find(|(name, _)| name == predicate) {
                        Some((_, values)) => values.push(value),
                        None => properties.push((predicate.clone(), vec![value])),
                    }
                }
                if !types.is_empty() {
                    node.insert("@type".into(), serde_json::Value::Array(types));
                }
                for (predicate, values) in properties {
                    node.insert(predicate, serde_json::Value::Array(values));
                }
                serde_json::Value::Object(node)
            })
            .collect();
        serde_json::Value::Array(nodes)
    }
}

const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";

fn node_id(term: &Term) -> String {
    match term {
        Term::Iri(iri) => iri.clone(),
        Term::Blank(label) => format!("_:{label}"),
        Term::Literal { value, .. } => value.clone(),
    }
}

/// `prefix:local` for a predicate in a known namespace whose local part is
/// an XML name.
fn qualified_name(iri: &str) -> Option<String> {
    PREFIXES.iter().find_map(|(prefix, namespace)| {
        let local = iri.strip_prefix(namespace)?;
        let valid = local
            .chars()
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
            && local
                .chars()
                .all(|character| character.is_ascii_alphanumeric() || "_-.".contains(character));
        valid.then(|| format!("{prefix}:{local}"))
    })
}

/// An IRI for Turtle: characters an IRIREF may not hold are percent-encoded.
fn turtle_iri(iri: &str) -> String {
    let mut out = String::with_capacity(iri.len() + 2);
    out.push('<');
    for character in iri.chars() {
        if character <= ' ' || "<>\"{}|^`\\".contains(character) {
            let mut buffer = [0; 4];
            for byte in character.encode_utf8(&mut buffer).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(character);
        }
    }
    out.push('>');
    out
}

fn turtle_term(term: &Term) -> String {
    match term {
        Term::Iri(iri) => turtle_iri(iri),
        Term::Blank(label) => format!("_:{label}"),
        Term::Literal {
            value,
            datatype,
            language,
        } => {
            let mut out = String::with_capacity(value.len() + 2);
            out.push('"');
            for character in value.chars() {
                match character {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    control if control.is_control() => {
                        let _ = write!(out, "\\u{:04X}", control as u32);
                    }
                    other => out.push(other),
                }
            }
            out.push('"');
            match (datatype, language) {
                (_, Some(language)) => {
                    out.push('@');
                    out.push_str(language);
                }
                (Some(datatype), None) => {
                    out.push_str("^^");
                    out.push_str(&turtle_iri(datatype));
                }
                (None, None) => {}
            }
            out
        }
    }
}

/// Escapes XML markup; drops characters XML 1.0 cannot represent.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(character),
            '\r' => out.push_str("&#13;"),
            control
                if (control as u32) < 0x20 || control == '\u{FFFE}' || control == '\u{FFFF}' => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Graph {
        let mut graph = Graph::default();
        let dataset = Term::iri("http://example.org/d?x=1&y=<2>");
        graph.add_type(&dataset, "dcat:Dataset");
        graph.add(
            &dataset,
            "dct:title",
            Term::french("Ménages \"précaires\"\n\\ <b>&</b>"),
        );
        graph.add(
            &dataset,
            "dct:modified",
            Term::typed("2026-01-02T03:04:05Z", &expand("xsd:dateTime")),
        );
        graph.add(&dataset, "dcat:contactPoint", Term::Blank("c1".into()));
        graph.add(&dataset, "dcat:keyword", Term::text("a\u{1}b"));
        graph.add(&Term::Blank("c1".into()), "vcard:fn", Term::text("Ville"));
        graph
    }

    /// Markup, quotes, backslashes, line ends and control characters never
    /// break a serialisation.
    #[test]
    fn escapes_every_syntax() {
        let graph = sample();
        let turtle = graph.to_turtle();
        assert!(
            turtle.contains(r#""Ménages \"précaires\"\n\\ <b>&</b>"@fr"#),
            "{turtle}"
        );
        assert!(
            turtle.contains("<http://example.org/d?x=1&y=%3C2%3E>"),
            "{turtle}"
        );
        assert!(turtle.contains(r#""a\u0001b""#), "{turtle}");
        assert!(
            turtle.contains("\n    a <http://www.w3.org/ns/dcat#Dataset>"),
            "{turtle}"
        );
        let xml = graph.to_rdf_xml();
        assert!(
            xml.contains("rdf:about=\"http://example.org/d?x=1&amp;y=&lt;2&gt;\""),
            "{xml}"
        );
        assert!(xml.contains("&lt;b&gt;&amp;&lt;/b&gt;"), "{xml}");
        assert!(xml.contains("<dcat:keyword>ab</dcat:keyword>"), "{xml}");
        assert!(
            xml.contains("<dcat:contactPoint rdf:nodeID=\"c1\"/>"),
            "{xml}"
        );
        let json = graph.to_json_ld();
        assert_eq!(json[0]["@type"][0], "http://www.w3.org/ns/dcat#Dataset");
        assert_eq!(
            json[0]["http://purl.org/dc/terms/title"][0]["@language"],
            "fr"
        );
        assert_eq!(json[1]["@id"], "_:c1");
        assert_eq!(graph.len(), 6);
    }

    /// Every prefix expands, and every predicate name is an XML name.
    #[test]
    fn names() {
        assert_eq!(expand("dcat:Dataset"), "http://www.w3.org/ns/dcat#Dataset");
        assert_eq!(expand("http://x/y"), "http://x/y");
        assert_eq!(
            qualified_name(&expand("dct:accessRights")).as_deref(),
            Some("dct:accessRights")
        );
        assert_eq!(qualified_name("http://unknown.org/p"), None);
    }
}
