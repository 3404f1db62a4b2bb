//! AI providers (super admins): add, rotate a key, test, disable.

use funmagic_sdk::types;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Block, Cell, Paragraph, Row};

use super::Screen;
use crate::app::{Dialog, Effect, FormAction, Key, Shell};
use crate::form::{Field, Form};
use crate::io::Request;
use crate::ui::{Theme, table, time};

#[derive(Debug, Default)]
pub struct ProvidersScreen {
    pub list: Vec<types::Provider>,
    pub selected: usize,
}

impl Screen for ProvidersScreen {
    fn title(&self) -> &'static str {
        "Providers"
    }

    fn keys(&self) -> &'static [(&'static str, &'static str)] {
        &[("a", "add"), ("R", "rotate key"), ("t", "test"), ("d", "disable/enable")]
    }

    fn load(&self, shell: &Shell) -> Option<Request> {
        shell.is_super().then_some(Request::Providers)
    }

    fn list_len(&self, _shell: &Shell) -> usize {
        self.list.len()
    }

    fn selected_mut(&mut self) -> Option<&mut usize> {
        Some(&mut self.selected)
    }

    fn on_key(&mut self, key: Key, shell: &mut Shell) -> Option<Effect> {
        if !shell.is_super() {
            return None;
        }
        if key == Key::Char('a') {
            let form = Form::new(
                "Add a provider".into(),
                vec![
                    Field::new("Name", false),
                    Field::new("Type (openai/fal/tripo)", false),
                    Field::new("API key", true),
                    Field::new("Base URL (optional)", false),
                ],
            );
            shell.dialog = Some(Dialog::Form(form, FormAction::AddProvider));
            return None;
        }
        let p = self.list.get(self.selected).cloned()?;
        match key {
            Key::Char('R') => {
                let form = Form::new(format!("New API key for {}", p.name), vec![Field::new("API key", true)]);
                shell.dialog = Some(Dialog::Form(form, FormAction::RotateKey(p.id)));
            }
            Key::Char('t') => shell.send(Request::TestProvider(p.id)),
            Key::Char('d') => shell.send(Request::SetProviderActive { id: p.id, active: !p.is_active }),
            _ => {}
        }
        None
    }

    fn on_form(&mut self, form: &Form, action: &FormAction, shell: &mut Shell) -> Result<(), String> {
        let v = |i: usize| form.fields[i].value.trim().to_string();
        match action {
            FormAction::AddProvider => {
                if v(0).is_empty() || v(2).is_empty() {
                    return Err("name and API key are required".into());
                }
                let base_url = Some(v(3)).filter(|u| !u.is_empty());
                let kind: types::ExternalProviderType =
                    v(1).parse().map_err(|_| format!("'{}' is not a provider type: use openai, fal or tripo", v(1)))?;
                shell.send(Request::AddProvider { name: v(0), kind, key: v(2), base_url });
            }
            FormAction::RotateKey(id) => {
                if v(0).is_empty() {
                    return Err("the key is empty".into());
                }
                shell.send(Request::RotateProviderKey { id: *id, key: v(0) });
            }
            _ => {}
        }
        Ok(())
    }

    fn draw(&self, frame: &mut Frame, area: Rect, shell: &Shell, theme: &Theme) {
        if !shell.is_super() {
            frame.render_widget(
                Paragraph::new("Providers and their keys are for super admins.")
                    .block(Block::bordered().title(" Providers ")),
                area,
            );
            return;
        }
        let rows = self
            .list
            .iter()
            .map(|p| {
                let (word, style) = theme.health(p.is_active, p.is_healthy);
                Row::new(vec![
                    Cell::from(p.name.clone()),
                    Cell::from(p.type_.to_string()),
                    Cell::from(p.key_last4.as_ref().map(|k| format!("…{k}")).unwrap_or_else(|| "-".into())),
                    Cell::from(Span::styled(word, style)),
                    Cell::from(p.health_checked_at.as_ref().map(time).unwrap_or_default()),
                    Cell::from(p.base_url.clone().unwrap_or_default()),
                ])
            })
            .collect();
        let widths = [
            Constraint::Length(14),
            Constraint::Length(7),
            Constraint::Length(6),
            Constraint::Length(10),
            Constraint::Length(12),
            Constraint::Min(10),
        ];
        table(
            frame,
            area,
            " Providers ".into(),
            &["NAME", "TYPE", "KEY", "HEALTH", "CHECKED", "BASE URL"],
            &widths,
            rows,
            self.selected,
            theme,
        );
    }
}
