//! A JSON value written as block-style YAML, for people to read. Strings that could be read
//! back as anything else (numbers, booleans, `::`, `@type`, ...) are written as JSON strings,
//! which YAML reads as double-quoted scalars; everything else JSON allows is YAML too.

use serde_json::Value;

/// `value` as a YAML document (a mapping or sequence at the top; a scalar on one line).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => mapping(map, 0, &mut out),
        Value::Array(items) if !items.is_empty() => sequence(items, 0, &mut out),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

fn mapping(map: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (key, value) in map {
        out.push_str(&pad);
        out.push_str(&scalar_string(key));
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                mapping(inner, indent + 2, out);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                sequence(items, indent, out);
            }
            other => {
                out.push(' ');
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

fn sequence(items: &[Value], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            Value::Object(inner) if !inner.is_empty() => {
                // The item's mapping, two deeper, with its first indentation replaced by `- `.
                let mut block = String::new();
                mapping(inner, indent + 2, &mut block);
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(block.get(indent + 2..).unwrap_or_default());
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push_str(&pad);
                out.push_str("-\n");
                sequence(inner, indent + 2, out);
            }
            other => {
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

/// A scalar, or an empty mapping or sequence, on one line.
fn inline(value: &Value) -> String {
    match value {
        Value::String(s) => scalar_string(s),
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
        other => other.to_string(),
    }
}

/// `s` plain when YAML reads it back as that same string, else as a JSON string.
fn scalar_string(s: &str) -> String {
    if is_plain(s) {
        s.to_owned()
    } else {
        Value::String(s.to_owned()).to_string()
    }
}

fn is_plain(s: &str) -> bool {
    const WORDS: [&str; 11] = [
        "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~", "",
    ];
    let Some(first) = s.chars().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_' || first == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && !WORDS.contains(&s.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_block_yaml() {
        let value = json!({
            "a": {"b": 1, "c": [{"d": "x", "e": true}, "f"], "g": {}, "h": []},
            "@type": "type.googleapis.com/x.y",
            "n": ["10s", "::", "true", "a b", "", "/run/x.sock"],
            "m": [[1, 2]],
        });
        let want = r#"a:
  b: 1
  c:
  - d: x
    e: true
  - f
  g: {}
  h: []
"@type": type.googleapis.com/x.y
"n":
- "10s"
- "::"
- "true"
- "a b"
- ""
- /run/x.sock
m:
-
  - 1
  - 2
"#;
        assert_eq!(to_yaml(&value), want);
    }

    #[test]
    fn nested_items_keep_their_indentation() {
        let value = json!({"l": [{"a": {"b": [{"c": 1, "d": 2}]}, "e": 3}]});
        let want = "l:\n- a:\n    b:\n    - c: 1\n      d: 2\n  e: 3\n";
        assert_eq!(to_yaml(&value), want);
    }
}
