//! Tools: the list (filtered here: it is small), enable/disable, the config edited as JSON
//! in `$EDITOR` (the server's objection is kept beside the text until it is fixed), new
//! tools written whole in `$EDITOR` from a template, and the tool types (with a form for a
//! new one).

use funmagic_sdk::types;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::Span;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Wrap};
use uuid::Uuid;

use super::{Screen, opt_text, text};
use crate::app::{Dialog, Effect, FormAction, Key, Shell};
use crate::form::{Field, Form};
use crate::io::Request;
use crate::ui::{Theme, table};

#[derive(Debug, Default)]
pub struct ToolsScreen {
    pub list: Vec<types::Tool>,
    pub selected: usize,
    /// The server's word on the last edit, shown under the list.
    pub invalid: Option<(Uuid, String, serde_json::Value)>,
    pub types: Vec<types::ToolType>,
    /// A new tool's text as last written (reopened by `n` until it is created).
    pub draft: Option<String>,
}

impl ToolsScreen {
    /// Tools matching the filter (client-side: the list is small).
    pub fn visible(&self, shell: &Shell) -> Vec<&types::Tool> {
        let filter = shell.filter_of(self.title()).map(|f| f.to_lowercase());
        self.list
            .iter()
            .filter(|t| {
                filter
                    .as_ref()
                    .is_none_or(|f| t.slug.contains(f.as_str()) || t.title.to_lowercase().contains(f.as_str()))
            })
            .collect()
    }

    /// The edited text of a tool's config: checked as JSON here, then by the server.
    pub fn on_edited(&mut self, id: Uuid, text: &str, shell: &mut Shell) {
        let Some(tool) = self.list.iter().find(|t| t.id == id).cloned() else { return };
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(config) if Some(&config) == tool.config.as_ref() => {
                self.invalid = None;
                shell.info("no change");
            }
            Ok(config) => {
                self.invalid = None;
                match tool_input(&tool, config, tool.is_active) {
                    Ok(input) => shell.send(Request::SaveTool { id, input: Box::new(input) }),
                    Err(e) => shell.error(e),
                }
            }
            Err(e) => {
                let config = serde_json::Value::String(text.to_string());
                self.invalid = Some((id, format!("not JSON: {e}"), config));
                shell.error(format!("INVALID_JSON: {e} — press e to fix it"));
            }
        }
    }
}

impl ToolsScreen {
    /// A new tool's definition to start from: the API's ToolInput, off until enabled.
    pub fn template(&self) -> String {
        let kind = self.types.first().map(|t| t.id.to_string()).unwrap_or_default();
        let provider = self
            .list
            .iter()
            .flat_map(|t| t.config.as_ref().and_then(|c| c["steps"][0]["providerId"].as_str().map(str::to_string)))
            .next()
            .unwrap_or_default();
        let template = serde_json::json!({
            "slug": "my-tool",
            "title": "My tool",
            "description": "What it does",
            "toolTypeId": kind,
            "isActive": false,
            "config": { "steps": [
                { "id": "echo", "name": "Echo", "type": "echo", "providerId": provider, "providerModel": "echo", "cost": 1 }
            ] }
        });
        serde_json::to_string_pretty(&template).unwrap_or_default()
    }

    /// A new tool's text came back from the editor: checked as JSON here, then by the server.
    pub fn on_new(&mut self, text: &str, shell: &mut Shell) {
        self.draft = Some(text.to_string());
        match serde_json::from_str::<types::ToolInput>(text) {
            Ok(input) => shell.send(Request::CreateTool(Box::new(input))),
            Err(e) => shell.error(format!("INVALID_TOOL: {e} — press n to fix it")),
        }
    }
}

impl Screen for ToolsScreen {
    fn title(&self) -> &'static str {
        "Tools"
    }

    fn keys(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("/", "filter"),
            ("e", "edit JSON in $EDITOR"),
            ("space", "enable/disable"),
            ("n", "new tool"),
            ("T", "new tool type"),
        ]
    }

    fn load(&self, _shell: &Shell) -> Option<Request> {
        Some(Request::Tools)
    }

    fn filterable(&self) -> bool {
        true
    }

    fn list_len(&self, shell: &Shell) -> usize {
        self.visible(shell).len()
    }

    fn selected_mut(&mut self) -> Option<&mut usize> {
        Some(&mut self.selected)
    }

    fn on_key(&mut self, key: Key, shell: &mut Shell) -> Option<Effect> {
        match key {
            Key::Char('n') => {
                let config = self.draft.clone().unwrap_or_else(|| self.template());
                return Some(Effect::EditTool { id: None, config });
            }
            Key::Char('T') => {
                let form = Form::new(
                    "New tool type".into(),
                    vec![
                        Field::new("Name (a-z, 0-9, -)", false),
                        Field::new("Display name", false),
                        Field::new("Colour (#rrggbb, optional)", false),
                    ],
                );
                shell.dialog = Some(Dialog::Form(form, FormAction::ToolType));
                return None;
            }
            _ => {}
        }
        let tool = self.visible(shell).get(self.selected).map(|t| (*t).clone())?;
        match key {
            Key::Char(' ') => match tool.config.clone().map(|c| tool_input(&tool, c, !tool.is_active)) {
                Some(Ok(input)) => shell.send(Request::SaveTool { id: tool.id, input: Box::new(input) }),
                Some(Err(e)) => shell.error(e),
                None => shell.error("INCOMPLETE_TOOL: the listing lacks this tool's config; press r"),
            },
            Key::Char('e') => {
                let config = match (&self.invalid, &tool.config) {
                    (Some((id, _, config)), _) if *id == tool.id => config.clone(),
                    (_, Some(config)) => config.clone(),
                    (_, None) => {
                        shell.error("INCOMPLETE_TOOL: the listing lacks this tool's config; press r");
                        return None;
                    }
                };
                let text = serde_json::to_string_pretty(&config).unwrap_or_default();
                return Some(Effect::EditTool { id: Some(tool.id), config: text });
            }
            _ => {}
        }
        None
    }

    fn on_form(&mut self, form: &Form, action: &FormAction, shell: &mut Shell) -> Result<(), String> {
        if !matches!(action, FormAction::ToolType) {
            return Ok(());
        }
        let value = |i: usize| form.fields[i].value.trim().to_string();
        let name = value(0);
        let _: types::Slug60 = text("name", &name)?;
        let display_name = if value(1).is_empty() { name.clone() } else { value(1) };
        let color = Some(value(2)).filter(|c| !c.is_empty());
        shell.send(Request::CreateToolType { name, display_name, color });
        Ok(())
    }

    fn draw(&self, frame: &mut Frame, area: Rect, shell: &Shell, theme: &Theme) {
        let invalid = self.invalid.as_ref();
        let [list, types_area, note] = Layout::vertical([
            Constraint::Min(4),
            Constraint::Length(if self.types.is_empty() { 0 } else { 3 }),
            Constraint::Length(if invalid.is_some() { 4 } else { 0 }),
        ])
        .areas(area);
        let kinds: Vec<Span> = self
            .types
            .iter()
            .flat_map(|t| [Span::styled(t.name.clone(), theme.bold()), Span::raw(format!(" ({})   ", t.display_name))])
            .collect();
        frame.render_widget(
            Paragraph::new(ratatui::text::Line::from(kinds)).block(Block::bordered().title(" Tool types (T: new) ")),
            types_area,
        );
        let rows = self
            .visible(shell)
            .iter()
            .map(|t| {
                let steps: Vec<String> = t.steps.iter().map(|s| format!("{}:{}", s.type_, s.provider_model)).collect();
                Row::new(vec![
                    Cell::from(t.slug.clone()),
                    Cell::from(if t.is_active { Span::styled("on", theme.fg(Color::Green)) } else { Span::raw("off") }),
                    Cell::from(t.credits_cost.to_string()),
                    Cell::from(steps.join(" → ")),
                ])
            })
            .collect();
        let widths = [Constraint::Length(20), Constraint::Length(4), Constraint::Length(5), Constraint::Min(10)];
        table(frame, list, " Tools ".into(), &["SLUG", "ON", "COST", "STEPS"], &widths, rows, self.selected, theme);
        if let Some((_, message, _)) = invalid {
            frame.render_widget(
                Paragraph::new(Span::styled(message.clone(), theme.fg(Color::Red)))
                    .wrap(Wrap { trim: true })
                    .block(Block::bordered().title(" Not saved — press e to fix ")),
                note,
            );
        }
    }
}

/// The tool as written back; an error if the listing lacked its type (nothing is sent
/// then, rather than a nil type id).
fn tool_input(tool: &types::Tool, config: serde_json::Value, active: bool) -> Result<types::ToolInput, String> {
    Ok(types::ToolInput {
        slug: text("slug", &tool.slug)?,
        title: text("title", &tool.title)?,
        description: opt_text("description", tool.description.as_deref())?,
        tool_type_id: tool.tool_type.as_ref().ok_or("INCOMPLETE_TOOL: the listing lacks this tool's type; press r")?.id,
        config,
        is_active: Some(active),
        featured: Some(tool.featured),
        position: Some(tool.position),
    })
}
