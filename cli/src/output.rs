//! Output helpers: styles (stripped automatically by anstream when stdout is not a terminal
//! or `NO_COLOR` is set), aligned tables, JSON.

use anstyle::{AnsiColor, Style};

pub const OK: Style = AnsiColor::Green.on_default();
pub const ERROR: Style = AnsiColor::Red.on_default().bold();
pub const DIM: Style = Style::new().dimmed();
pub const HEADER: Style = Style::new().bold();

/// Prints rows as left-aligned columns; the first row is the header.
pub fn print_table(rows: &[Vec<(String, Style)>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|(t, _)| t.chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, (text, style)) in row.iter().enumerate() {
            let pad = if i + 1 == row.len() { 0 } else { widths[i] - text.chars().count() + 2 };
            line.push_str(&format!("{}{text}{}{}", style.render(), style.render_reset(), " ".repeat(pad)));
        }
        anstream::println!("{}", line.trim_end());
    }
}

/// Pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into()));
}
