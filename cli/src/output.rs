//! Output helpers: styles (stripped automatically by anstream when stdout is not a terminal
//! or `NO_COLOR` is set), aligned tables, JSON.

use anstyle::{AnsiColor, Style};

pub const OK: Style = AnsiColor::Green.on_default();
pub const ERROR: Style = AnsiColor::Red.on_default().bold();
pub const DIM: Style = Style::new().dimmed();
pub const HEADER: Style = Style::new().bold();

/// The terminal's width when stdout is one (tables are cut to it), else `None` (a pipe or
/// file gets whole rows).
fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    terminal_size::terminal_size().map(|(w, _)| w.0 as usize).filter(|w| *w >= 20)
}

/// `text` cut to `max` characters, with `…` when cut.
pub fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Column widths for `rows` within `width`: the widest columns give up space first (never
/// below 8 characters, or their header's length).
fn fit_widths(rows: &[Vec<(String, Style)>], width: Option<usize>) -> Vec<usize> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|(t, _)| t.chars().count()).max().unwrap_or(0))
        .collect();
    let Some(width) = width else { return widths };
    let floor: Vec<usize> = (0..columns)
        .map(|c| rows.first().and_then(|r| r.get(c)).map(|(t, _)| t.chars().count()).unwrap_or(0).max(8))
        .collect();
    let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
    while total(&widths) > width {
        let Some((i, _)) = widths.iter().enumerate().filter(|(i, w)| **w > floor[*i]).max_by_key(|(_, w)| **w) else {
            break;
        };
        widths[i] -= 1;
    }
    widths
}

/// Prints rows as left-aligned columns; the first row is the header. On a terminal the
/// table fits its width (long cells are cut with `…`); piped, rows are whole.
pub fn print_table(rows: &[Vec<(String, Style)>]) {
    let widths = fit_widths(rows, terminal_width());
    for row in rows {
        let mut line = String::new();
        for (i, (text, style)) in row.iter().enumerate() {
            let text = fit(text, widths[i]);
            let pad = if i + 1 == row.len() { 0 } else { widths[i] - text.chars().count() + 2 };
            line.push_str(&format!("{}{text}{}{}", style.render(), style.render_reset(), " ".repeat(pad)));
        }
        anstream::println!("{}", line.trim_end());
    }
}

/// A table's header row.
pub fn header(titles: &[&str]) -> Vec<(String, Style)> {
    titles.iter().map(|t| (t.to_string(), HEADER)).collect()
}

/// A JSON document from a file (`-`: standard input); a missing file or bad JSON is a usage
/// error that names the file.
pub fn read_json_file(file: &std::path::Path) -> Result<serde_json::Value, crate::exit::CliError> {
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| crate::exit::CliError::other(format!("reading stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(file).map_err(|e| crate::exit::CliError::usage(format!("{}: {e}", file.display())))?
    };
    serde_json::from_str(&text).map_err(|e| crate::exit::CliError::usage(format!("{}: not JSON: {e}", file.display())))
}

/// Says on stderr that a list has more pages.
pub fn more_hint(more: bool) {
    if more {
        anstream::eprintln!("{}(more: --paginate for every page, or --limit){}", DIM.render(), DIM.render_reset());
    }
}

/// The part of an id that tells ids apart in a table: UUIDv7 ids begin with their creation
/// time, so ids made together share their first digits; the last 8 hex digits are random.
pub fn short_id(id: &uuid::Uuid) -> String {
    let simple = id.simple().to_string();
    format!("…{}", &simple[simple.len() - 8..])
}

/// Whether `given` names `id`: the whole id, or at least 4 hex digits from its start or
/// its end (the short form tables show, with or without the `…`), like git's short hashes.
pub fn id_matches(id: &uuid::Uuid, given: &str) -> bool {
    let given: String = given.trim_start_matches('…').trim_start_matches("...").replace('-', "").to_ascii_lowercase();
    if given.len() < 4 || !given.chars().all(|c| c.is_ascii_hexdigit()) {
        return false;
    }
    let simple = id.simple().to_string();
    simple.starts_with(&given) || simple.ends_with(&given)
}

static JQ: std::sync::OnceLock<crate::jq::Filter> = std::sync::OnceLock::new();
static JQ_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Compiles `--jq EXPR` once, for every JSON output of this run.
pub fn set_jq(expr: &str) -> Result<(), crate::exit::CliError> {
    let filter = crate::jq::Filter::new(expr).map_err(crate::exit::CliError::usage)?;
    let _ = JQ.set(filter);
    Ok(())
}

/// Whether a `--jq` program failed on some output (the run then exits 1).
pub fn jq_failed() -> bool {
    JQ_FAILED.load(std::sync::atomic::Ordering::Relaxed)
}

/// JSON on stdout: pretty, or through `--jq` when given.
pub fn print_json(value: &impl serde::Serialize) {
    let Some(filter) = JQ.get() else {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into()));
        return;
    };
    let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    match filter.run(&value) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
        }
        Err(e) => {
            JQ_FAILED.store(true, std::sync::atomic::Ordering::Relaxed);
            anstream::eprintln!("{}error:{} {e}", ERROR.render(), ERROR.render_reset());
        }
    }
}

/// [`print_json`] for commands that return a `Result`.
pub fn emit_json(_ctx: &crate::context::Context, value: &impl serde::Serialize) -> Result<(), crate::exit::CliError> {
    print_json(value);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_tell_v7_ids_apart_and_name_them() {
        let a = uuid::Uuid::parse_str("0193a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b").unwrap();
        assert_eq!(short_id(&a), "…3e4f5a6b");
        for ok in ["…3e4f5a6b", "3e4f5a6b", "5a6b", "0193a1b2", "0193A1B2-C3D4", "0193a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b"]
        {
            assert!(id_matches(&a, ok), "{ok}");
        }
        for bad in ["5a6", "zzzz", "", "3e4f5a6c"] {
            assert!(!id_matches(&a, bad), "{bad}");
        }
    }

    #[test]
    fn tables_fit_the_width_by_cutting_the_widest_column() {
        let plain = Style::new();
        let rows = vec![
            header(&["ID", "NAME"]),
            vec![("1".to_string(), plain), ("a very long name that does not fit".to_string(), plain)],
        ];
        assert_eq!(fit_widths(&rows, None), [2, 34]);
        assert_eq!(fit_widths(&rows, Some(20)), [2, 16]);
        assert_eq!(fit("abcdef", 4), "abc…");
    }
}
