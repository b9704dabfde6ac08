//! Finds the line of a key path (`routes[1].sinks`) in YAML text, so that errors found after
//! parsing (a typo in a tagged section, a route naming an unknown sink) still name their line.
//!
//! It reads block-style YAML line by line (the style config files use); inside a flow collection
//! (`{species: dog}`) it stops at the line that holds it. It never fails: it returns the deepest
//! line it could find.

use crate::spec::path::Seg;

struct Line<'a> {
    number: usize,
    indent: usize,
    text: &'a str,
}

/// The 1-based line of `path` in `yaml`, or of its deepest ancestor that could be found.
pub fn line_of(yaml: &str, path: &[Seg]) -> Option<usize> {
    find(yaml, path, 0)
}

/// The 1-based line of the `occurrence`-th (0-based) appearance of `path`'s last key under its
/// parent: where a key written twice in one mapping appears the second time. `None` when there
/// are not that many (or the parent cannot be found).
pub fn line_of_occurrence(yaml: &str, path: &[Seg], occurrence: usize) -> Option<usize> {
    let parent = line_of(yaml, &path[..path.len().saturating_sub(1)]);
    let line = find(yaml, path, occurrence)?;
    // `find` falls back to the deepest ancestor: only a line below the parent's is the key's.
    (occurrence == 0 || Some(line) != parent).then_some(line)
}

fn find(yaml: &str, path: &[Seg], last_occurrence: usize) -> Option<usize> {
    let lines: Vec<Line> = yaml
        .lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let text = raw.trim_start();
            if text.is_empty() || text.starts_with('#') || text.starts_with("---") {
                return None;
            }
            Some(Line { number: i + 1, indent: raw.len() - text.len(), text })
        })
        .collect();
    // The current node: lines[start..end] holds its children; `inline` is text on the node's own
    // line that may hold its first child (after `- `).
    let (mut start, mut end): (usize, usize) = (0, lines.len());
    let mut parent_indent: isize;
    let mut inline: Option<(usize, &str, usize)> = None; // (line index, text, column)
    let mut found = None;
    for (depth, seg) in path.iter().enumerate() {
        match seg {
            Seg::Key(key) => {
                let mut skip = if depth + 1 == path.len() { last_occurrence } else { 0 };
                let mut hit = None;
                if let Some((idx, text, col)) = inline {
                    if key_matches(text, key) {
                        if skip == 0 {
                            hit = Some((idx, col));
                        } else {
                            skip -= 1;
                        }
                    }
                }
                if hit.is_none() {
                    let child_indent = lines[start..end].first().map(|l| l.indent);
                    hit = lines[start..end]
                        .iter()
                        .enumerate()
                        .filter(|(_, l)| Some(l.indent) == child_indent && key_matches(l.text, key))
                        .nth(skip)
                        .map(|(i, l)| (start + i, l.indent));
                }
                let Some((idx, col)) = hit else { return found };
                found = Some(lines[idx].number);
                parent_indent = col as isize;
                start = idx + 1;
                end = block_end(&lines, start, parent_indent, true);
                inline = None;
            }
            Seg::Index(n) => {
                let items: Vec<usize> = (start..end)
                    .filter(|&i| lines[i].text.starts_with("- ") || lines[i].text == "-")
                    .filter(|&i| lines[start..end].first().map(|l| l.indent) == Some(lines[i].indent))
                    .collect();
                let Some(&idx) = items.get(*n) else {
                    return found;
                };
                found = Some(lines[idx].number);
                let dash = lines[idx].indent;
                let after = lines[idx].text[1..].trim_start();
                inline = Some((idx, after, dash + (lines[idx].text.len() - after.len())));
                parent_indent = dash as isize;
                start = idx + 1;
                end = block_end(&lines, start, parent_indent, false);
            }
        }
    }
    found
}

/// Where the block of a node at `parent_indent` ends. Under a mapping key, a sequence may sit at
/// the key's own indent (`key:\n- item`).
fn block_end(lines: &[Line], start: usize, parent_indent: isize, under_key: bool) -> usize {
    let dash = |l: &Line| l.text.starts_with('-');
    let seq_at_parent = under_key && lines.get(start).is_some_and(|l| l.indent as isize == parent_indent && dash(l));
    (start..lines.len())
        .find(|&i| {
            let l = &lines[i];
            let indent = l.indent as isize;
            indent < parent_indent || (indent == parent_indent && !(seq_at_parent && dash(l)))
        })
        .unwrap_or(lines.len())
}

fn key_matches(text: &str, key: &str) -> bool {
    let text = text.trim_start_matches("- ");
    for quoted in [key.to_owned(), format!("\"{key}\""), format!("'{key}'")] {
        if let Some(rest) = text.strip_prefix(quoted.as_str()) {
            if rest.trim_start().starts_with(':') {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::path::{parse, render};

    const YAML: &str = "\
source:
  type: dynamodb
  table: PetTracker   # comment
sinks:
  replica:
    type: alternator
    table: Pets
routes:
  - name: all
    sinks: [replica]
  - name: dogs
    processors: [only-dogs]
    sinks:
      - replica
";

    #[test]
    fn finds_keys_items_and_inline_keys() {
        let at = |p: &str| line_of(YAML, &parse(p));
        assert_eq!(at("source.table"), Some(3));
        assert_eq!(at("sinks.replica.table"), Some(7));
        assert_eq!(at("routes[0]"), Some(9));
        assert_eq!(at("routes[0].name"), Some(9));
        assert_eq!(at("routes[1].processors"), Some(12));
        assert_eq!(at("routes[1].sinks[0]"), Some(14));
        // Unknown leaf: the deepest known ancestor.
        assert_eq!(at("sinks.replica.nope"), Some(5));
    }

    #[test]
    fn finds_the_second_occurrence_of_a_key() {
        let yaml = "sinks:\n  a: {type: null}\n  b: {type: null}\n  a: {type: stdout}\n";
        assert_eq!(line_of_occurrence(yaml, &parse("sinks.a"), 0), Some(2));
        assert_eq!(line_of_occurrence(yaml, &parse("sinks.a"), 1), Some(4));
        assert_eq!(line_of_occurrence(yaml, &parse("sinks.b"), 1), None);
    }

    #[test]
    fn accepts_sequences_at_the_parent_indent() {
        let yaml = "routes:\n- name: a\n- name: b\n  sinks: [x]\n";
        assert_eq!(line_of(yaml, &parse("routes[1].sinks")), Some(4));
    }

    #[test]
    fn renders_and_parses_paths() {
        let p = parse("routes[1].sinks[0]");
        assert_eq!(p, vec![Seg::Key("routes".into()), Seg::Index(1), Seg::Key("sinks".into()), Seg::Index(0)]);
        assert_eq!(render(&p), "routes[1].sinks[0]");
    }
}
