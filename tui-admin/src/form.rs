//! A small form: labelled text fields (some masked), Tab/arrows to move, Enter on the last
//! field to submit (the app checks it and shows a problem inline).

use crate::app::Key;

#[derive(Debug, Clone)]
pub struct Field {
    pub label: String,
    pub value: String,
    /// Shown as dots (API keys).
    pub masked: bool,
}

impl Field {
    pub fn new(label: &str, masked: bool) -> Self {
        Self { label: label.into(), value: String::new(), masked }
    }

    /// What the screen shows.
    pub fn shown(&self) -> String {
        if self.masked { "•".repeat(self.value.chars().count()) } else { self.value.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct Form {
    pub title: String,
    pub fields: Vec<Field>,
    pub focus: usize,
    pub error: Option<String>,
}

impl Form {
    pub fn new(title: String, fields: Vec<Field>) -> Self {
        Self { title, fields, focus: 0, error: None }
    }

    pub fn on_last(&self) -> bool {
        self.focus + 1 >= self.fields.len()
    }

    pub fn on_key(&mut self, key: Key) {
        match key {
            Key::Tab | Key::Down | Key::Enter => self.focus = (self.focus + 1).min(self.fields.len() - 1),
            Key::BackTab | Key::Up => self.focus = self.focus.saturating_sub(1),
            Key::Backspace => {
                self.fields[self.focus].value.pop();
            }
            Key::Char(c) => self.fields[self.focus].value.push(c),
            _ => {}
        }
    }
}
