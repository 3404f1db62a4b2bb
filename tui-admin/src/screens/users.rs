//! Users: search, details (credits, recent tasks, transactions), credit adjustments, bans,
//! sign-out everywhere, roles.

use funmagic_sdk::types;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row};

use super::Screen;
use crate::app::{Confirm, Dialog, Effect, FormAction, Key, Shell};
use crate::form::{Field, Form};
use crate::io::{Request, UserDetail, short};
use crate::ui::{Theme, table, time};

#[derive(Debug, Default)]
pub struct UsersScreen {
    pub list: Vec<types::User>,
    pub selected: usize,
    pub detail: Option<UserDetail>,
}

impl Screen for UsersScreen {
    fn title(&self) -> &'static str {
        "Users"
    }

    fn keys(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("/", "search"),
            ("enter", "open"),
            ("c", "adjust credits"),
            ("b", "ban/unban"),
            ("s", "sign out"),
            ("D", "delete"),
            ("o", "change role"),
        ]
    }

    fn load(&self, shell: &Shell) -> Option<Request> {
        Some(Request::Users { query: shell.filter_of(self.title()) })
    }

    fn filterable(&self) -> bool {
        true
    }

    fn list_len(&self, _shell: &Shell) -> usize {
        self.list.len()
    }

    fn selected_mut(&mut self) -> Option<&mut usize> {
        Some(&mut self.selected)
    }

    fn close_detail(&mut self) {
        self.detail = None;
    }

    fn on_key(&mut self, key: Key, shell: &mut Shell) -> Option<Effect> {
        let user = self.list.get(self.selected).cloned()?;
        match key {
            Key::Enter => shell.send(Request::UserDetail(user.id)),
            Key::Char('c') => {
                let before = self.detail.as_ref().filter(|d| d.user.id == user.id).map(|d| d.credits.balance);
                let Some(before) = before else {
                    shell.send(Request::UserDetail(user.id));
                    shell.info("loading the user's credits — press c again");
                    return None;
                };
                let form = Form::new(
                    format!("Adjust credits of {}", user.email),
                    vec![Field::new("Amount (+/-)", false), Field::new("Reason", false)],
                );
                shell.dialog =
                    Some(Dialog::Form(form, FormAction::Adjust { user: user.id, email: user.email, before }));
            }
            Key::Char('b') => {
                shell.dialog = Some(Dialog::Confirm(if user.banned {
                    Confirm::Unban { user: user.id, email: user.email }
                } else {
                    Confirm::Ban { user: user.id, email: user.email }
                }));
            }
            Key::Char('D') => {
                shell.dialog = Some(Dialog::Confirm(Confirm::Delete { user: user.id, email: user.email }))
            }
            Key::Char('s') => {
                shell.dialog = Some(Dialog::Confirm(Confirm::Revoke { user: user.id, email: user.email }))
            }
            Key::Char('o') => {
                if !shell.is_super() {
                    shell.error("FORBIDDEN: only a super_admin changes roles");
                    return None;
                }
                let role = match user.role {
                    types::UserRole::User => types::UserRole::Admin,
                    types::UserRole::Admin => types::UserRole::SuperAdmin,
                    types::UserRole::SuperAdmin => types::UserRole::User,
                };
                shell.dialog = Some(Dialog::Confirm(Confirm::SetRole { user: user.id, email: user.email, role }));
            }
            _ => {}
        }
        None
    }

    fn on_form(&mut self, form: &Form, action: &FormAction, shell: &mut Shell) -> Result<(), String> {
        let FormAction::Adjust { user, email, before } = action else { return Ok(()) };
        let v = |i: usize| form.fields[i].value.trim().to_string();
        let amount: i64 =
            v(0).trim_start_matches('+').parse().map_err(|_| "the amount must be a whole number".to_string())?;
        if amount == 0 {
            return Err("the amount must not be 0".into());
        }
        if v(1).is_empty() {
            return Err("give a reason".into());
        }
        shell.dialog = Some(Dialog::Confirm(Confirm::Adjust {
            user: *user,
            email: email.clone(),
            amount,
            reason: v(1),
            before: *before,
        }));
        Ok(())
    }

    fn draw(&self, frame: &mut Frame, area: Rect, shell: &Shell, theme: &Theme) {
        let [list, detail] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
        let rows = self
            .list
            .iter()
            .map(|u| {
                Row::new(vec![
                    Cell::from(u.email.clone()),
                    Cell::from(u.role.to_string()),
                    Cell::from(if u.banned { Span::styled("banned", theme.fg(Color::Red)) } else { Span::raw("") }),
                ])
            })
            .collect();
        let title = match shell.filter_of(self.title()) {
            Some(f) => format!(" Users matching '{f}' "),
            None => " Users ".into(),
        };
        let widths = [Constraint::Min(20), Constraint::Length(12), Constraint::Length(7)];
        table(frame, list, title, &["EMAIL", "ROLE", ""], &widths, rows, self.selected, theme);
        let lines = match &self.detail {
            Some(d) => {
                let mut lines = vec![
                    Line::styled(d.user.email.clone(), theme.bold()),
                    Line::from(format!(
                        "{} · {} · joined {}",
                        d.user.name,
                        d.user.role,
                        d.user.created_at.format("%Y-%m-%d")
                    )),
                    Line::from(format!(
                        "credits {} (reserved {}, available {})",
                        d.credits.balance, d.credits.reserved, d.credits.available
                    )),
                    Line::from(""),
                    Line::styled("recent tasks", theme.bold()),
                ];
                for t in &d.tasks {
                    lines.push(Line::from(vec![
                        Span::raw(format!("{} ", short(&t.id))),
                        Span::styled(format!("{:<10}", t.status.to_string()), theme.status(t.status)),
                        Span::raw(format!(" {}", time(&t.created_at))),
                    ]));
                }
                lines.push(Line::from(""));
                lines.push(Line::styled("transactions", theme.bold()));
                for tx in &d.transactions {
                    let what = match (tx.amount, tx.reserved_delta) {
                        (0, r) if r > 0 => format!("{:>6} held", r),
                        (0, r) if r < 0 => format!("{:>6} freed", -r),
                        (a, _) => format!("{a:+6}"),
                    };
                    lines.push(Line::from(format!("{what:<12} {:<13} → {}", tx.type_.to_string(), tx.balance_after)));
                }
                lines
            }
            None => vec![Line::from("enter: show the selected user")],
        };
        frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(" Details ")), detail);
    }
}
