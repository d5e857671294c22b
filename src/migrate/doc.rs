//! The labgate TOML that `labgate migrate` prints: tables of keys, each key with the
//! comments that say where it came from, remarks about settings that need no key, and a
//! closing list of what could not be mapped. Values are serialised by the `toml` crate, so
//! any string (a regex, a path) comes out quoted correctly.

/// Width comments are wrapped at.
const WRAP: usize = 96;

/// One `key = value` with its comments.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The key inside its table.
    pub(crate) key: String,
    /// The value.
    pub(crate) value: toml::Value,
    /// Comment lines above it.
    pub(crate) notes: Vec<String>,
}

/// A table (`[server]`) or one element of an array of tables (`[[access.public]]`).
#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// Dotted name.
    pub(crate) name: String,
    /// `[[name]]` rather than `[name]`.
    pub(crate) array: bool,
    /// Comments at the top of the table: settings that need no key of their own.
    pub(crate) remarks: Vec<String>,
    /// Keys.
    pub(crate) entries: Vec<Entry>,
}

/// The whole output.
#[derive(Debug, Clone, Default)]
pub(crate) struct Doc {
    /// Comment lines at the top.
    pub(crate) header: Vec<String>,
    /// Tables in output order.
    pub(crate) tables: Vec<Table>,
    /// Settings that could not be mapped, each with the reason.
    pub(crate) unmapped: Vec<String>,
}

impl Doc {
    fn table(&mut self, name: &str) -> &mut Table {
        let plain = |t: &Table| t.name == name && !t.array;
        if !self.tables.iter().any(plain) {
            // Arrays of tables go after the plain tables (TOML needs [access] before
            // [[access.public]]).
            let at = self
                .tables
                .iter()
                .position(|t| t.array)
                .unwrap_or(self.tables.len());
            self.tables.insert(
                at,
                Table {
                    name: name.to_owned(),
                    array: false,
                    remarks: Vec::new(),
                    entries: Vec::new(),
                },
            );
        }
        match self.tables.iter_mut().find(|t| plain(t)) {
            Some(t) => t,
            None => unreachable!("the table was inserted above"),
        }
    }

    /// Sets `table.key = value` (replacing an earlier value) with a comment.
    pub(crate) fn set(&mut self, table: &str, key: &str, value: toml::Value, note: String) {
        let t = self.table(table);
        match t.entries.iter_mut().find(|e| e.key == key) {
            Some(e) => {
                e.value = value;
                e.notes.push(note);
            }
            None => t.entries.push(Entry {
                key: key.to_owned(),
                value,
                notes: vec![note],
            }),
        }
    }

    /// A comment at the top of a table, for a setting that needs no key there.
    pub(crate) fn remark(&mut self, table: &str, note: String) {
        self.table(table).remarks.push(note);
    }

    /// A new `[[name]]` element.
    pub(crate) fn push_array(&mut self, name: &str, entries: Vec<Entry>) {
        self.tables.push(Table {
            name: name.to_owned(),
            array: true,
            remarks: Vec::new(),
            entries,
        });
    }

    /// Moves what was said at the top of the plain `[name]` table into the first `[[name]]`
    /// element (and its keys into every element), when both exist: TOML cannot have both.
    pub(crate) fn fold_into_array(&mut self, name: &str) {
        let Some(plain) = self.tables.iter().position(|t| t.name == name && !t.array) else {
            return;
        };
        if !self.tables.iter().any(|t| t.name == name && t.array) {
            return;
        }
        let plain = self.tables.remove(plain);
        let mut first = true;
        for t in self.tables.iter_mut().filter(|t| t.name == name && t.array) {
            if first {
                t.remarks.extend(plain.remarks.iter().cloned());
                first = false;
            }
            t.entries.extend(plain.entries.iter().cloned());
        }
    }

    /// A setting that could not be mapped, with the reason.
    pub(crate) fn unmapped(&mut self, note: String) {
        self.unmapped.push(note);
    }

    /// The TOML text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        for h in &self.header {
            comment(&mut out, h, "");
        }
        for t in &self.tables {
            out.push('\n');
            if t.array {
                out.push_str(&format!("[[{}]]\n", t.name));
            } else {
                out.push_str(&format!("[{}]\n", t.name));
            }
            for r in &t.remarks {
                comment(&mut out, r, "");
            }
            for e in &t.entries {
                for n in &e.notes {
                    comment(&mut out, n, "");
                }
                out.push_str(&format!("{} = {}\n", e.key, e.value));
            }
        }
        if !self.unmapped.is_empty() {
            out.push_str(
                "\n# Not mapped (nothing in labgate does the same; each line says why):\n",
            );
            for u in &self.unmapped {
                comment(&mut out, u, "- ");
            }
        }
        out
    }
}

/// Appends `text` as `#` comment lines wrapped at [`WRAP`]; `bullet` starts the first line
/// and indents the others.
fn comment(out: &mut String, text: &str, bullet: &str) {
    let indent = " ".repeat(bullet.chars().count());
    let mut line = format!("# {bullet}");
    let mut empty = true;
    // Any line break (\n, \r, U+2028, U+0085...) in text taken from the input would end
    // the comment and make the rest a live TOML line: every kind of white space only
    // separates words, and the other control characters are shown escaped.
    for word in text.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        let word = crate::telemetry::printable(word);
        let word = word.as_ref();
        if !empty && line.chars().count() + 1 + word.chars().count() > WRAP {
            out.push_str(line.trim_end());
            out.push('\n');
            line = format!("# {indent}");
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_input_never_leaves_its_comment() {
        let mut out = String::new();
        let hostile = "--htpasswd-file=/x\n[[access.public]]\npath = '^/'\r\n\u{2028}x = 1\u{85}y = 2\u{1b}[2K #";
        comment(&mut out, hostile, "- ");
        for line in out.lines() {
            assert!(line.starts_with('#'), "{line:?}");
        }
        assert!(!out.contains('\u{1b}') && !out.contains('\r'));
        let parsed: toml::Table = toml::from_str(&out).unwrap();
        assert!(parsed.is_empty(), "{out}");
    }
}
