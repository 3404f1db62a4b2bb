//! Drawing: one frame from the app state, nothing awaited. Colours only when allowed
//! (`NO_COLOR` unset); layouts degrade to fit 80×24. The frame (tabs, hints, status line,
//! help, dialogs) is drawn here; the body by the current screen ([`crate::screens`]).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, TableState, Tabs, Wrap};

use funmagic_sdk::types::{StepStatus, TaskStatus};

use crate::app::{App, Dialog, Level, Tab};

/// Styles, plain when colours are off.
pub struct Theme {
    color: bool,
}

impl Theme {
    pub fn fg(&self, c: Color) -> Style {
        if self.color { Style::new().fg(c) } else { Style::new() }
    }
    pub fn bold(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    pub fn selected(&self) -> Style {
        if self.color {
            Style::new().bg(Color::Blue).fg(Color::White)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }
    pub fn status(&self, s: TaskStatus) -> Style {
        match s {
            TaskStatus::Completed => self.fg(Color::Green),
            TaskStatus::Failed => self.fg(Color::Red),
            TaskStatus::Running => self.fg(Color::Yellow),
            TaskStatus::Cancelled => self.fg(Color::DarkGray),
            TaskStatus::Pending | TaskStatus::Queued => Style::new(),
        }
    }
    /// A provider's state: disabled, healthy or not.
    pub fn health(&self, active: bool, healthy: bool) -> (&'static str, Style) {
        match (active, healthy) {
            (false, _) => ("disabled", self.fg(Color::DarkGray)),
            (true, true) => ("healthy", self.fg(Color::Green)),
            (true, false) => ("unhealthy", self.fg(Color::Red)),
        }
    }
    pub fn step_status(&self, s: StepStatus) -> Style {
        match s {
            StepStatus::Completed => self.fg(Color::Green),
            StepStatus::Failed => self.fg(Color::Red),
            StepStatus::Running => self.fg(Color::Yellow),
            StepStatus::Cancelled | StepStatus::Skipped => self.fg(Color::DarkGray),
            StepStatus::Pending => Style::new(),
        }
    }
}

pub fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%m-%d %H:%M").to_string()
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App) {
    let shell = &app.shell;
    let theme = Theme { color: shell.color };
    let [header, body, hints, status] =
        Layout::vertical([Constraint::Length(2), Constraint::Min(5), Constraint::Length(1), Constraint::Length(1)])
            .areas(frame.area());
    let titles: Vec<Line> =
        Tab::ALL.iter().enumerate().map(|(i, t)| Line::from(format!("{} {}", i + 1, app.screen(*t).title()))).collect();
    let selected = Tab::ALL.iter().position(|t| *t == app.tab).unwrap_or(0);
    let who = format!(" {} ({}) @ {}", shell.me.email, shell.me.role, shell.api_url);
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(theme.selected())
            .block(Block::new().title(Line::from(vec![Span::styled("funmagic-admin", theme.bold()), Span::raw(who)]))),
        header,
    );
    let screen = app.screen(app.tab);
    screen.draw(frame, body, shell, &theme);
    let mut keys: Vec<Span> = Vec::new();
    for (k, what) in screen.keys().iter().chain(&[("tab", "next screen"), ("?", "help"), ("q", "quit")]) {
        keys.push(Span::styled(format!(" {k}"), theme.fg(Color::Cyan).add_modifier(Modifier::BOLD)));
        keys.push(Span::raw(format!(" {what} ")));
    }
    frame.render_widget(Paragraph::new(Line::from(keys)), hints);
    let line = match (&shell.typing, &shell.status) {
        (Some(text), _) => Line::from(vec![Span::styled(" filter: ", theme.bold()), Span::raw(format!("{text}▏"))]),
        (None, Some((Level::Error, text))) => Line::from(Span::styled(format!(" {text}"), theme.fg(Color::Red))),
        (None, Some((Level::Info, text))) => Line::from(Span::styled(format!(" {text}"), theme.fg(Color::Green))),
        (None, None) if shell.pending > 0 => Line::from(" loading…"),
        (None, None) => Line::from(""),
    };
    frame.render_widget(Paragraph::new(line), status);
    if shell.help {
        help(frame, app, &theme);
    }
    match &shell.dialog {
        Some(Dialog::Confirm(c)) => {
            // Full-width bands: nothing half-covered shows through beside them.
            let area = centered(frame.area(), frame.area().width, 9);
            frame.render_widget(Clear, area);
            let text = format!("{}\n\n[y] yes   [n] no", c.message());
            frame.render_widget(
                Paragraph::new(text).wrap(Wrap { trim: false }).block(Block::bordered().title(" Confirm ")),
                area,
            );
        }
        Some(Dialog::Form(form, _)) => {
            let height = form.fields.len() as u16 * 2 + 4 + u16::from(form.error.is_some());
            let area = centered(frame.area(), frame.area().width, height);
            frame.render_widget(Clear, area);
            let mut lines = Vec::new();
            for (i, f) in form.fields.iter().enumerate() {
                let style = if i == form.focus { theme.bold() } else { Style::new() };
                lines.push(Line::styled(f.label.clone(), style));
                let cursor = if i == form.focus { "▏" } else { "" };
                lines.push(Line::from(format!("  {}{cursor}", f.shown())));
            }
            if let Some(e) = &form.error {
                lines.push(Line::styled(e.clone(), theme.fg(Color::Red)));
            }
            lines.push(Line::from("tab: next field · enter on the last: submit · esc: cancel"));
            frame
                .render_widget(Paragraph::new(lines).block(Block::bordered().title(format!(" {} ", form.title))), area);
        }
        None => {}
    }
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

fn help(frame: &mut Frame, app: &App, theme: &Theme) {
    let area = centered(frame.area(), frame.area().width, 18);
    frame.render_widget(Clear, area);
    let screen = app.screen(app.tab);
    let mut lines = vec![Line::styled(format!("{} — keys", screen.title()), theme.bold())];
    for (k, what) in screen.keys() {
        lines.push(Line::from(format!("  {k:<8} {what}")));
    }
    lines.push(Line::from(""));
    for (k, what) in [
        ("1-6/tab", "switch screen"),
        ("↑↓ j k", "move"),
        ("r", "refresh"),
        ("esc", "close details, clear status"),
        ("q", "quit"),
    ] {
        lines.push(Line::from(format!("  {k:<8} {what}")));
    }
    lines.push(Line::from("  any key closes this help"));
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(" Help ")), area);
}

#[allow(clippy::too_many_arguments, reason = "one table of a screen: where, what, and which row is selected")]
pub fn table<'a>(
    frame: &mut Frame,
    area: Rect,
    title: String,
    header: &[&'a str],
    widths: &[Constraint],
    rows: Vec<Row<'a>>,
    selected: usize,
    theme: &Theme,
) {
    let count = rows.len();
    let table = Table::new(rows, widths.to_vec())
        .header(Row::new(header.iter().map(|h| Cell::from(*h))).style(theme.bold()))
        .row_highlight_style(theme.selected())
        .block(Block::bordered().title(title));
    let mut state = TableState::default().with_selected((selected < count).then_some(selected));
    frame.render_stateful_widget(table, area, &mut state);
}
