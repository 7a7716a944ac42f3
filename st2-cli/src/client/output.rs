//! Output: JSON (`-j`), YAML (`-y`), boxed tables fitted to the terminal width, property tables
//! for one resource, and StackStorm's `key: value` execution view.

use std::fmt::Write as _;

use serde_json::Value;

/// How a command prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Tables and text.
    #[default]
    Table,
    /// Pretty JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Terminal width: `$COLUMNS`, else `stty size` when stdout is a terminal, else 120.
pub fn terminal_width() -> usize {
    use std::io::IsTerminal as _;
    if let Some(w) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|w| *w > 20)
    {
        return w;
    }
    if std::io::stdout().is_terminal() {
        let out = std::fs::File::open("/dev/tty").ok().and_then(|tty| {
            std::process::Command::new("stty")
                .arg("size")
                .stdin(tty)
                .output()
                .ok()
        });
        if let Some(w) = out.and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(1)
                .and_then(|w| w.parse::<usize>().ok())
        }) {
            if w > 20 {
                return w;
            }
        }
    }
    120
}

/// Renders a value the way it is printed (JSON or YAML).
pub fn render(value: &Value, format: Format) -> String {
    match format {
        Format::Yaml => serde_yaml::to_string(value).unwrap_or_else(|_| value.to_string()),
        _ => serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()),
    }
}

/// A value at a dotted path (`action.ref`), `null` when missing.
pub fn lookup<'a>(value: &'a Value, path: &str) -> &'a Value {
    let mut cur = value;
    if let Some(v) = cur.get(path) {
        return v;
    }
    for part in path.split('.') {
        cur = match cur.get(part) {
            Some(v) => v,
            None => return &Value::Null,
        };
    }
    cur
}

/// A cell's text: strings as they are, `null` as empty, anything else as JSON (pretty when
/// `pretty`).
pub fn cell(value: &Value, pretty: bool) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Value::Number(n) => n.to_string(),
        other if pretty => serde_json::to_string_pretty(other).unwrap_or_default(),
        other => other.to_string(),
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for line in text.lines() {
        let chars: Vec<char> = line.chars().collect();
        if chars.is_empty() {
            out.push(String::new());
            continue;
        }
        let mut start = 0;
        while start < chars.len() {
            let mut end = (start + width).min(chars.len());
            if end < chars.len() {
                // Break at the last space of the piece when there is one.
                if let Some(sp) = chars[start..end].iter().rposition(|c| *c == ' ') {
                    if sp > 0 {
                        end = start + sp + 1;
                    }
                }
            }
            out.push(
                chars[start..end]
                    .iter()
                    .collect::<String>()
                    .trim_end()
                    .to_string(),
            );
            start = end;
        }
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

/// Column widths fitting `max_width`: natural widths, then the widest shrunk first.
fn fit_widths(natural: &[usize], max_width: usize) -> Vec<usize> {
    let mut widths: Vec<usize> = natural.iter().map(|w| (*w).max(1)).collect();
    // Borders: "| " + " | " between + " |".
    let overhead = 3 * widths.len() + 1;
    let budget = max_width.saturating_sub(overhead).max(widths.len() * 4);
    while widths.iter().sum::<usize>() > budget {
        let (i, w) = widths
            .iter()
            .enumerate()
            .max_by_key(|(_, w)| **w)
            .map(|(i, w)| (i, *w))
            .expect("at least one column");
        if w <= 4 {
            break;
        }
        widths[i] = w - 1;
    }
    widths
}

/// A boxed table of `rows` under `headers`, fitted to `max_width`.
pub fn table(headers: &[String], rows: &[Vec<String>], max_width: usize) -> String {
    let natural: Vec<usize> = (0..headers.len())
        .map(|i| {
            std::iter::once(&headers[i])
                .chain(rows.iter().map(|r| &r[i]))
                .flat_map(|s| s.lines())
                .map(|l| l.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let widths = fit_widths(&natural, max_width);
    let mut sep = String::from("+");
    for w in &widths {
        sep.push_str(&"-".repeat(w + 2));
        sep.push('+');
    }
    let mut out = String::new();
    let put_row = |out: &mut String, cells: &[String]| {
        let wrapped: Vec<Vec<String>> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| wrap(c, *w))
            .collect();
        let height = wrapped.iter().map(Vec::len).max().unwrap_or(1);
        for line in 0..height {
            out.push('|');
            for (col, w) in wrapped.iter().zip(&widths) {
                let text = col.get(line).map(String::as_str).unwrap_or("");
                let pad = w.saturating_sub(text.chars().count());
                let _ = write!(out, " {text}{} |", " ".repeat(pad));
            }
            out.push('\n');
        }
    };
    let _ = writeln!(out, "{sep}");
    put_row(&mut out, headers);
    let _ = writeln!(out, "{sep}");
    for r in rows {
        put_row(&mut out, r);
    }
    let _ = writeln!(out, "{sep}");
    out
}

/// Prints a list: JSON/YAML as they are, else a table of `columns` (dotted paths), with a
/// note on stderr when the server holds more than shown.
pub fn print_list(items: &Value, columns: &[&str], format: Format, total: Option<u64>) {
    if format != Format::Table {
        println!("{}", render(items, format));
        return;
    }
    let empty = Vec::new();
    let list = items.as_array().unwrap_or(&empty);
    if list.is_empty() {
        println!("No matching items found.");
        return;
    }
    let headers: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|c| cell(lookup(item, c), false))
                .collect()
        })
        .collect();
    print!("{}", table(&headers, &rows, terminal_width()));
    if let Some(t) = total {
        if t > list.len() as u64 {
            eprintln!(
                "Note: Only first {} items are displayed. Use -n/--last flag for more results.",
                list.len()
            );
        }
    }
}

/// Prints one resource: JSON/YAML, else a `Property | Value` table, `order` first and then the
/// remaining fields.
pub fn print_one(item: &Value, order: &[&str], format: Format) {
    if format != Format::Table {
        println!("{}", render(item, format));
        return;
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for k in order {
        if let Some(v) = item.get(*k) {
            rows.push(vec![k.to_string(), cell(v, true)]);
        }
    }
    if let Some(obj) = item.as_object() {
        for (k, v) in obj {
            if !order.contains(&k.as_str()) {
                rows.push(vec![k.clone(), cell(v, true)]);
            }
        }
    }
    let headers = vec!["Property".to_string(), "Value".to_string()];
    print!("{}", table(&headers, &rows, terminal_width()));
}

/// StackStorm's execution view: `attr: value` lines, nested values as indented YAML.
pub fn execution_text(execution: &Value, attrs: &[&str]) -> String {
    let mut out = String::new();
    for a in attrs {
        let v = lookup(execution, a);
        match v {
            // Missing (or excluded) fields are left out.
            Value::Null => {}
            Value::Object(o) if !o.is_empty() => {
                let _ = writeln!(out, "{a}: ");
                out.push_str(&indented_yaml(v));
            }
            Value::Array(l) if !l.is_empty() => {
                let _ = writeln!(out, "{a}: ");
                out.push_str(&indented_yaml(v));
            }
            Value::Object(_) => {
                let _ = writeln!(out, "{a}: {{}}");
            }
            Value::Array(_) => {
                let _ = writeln!(out, "{a}: []");
            }
            other => {
                let _ = writeln!(out, "{a}: {}", cell(other, false));
            }
        }
    }
    out
}

fn indented_yaml(v: &Value) -> String {
    let text = serde_yaml::to_string(v).unwrap_or_else(|_| v.to_string());
    let mut out = String::new();
    for line in text.lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_fit_and_wrap() {
        let t = table(
            &["ref".into(), "description".into()],
            &[vec!["core.local".into(), "word ".repeat(30)]],
            40,
        );
        assert!(t.lines().all(|l| l.chars().count() <= 40), "{t}");
        assert!(t.lines().count() > 5, "{t}");
        assert!(t.contains("| core.local |"), "{t}");
    }

    #[test]
    fn lookup_follows_dots() {
        let v = json!({"action": {"ref": "core.local"}, "a.b": 1});
        assert_eq!(lookup(&v, "action.ref"), "core.local");
        assert_eq!(lookup(&v, "a.b"), 1);
        assert_eq!(lookup(&v, "nope.x"), &Value::Null);
    }

    #[test]
    fn execution_view_nests_yaml() {
        let v = json!({"id": "1", "result": {"stdout": "hi"}, "parameters": {}});
        let t = execution_text(&v, &["id", "parameters", "end_timestamp", "result"]);
        assert_eq!(t, "id: 1\nparameters: {}\nresult: \n  stdout: hi\n");
    }
}
