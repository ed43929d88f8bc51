//! Ready-to-copy code for a dataset's "API" section: the page's current
//! query (filters, ordering, offset) as a curl command, a Python `requests`
//! call and a postgrest-js chain, each asking for the rows the preview shows.

/// The three snippets.
pub struct Snippets {
    pub curl: String,
    pub python: String,
    pub javascript: String,
}

/// Snippets for dataset `id` at `base` (`https://host`), with the grammar
/// parameters `grammar`; `token` adds the bearer header closed data needs.
pub fn snippets(
    base: &str,
    id: &str,
    grammar: &[(String, String)],
    limit: u64,
    token: bool,
) -> Snippets {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in grammar {
        query.append_pair(key, value);
    }
    query.append_pair("limit", &limit.to_string());
    let url = format!("{base}/api/v1/data/{id}");
    let curl = format!(
        "curl{} '{url}?{}'",
        if token {
            " -H \"Authorization: Bearer $TOKEN\""
        } else {
            ""
        },
        query.finish().replace('\'', "%27")
    );
    let mut python = String::from("import requests\n\nresponse = requests.get(\n");
    python.push_str(&format!("    {},\n    params={{\n", quoted(&url)));
    for (key, value) in grammar {
        python.push_str(&format!("        {}: {},\n", quoted(key), quoted(value)));
    }
    python.push_str(&format!("        \"limit\": {limit},\n    }},\n"));
    if token {
        python.push_str("    headers={\"Authorization\": f\"Bearer {token}\"},\n");
    }
    python.push_str(")\nresponse.raise_for_status()\nrows = response.json()\n");
    Snippets {
        curl,
        python,
        javascript: javascript(base, id, grammar, limit, token),
    }
}

/// A postgrest-js chain: each filter as `.filter(column, operator, value)`,
/// `or` as `.or(…)`, ordering as `.order(…)`, paging as `.range(…)`.
fn javascript(
    base: &str,
    id: &str,
    grammar: &[(String, String)],
    limit: u64,
    token: bool,
) -> String {
    let mut code = String::from("import { PostgrestClient } from \"@supabase/postgrest-js\";\n\n");
    code.push_str(&format!(
        "const client = new PostgrestClient({}{});\n",
        quoted(&format!("{base}/api/v1/data")),
        if token {
            ", {\n  headers: { Authorization: `Bearer ${token}` },\n}"
        } else {
            ""
        }
    ));
    let select = grammar
        .iter()
        .find(|(key, _)| key == "select")
        .map_or("*", |(_, value)| value.as_str());
    code.push_str(&format!(
        "const {{ data, error }} = await client\n  .from({})\n  .select({})",
        quoted(id),
        quoted(select)
    ));
    let mut offset = 0;
    for (key, value) in grammar {
        match key.as_str() {
            "select" | "limit" => {}
            "offset" => offset = value.parse().unwrap_or(0),
            "order" => {
                for item in value.split(',').filter(|item| !item.is_empty()) {
                    let mut parts = item.split('.');
                    let column = parts.next().unwrap_or_default();
                    let modifiers: Vec<&str> = parts.collect();
                    let ascending = !modifiers.contains(&"desc");
                    let nulls = if modifiers.contains(&"nullsfirst") {
                        ", nullsFirst: true"
                    } else if modifiers.contains(&"nullslast") {
                        ", nullsFirst: false"
                    } else {
                        ""
                    };
                    code.push_str(&format!(
                        "\n  .order({}, {{ ascending: {ascending}{nulls} }})",
                        quoted(column)
                    ));
                }
            }
            "or" => {
                let inner = value
                    .strip_prefix('(')
                    .and_then(|inner| inner.strip_suffix(')'))
                    .unwrap_or(value);
                code.push_str(&format!("\n  .or({})", quoted(inner)));
            }
            _ => {
                let (operator, operand) = value.split_once('.').unwrap_or(("eq", value));
                code.push_str(&format!(
                    "\n  .filter({}, {}, {})",
                    quoted(key),
                    quoted(operator),
                    quoted(operand)
                ));
            }
        }
    }
    code.push_str(&format!("\n  .range({offset}, {});\n", offset + limit - 1));
    code
}

/// A string literal valid in Python and JavaScript.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query of the page becomes each client's way of writing it.
    #[test]
    fn writes_the_query_for_each_client() {
        let grammar = vec![
            ("commune".to_owned(), "eq.Sainte-Savine".to_owned()),
            ("order".to_owned(), "annee.desc,id".to_owned()),
            ("offset".to_owned(), "20".to_owned()),
        ];
        let code = snippets(
            "http://localhost:8080",
            "consommations",
            &grammar,
            20,
            false,
        );
        assert_eq!(
            code.curl,
            "curl 'http://localhost:8080/api/v1/data/consommations?commune=eq.Sainte-Savine&order=annee.desc%2Cid&offset=20&limit=20'"
        );
        assert!(code.python.contains("\"commune\": \"eq.Sainte-Savine\","));
        assert!(code.python.contains("\"limit\": 20,"));
        assert!(!code.python.contains("Authorization"));
        assert!(
            code.javascript
                .contains(".filter(\"commune\", \"eq\", \"Sainte-Savine\")")
        );
        assert!(
            code.javascript
                .contains(".order(\"annee\", { ascending: false })")
        );
        assert!(
            code.javascript
                .contains(".order(\"id\", { ascending: true })")
        );
        assert!(code.javascript.contains(".range(20, 39);"));
        let closed = snippets("https://x", "d", &[], 20, true);
        assert!(closed.curl.contains("Authorization: Bearer $TOKEN"));
        assert!(closed.python.contains("Bearer {token}"));
        assert!(closed.javascript.contains("Bearer ${token}"));
    }
}
