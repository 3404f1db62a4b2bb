//! The console's screens, one file each behind [`Screen`] (gitui's components are the
//! model): what a screen loads, its keys, how a key or a submitted form changes it, and how
//! it draws. [`App`](crate::app::App) owns one of each and the [`Shell`] they share; the
//! tab decides which one gets the keys and the body of the frame.

pub mod content;
pub mod dashboard;
pub mod providers;
pub mod tasks;
pub mod tools;
pub mod users;

use ratatui::Frame;
use ratatui::layout::Rect;

use crate::app::{Effect, FormAction, Key, Shell};
use crate::form::Form;
use crate::io::Request;
use crate::ui::Theme;

/// One screen of the console.
pub trait Screen {
    /// Its name on the tab bar (also the key of its filter).
    fn title(&self) -> &'static str;

    /// Its own keys, for the hint bar and the help.
    fn keys(&self) -> &'static [(&'static str, &'static str)];

    /// What to fetch to show it; `None` when there is nothing for this user.
    fn load(&self, shell: &Shell) -> Option<Request>;

    /// Whether `/` types a filter here.
    fn filterable(&self) -> bool {
        false
    }

    /// Rows the selection moves over.
    fn list_len(&self, _shell: &Shell) -> usize {
        0
    }

    /// The selected row, if the screen has a list.
    fn selected_mut(&mut self) -> Option<&mut usize> {
        None
    }

    /// `esc`: close what the screen shows beside its list.
    fn close_detail(&mut self) {}

    /// A key the console did not take (movement, tabs and filters are shared).
    fn on_key(&mut self, _key: Key, _shell: &mut Shell) -> Option<Effect> {
        None
    }

    /// A form this screen opened was submitted: check it and send (or confirm) it.
    fn on_form(&mut self, _form: &Form, _action: &FormAction, _shell: &mut Shell) -> Result<(), String> {
        Ok(())
    }

    fn draw(&self, frame: &mut Frame, area: Rect, shell: &Shell, theme: &Theme);
}

pub(crate) fn parse_time(s: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.with_timezone(&chrono::Utc)))
        .map_err(|_| format!("'{s}' is not an RFC 3339 time (like 2026-12-01T00:00:00Z)"))
}

/// A field the spec constrains, checked as the server will check it.
pub(crate) fn text<T: std::str::FromStr>(field: &str, value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| format!("VALIDATION_FAILED: {field}: {e}"))
}

pub(crate) fn opt_text<T: std::str::FromStr>(field: &str, value: Option<&str>) -> Result<Option<T>, String>
where
    T::Err: std::fmt::Display,
{
    value.map(|v| text(field, v)).transpose()
}
