//! Drawing: one frame from the app state, nothing awaited. Colours only when allowed
//! (`NO_COLOR` unset); layouts degrade to fit 80×24.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, TableState, Tabs, Wrap};

use crate::app::{App, Dialog, Level, Tab};
use crate::io::short;
use funmagic_sdk::types::{StepStatus, TaskStatus};

struct Theme {
    color: bool,
}

impl Theme {
    fn fg(&self, c: Color) -> Style {
        if self.color { Style::new().fg(c) } else { Style::new() }
    }
    fn bold(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    fn selected(&self) -> Style {
        if self.color {
            Style::new().bg(Color::Blue).fg(Color::White)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }
    fn status(&self, s: TaskStatus) -> Style {
        match s {
            TaskStatus::Completed => self.fg(Color::Green),
            TaskStatus::Failed => self.fg(Color::Red),
            TaskStatus::Running => self.fg(Color::Yellow),
            TaskStatus::Cancelled => self.fg(Color::DarkGray),
            TaskStatus::Pending | TaskStatus::Queued => Style::new(),
        }
    }
    fn step_status(&self, s: StepStatus) -> Style {
        match s {
            StepStatus::Completed => self.fg(Color::Green),
            StepStatus::Failed => self.fg(Color::Red),
            StepStatus::Running => self.fg(Color::Yellow),
            StepStatus::Cancelled | StepStatus::Skipped => self.fg(Color::DarkGray),
            StepStatus::Pending => Style::new(),
        }
    }
}

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%m-%d %H:%M").to_string()
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App) {
    let theme = Theme { color: app.color };
    let [header, body, hints, status] =
        Layout::vertical([Constraint::Length(2), Constraint::Min(5), Constraint::Length(1), Constraint::Length(1)])
            .areas(frame.area());
    let titles: Vec<Line> =
        Tab::ALL.iter().enumerate().map(|(i, t)| Line::from(format!("{} {}", i + 1, t.title()))).collect();
    let selected = Tab::ALL.iter().position(|t| *t == app.tab).unwrap_or(0);
    let who = format!(" {} ({}) @ {}", app.me.email, app.me.role, app.api_url);
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(theme.selected())
            .block(Block::new().title(Line::from(vec![Span::styled("funmagic-admin", theme.bold()), Span::raw(who)]))),
        header,
    );
    match app.tab {
        Tab::Dashboard => dashboard(frame, body, app, &theme),
        Tab::Users => users(frame, body, app, &theme),
        Tab::Tasks => tasks(frame, body, app, &theme),
        Tab::Tools => tools(frame, body, app, &theme),
        Tab::Providers => providers(frame, body, app, &theme),
        Tab::Content => content(frame, body, app, &theme),
    }
    let mut keys: Vec<Span> = Vec::new();
    for (k, what) in app.tab.keys().iter().chain(&[("tab", "next screen"), ("?", "help"), ("q", "quit")]) {
        keys.push(Span::styled(format!(" {k}"), theme.fg(Color::Cyan).add_modifier(Modifier::BOLD)));
        keys.push(Span::raw(format!(" {what} ")));
    }
    frame.render_widget(Paragraph::new(Line::from(keys)), hints);
    let line = match (&app.typing, &app.status) {
        (Some(text), _) => Line::from(vec![Span::styled(" filter: ", theme.bold()), Span::raw(format!("{text}▏"))]),
        (None, Some((Level::Error, text))) => Line::from(Span::styled(format!(" {text}"), theme.fg(Color::Red))),
        (None, Some((Level::Info, text))) => Line::from(Span::styled(format!(" {text}"), theme.fg(Color::Green))),
        (None, None) if app.pending > 0 => Line::from(" loading…"),
        (None, None) => Line::from(""),
    };
    frame.render_widget(Paragraph::new(line), status);
    if app.help {
        help(frame, app, &theme);
    }
    match &app.dialog {
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
    let mut lines = vec![Line::styled(format!("{} — keys", app.tab.title()), theme.bold())];
    for (k, what) in app.tab.keys() {
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
fn table<'a>(
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

fn dashboard(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(d) = &app.dashboard else {
        frame.render_widget(Paragraph::new("loading…").block(Block::bordered().title(" Dashboard ")), area);
        return;
    };
    let [top, bottom] = Layout::vertical([Constraint::Length(7), Constraint::Min(3)]).areas(area);
    let [queue, rates] = Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(top);
    let q = &d.queue;
    let mut lines = vec![
        Line::from(format!("backend     {}", q.backend)),
        Line::from(format!("waiting     {}", q.waiting)),
        Line::from(format!("running     {}", q.running)),
        Line::from(format!("retrying    {}", q.delayed)),
        Line::from(vec![
            Span::raw("dead letters "),
            Span::styled(
                d.dead_letters.to_string(),
                if d.dead_letters > 0 { theme.fg(Color::Red) } else { Style::new() },
            ),
        ]),
    ];
    if let Some(len) = q.stream_length {
        lines.push(Line::from(format!("stream      {len} ({} pending)", q.stream_pending.unwrap_or(0))));
    }
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(" Queue ")), queue);
    // Tasks of the last hour by status, and per minute.
    let hour_ago = d.at - chrono::Duration::hours(1);
    let recent: Vec<_> = d.recent.iter().filter(|t| t.created_at >= hour_ago).collect();
    let count = |s: TaskStatus| recent.iter().filter(|t| t.status == s).count();
    let (done, failed) = (count(TaskStatus::Completed), count(TaskStatus::Failed));
    let rate = if done + failed > 0 { failed as f64 * 100.0 / (done + failed) as f64 } else { 0.0 };
    let mut lines = vec![Line::styled("last hour       tasks   per min", theme.bold())];
    for s in [TaskStatus::Queued, TaskStatus::Running, TaskStatus::Completed, TaskStatus::Failed, TaskStatus::Cancelled]
    {
        let n = count(s);
        lines.push(Line::from(vec![
            Span::styled(format!("{:<15}", s.to_string()), theme.status(s)),
            Span::raw(format!("{n:>6}   {:>6.2}", n as f64 / 60.0)),
        ]));
    }
    lines.push(Line::from(format!("failure rate   {rate:>5.1} %")));
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(" Tasks ")), rates);
    match &d.providers {
        Some(list) => {
            let rows = list
                .iter()
                .map(|p| {
                    let (word, style) = match (p.is_active, p.is_healthy) {
                        (false, _) => ("disabled", theme.fg(Color::DarkGray)),
                        (true, true) => ("healthy", theme.fg(Color::Green)),
                        (true, false) => ("unhealthy", theme.fg(Color::Red)),
                    };
                    Row::new(vec![
                        Cell::from(p.name.clone()),
                        Cell::from(p.type_.to_string()),
                        Cell::from(Span::styled(word, style)),
                        Cell::from(p.health_message.clone().unwrap_or_default()),
                    ])
                })
                .collect();
            let widths = [Constraint::Length(16), Constraint::Length(8), Constraint::Length(10), Constraint::Min(10)];
            table(
                frame,
                bottom,
                " Providers ".into(),
                &["NAME", "TYPE", "HEALTH", "LAST CHECK"],
                &widths,
                rows,
                usize::MAX,
                theme,
            );
        }
        None => frame.render_widget(
            Paragraph::new("provider health is for super admins").block(Block::bordered().title(" Providers ")),
            bottom,
        ),
    }
}

fn users(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let [list, detail] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
    let rows = app
        .users
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
    let title = match app.filter_of(Tab::Users) {
        Some(f) => format!(" Users matching '{f}' "),
        None => " Users ".into(),
    };
    let widths = [Constraint::Min(20), Constraint::Length(12), Constraint::Length(7)];
    table(frame, list, title, &["EMAIL", "ROLE", ""], &widths, rows, app.users.selected, theme);
    let lines = match &app.users.detail {
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

fn tasks(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let [list, detail] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
    let rows = app
        .tasks
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
        app.tasks.status.map(|s| s.to_string()).unwrap_or_else(|| "all".into()),
        app.filter_of(Tab::Tasks).map(|f| format!(" · {f}")).unwrap_or_default()
    );
    let widths = [
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Min(8),
        Constraint::Length(5),
        Constraint::Length(12),
    ];
    table(frame, list, title, &["ID", "STATUS", "STEP", "COST", "CREATED"], &widths, rows, app.tasks.selected, theme);
    let lines = match &app.tasks.detail {
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

fn tools(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let invalid = app.tools.invalid.as_ref();
    let [list, note] =
        Layout::vertical([Constraint::Min(4), Constraint::Length(if invalid.is_some() { 4 } else { 0 })]).areas(area);
    let visible = app.visible_tools();
    let rows = visible
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
    table(frame, list, " Tools ".into(), &["SLUG", "ON", "COST", "STEPS"], &widths, rows, app.tools.selected, theme);
    if let Some((_, message, _)) = invalid {
        frame.render_widget(
            Paragraph::new(Span::styled(message.clone(), theme.fg(Color::Red)))
                .wrap(Wrap { trim: true })
                .block(Block::bordered().title(" Not saved — press e to fix ")),
            note,
        );
    }
}

fn providers(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    if !app.is_super() {
        frame.render_widget(
            Paragraph::new("Providers and their keys are for super admins.")
                .block(Block::bordered().title(" Providers ")),
            area,
        );
        return;
    }
    let rows = app
        .providers
        .list
        .iter()
        .map(|p| {
            let (word, style) = match (p.is_active, p.is_healthy) {
                (false, _) => ("disabled", theme.fg(Color::DarkGray)),
                (true, true) => ("healthy", theme.fg(Color::Green)),
                (true, false) => ("unhealthy", theme.fg(Color::Red)),
            };
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
        app.providers.selected,
        theme,
    );
}

fn content(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let [packages, banners] = Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(area);
    let c = &app.content;
    let rows = c
        .packages
        .iter()
        .map(|p| {
            Row::new(vec![
                Cell::from(p.name.clone()),
                Cell::from(p.credits.to_string()),
                Cell::from(format!("{}.{:02} {}", p.price / 100, p.price % 100, p.currency)),
                Cell::from(if p.is_active {
                    Span::styled("on sale", theme.fg(Color::Green))
                } else {
                    Span::raw("off")
                }),
            ])
        })
        .collect();
    let marker = |on: bool| if on { "▶" } else { " " };
    let widths = [Constraint::Min(12), Constraint::Length(8), Constraint::Length(12), Constraint::Length(8)];
    table(
        frame,
        packages,
        format!("{} Credit packages ", marker(!c.on_banners)),
        &["NAME", "CREDITS", "PRICE", "STATE"],
        &widths,
        rows,
        if c.on_banners { usize::MAX } else { c.selected },
        theme,
    );
    let now = chrono::Utc::now();
    let rows = c
        .banners
        .iter()
        .map(|b| {
            let live = b.is_active && b.starts_at.is_none_or(|s| s <= now) && b.ends_at.is_none_or(|e| e > now);
            let window = match (b.starts_at, b.ends_at) {
                (None, None) => "always".to_string(),
                (s, e) => format!(
                    "{} → {}",
                    s.as_ref().map(time).unwrap_or_else(|| "…".into()),
                    e.as_ref().map(time).unwrap_or_else(|| "…".into())
                ),
            };
            Row::new(vec![
                Cell::from(b.type_.to_string()),
                Cell::from(b.position.to_string()),
                Cell::from(b.title.clone()),
                Cell::from(if live {
                    Span::styled("live", theme.fg(Color::Green))
                } else if b.is_active {
                    Span::raw("scheduled")
                } else {
                    Span::raw("off")
                }),
                Cell::from(window),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(5),
        Constraint::Length(4),
        Constraint::Min(12),
        Constraint::Length(10),
        Constraint::Length(27),
    ];
    table(
        frame,
        banners,
        format!("{} Banners ", marker(c.on_banners)),
        &["TYPE", "POS", "TITLE", "STATE", "WINDOW"],
        &widths,
        rows,
        if c.on_banners { c.selected } else { usize::MAX },
        theme,
    );
}
