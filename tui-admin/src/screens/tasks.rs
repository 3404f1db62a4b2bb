//! Tasks of every user: filters (status, tool or user), details with steps and events,
//! cancel, retry; `D` switches to the dead letters (tasks that failed for good).

use funmagic_sdk::types::{self, TaskStatus};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Wrap};

use super::Screen;
use crate::app::{Confirm, Dialog, Effect, Key, Shell};
use crate::io::{Request, TaskDetail, short};
use crate::ui::{Theme, table, time};

#[derive(Debug, Default)]
pub struct TasksScreen {
    pub list: Vec<types::Task>,
    pub selected: usize,
    pub status: Option<TaskStatus>,
    pub detail: Option<TaskDetail>,
    /// The dead letters, while `D` shows them instead of the tasks.
    pub dead: Option<Vec<types::DeadLetter>>,
}

/// The status filter's cycle (`f`).
const CYCLE: [Option<TaskStatus>; 6] = [
    None,
    Some(TaskStatus::Queued),
    Some(TaskStatus::Running),
    Some(TaskStatus::Completed),
    Some(TaskStatus::Failed),
    Some(TaskStatus::Cancelled),
];

impl Screen for TasksScreen {
    fn title(&self) -> &'static str {
        "Tasks"
    }

    fn keys(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("/", "filter tool/user id"),
            ("f", "status"),
            ("enter", "details"),
            ("x", "cancel"),
            ("t", "retry"),
            ("D", "dead letters"),
        ]
    }

    fn load(&self, shell: &Shell) -> Option<Request> {
        if self.dead.is_some() {
            return Some(Request::DeadLetters);
        }
        Some(Request::Tasks { status: self.status, filter: shell.filter_of(self.title()) })
    }

    fn filterable(&self) -> bool {
        true
    }

    fn list_len(&self, _shell: &Shell) -> usize {
        self.dead.as_ref().map_or(self.list.len(), Vec::len)
    }

    fn selected_mut(&mut self) -> Option<&mut usize> {
        Some(&mut self.selected)
    }

    fn close_detail(&mut self) {
        self.detail = None;
    }

    fn on_key(&mut self, key: Key, shell: &mut Shell) -> Option<Effect> {
        if key == Key::Char('D') {
            self.selected = 0;
            self.detail = None;
            if self.dead.take().is_none() {
                self.dead = Some(Vec::new());
            }
            if let Some(request) = self.load(shell) {
                shell.send(request);
            }
            return None;
        }
        if let Some(dead) = &self.dead {
            let letter = dead.get(self.selected)?;
            match key {
                Key::Enter => shell.send(Request::TaskDetail(letter.task_id)),
                Key::Char('t') => shell.dialog = Some(Dialog::Confirm(Confirm::RetryTask(letter.task_id))),
                _ => {}
            }
            return None;
        }
        if key == Key::Char('f') {
            let i = CYCLE.iter().position(|s| *s == self.status).unwrap_or(0);
            self.status = CYCLE[(i + 1) % CYCLE.len()];
            self.selected = 0;
            if let Some(request) = self.load(shell) {
                shell.send(request);
            }
            return None;
        }
        let task = self.list.get(self.selected).cloned()?;
        match key {
            Key::Enter => shell.send(Request::TaskDetail(task.id)),
            Key::Char('x') => shell.dialog = Some(Dialog::Confirm(Confirm::CancelTask(task.id))),
            Key::Char('t') => shell.dialog = Some(Dialog::Confirm(Confirm::RetryTask(task.id))),
            _ => {}
        }
        None
    }

    fn draw(&self, frame: &mut Frame, area: Rect, shell: &Shell, theme: &Theme) {
        let [list, detail] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
        let rows = self
            .list
            .iter()
            .map(|t| {
                Row::new(vec![
                    Cell::from(short(&t.id)),
                    Cell::from(Span::styled(t.status.to_string(), theme.status(t.status))),
                    Cell::from(t.current_step_id.clone().unwrap_or_default()),
                    Cell::from(t.credits_cost.to_string()),
                    Cell::from(time(&t.created_at)),
                ])
            })
            .collect();
        let title = format!(
            " Tasks · {}{} ",
            self.status.map(|s| s.to_string()).unwrap_or_else(|| "all".into()),
            shell.filter_of(self.title()).map(|f| format!(" · {f}")).unwrap_or_default()
        );
        let widths = [
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Min(8),
            Constraint::Length(5),
            Constraint::Length(12),
        ];
        match &self.dead {
            None => table(
                frame,
                list,
                title,
                &["ID", "STATUS", "STEP", "COST", "CREATED"],
                &widths,
                rows,
                self.selected,
                theme,
            ),
            Some(dead) => {
                let rows = dead
                    .iter()
                    .map(|d| {
                        Row::new(vec![
                            Cell::from(short(&d.task_id)),
                            Cell::from(Span::styled(d.reason.clone(), theme.fg(Color::Red))),
                            Cell::from(d.attempts.to_string()),
                            Cell::from(time(&d.created_at)),
                            Cell::from(d.error.clone()),
                        ])
                    })
                    .collect();
                let widths = [
                    Constraint::Length(10),
                    Constraint::Length(14),
                    Constraint::Length(4),
                    Constraint::Length(12),
                    Constraint::Min(8),
                ];
                let title = format!(" Dead letters · {} (D: back to tasks) ", dead.len());
                table(
                    frame,
                    list,
                    title,
                    &["TASK", "REASON", "TRY", "WHEN", "ERROR"],
                    &widths,
                    rows,
                    self.selected,
                    theme,
                );
            }
        }
        let lines = match &self.detail {
            Some(d) => {
                let t = &d.detail.task;
                let mut lines = vec![
                    Line::from(vec![
                        Span::styled(format!("task {} ", short(&t.id)), theme.bold()),
                        Span::styled(t.status.to_string(), theme.status(t.status)),
                    ]),
                    Line::from(format!("attempts {} · cost {}", t.attempts, t.credits_cost)),
                ];
                if let Some(e) = &d.detail.error {
                    lines.push(Line::styled(format!("error: {e}"), theme.fg(Color::Red)));
                }
                lines.push(Line::styled("steps", theme.bold()));
                for s in &d.detail.steps {
                    lines.push(Line::from(vec![
                        Span::raw(format!("  {:<18} ", s.step_id)),
                        Span::styled(s.status.to_string(), theme.step_status(s.status)),
                    ]));
                }
                lines.push(Line::styled("events", theme.bold()));
                for e in d.events.iter().rev().take(12).collect::<Vec<_>>().into_iter().rev() {
                    let what = e.data["message"]
                        .as_str()
                        .or_else(|| e.data["error"].as_str())
                        .or_else(|| e.data["stepId"].as_str())
                        .unwrap_or("");
                    lines.push(Line::from(format!("  {:>3} {:<14} {what}", e.seq.unwrap_or(0), e.type_.to_string())));
                }
                lines
            }
            None => vec![Line::from("enter: show the selected task")],
        };
        frame.render_widget(
            Paragraph::new(lines).wrap(Wrap { trim: false }).block(Block::bordered().title(" Details ")),
            detail,
        );
    }
}
