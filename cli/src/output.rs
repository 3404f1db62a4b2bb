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

/// Parses a command-line value into one of the API's enums (`--status`, `--type`); a bad
/// value is a usage error that names it.
pub fn api_enum<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("'{s}' is not one of the values this option takes (see --help)"))
}

/// A page size as the API takes it (1–200).
pub fn page(limit: u32) -> Option<std::num::NonZeroU32> {
    std::num::NonZeroU32::new(limit.clamp(1, 200))
}

/// Turns a value into the API's typed field (lengths, patterns and formats as the spec
/// states them); a value the API would refuse is a usage error that names the field.
pub fn field<T>(what: &str, value: impl AsRef<str>) -> Result<T, crate::exit::CliError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let value = value.as_ref();
    value.parse().map_err(|e| crate::exit::CliError::usage(format!("{what}: {e}")))
}

/// [`field`] for an optional value.
pub fn opt_field<T>(what: &str, value: Option<impl AsRef<str>>) -> Result<Option<T>, crate::exit::CliError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value.map(|v| field(what, v)).transpose()
}
