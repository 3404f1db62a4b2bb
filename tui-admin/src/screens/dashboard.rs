//! The dashboard: the queue, the last hour's tasks by status, provider health.

use funmagic_sdk::types::TaskStatus;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row};

use super::Screen;
use crate::app::Shell;
use crate::io::{Dashboard, Request};
use crate::ui::{Theme, table};

#[derive(Debug, Default)]
pub struct DashboardScreen {
    pub data: Option<Dashboard>,
}

impl Screen for DashboardScreen {
    fn title(&self) -> &'static str {
        "Dashboard"
    }

    fn keys(&self) -> &'static [(&'static str, &'static str)] {
        &[("r", "refresh")]
    }

    fn load(&self, shell: &Shell) -> Option<Request> {
        Some(Request::Dashboard { providers: shell.is_super() })
    }

    fn draw(&self, frame: &mut Frame, area: Rect, _shell: &Shell, theme: &Theme) {
        let Some(d) = &self.data else {
            frame.render_widget(Paragraph::new("loading…").block(Block::bordered().title(" Dashboard ")), area);
            return;
        };
        let [top, bottom] = Layout::vertical([Constraint::Length(10), Constraint::Min(3)]).areas(area);
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
        let w = &d.webhooks;
        let failing = w.failing_endpoints.iter().filter(|e| e.enabled).count();
        let disabled = w.failing_endpoints.len() - failing;
        let warn = |n: usize| if n > 0 { theme.fg(Color::Red) } else { Style::new() };
        lines.push(Line::from(vec![
            Span::raw("webhooks    "),
            Span::styled(format!("{failing} failing"), warn(failing)),
            Span::raw(format!(", {disabled} disabled")),
        ]));
        lines.push(Line::from(vec![
            Span::raw("stuck hooks "),
            Span::styled(w.stuck_deliveries.to_string(), warn(w.stuck_deliveries as usize)),
        ]));
        frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(" Queue ")), queue);
        // Tasks of the last hour by status, and per minute.
        let hour_ago = d.at - chrono::Duration::hours(1);
        let recent: Vec<_> = d.recent.iter().filter(|t| t.created_at >= hour_ago).collect();
        let count = |s: TaskStatus| recent.iter().filter(|t| t.status == s).count();
        let (done, failed) = (count(TaskStatus::Completed), count(TaskStatus::Failed));
        let rate = if done + failed > 0 { failed as f64 * 100.0 / (done + failed) as f64 } else { 0.0 };
        let mut lines = vec![Line::styled("last hour       tasks   per min", theme.bold())];
        for s in
            [TaskStatus::Queued, TaskStatus::Running, TaskStatus::Completed, TaskStatus::Failed, TaskStatus::Cancelled]
        {
            let n = count(s);
            lines.push(Line::from(vec![
                Span::styled(format!("{:<15}", s.to_string()), theme.status(s)),
                Span::raw(format!("{n:>6}   {:>6.2}", n as f64 / 60.0)),
            ]));
        }
        lines.push(Line::from(format!("failure rate   {rate:>5.1} %")));
        // The counts come from the latest page of tasks: say so when the hour holds more.
        if let Some(oldest) = d.recent.last().filter(|_| d.recent.len() >= crate::io::PAGE_SIZE)
            && oldest.created_at > hour_ago
        {
            lines.push(Line::styled(
                format!("(the latest {} tasks only, since {})", d.recent.len(), oldest.created_at.format("%H:%M")),
                theme.fg(Color::DarkGray),
            ));
        }
        frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(" Tasks ")), rates);
        match &d.providers {
            Some(list) => {
                let rows = list
                    .iter()
                    .map(|p| {
                        let (word, style) = theme.health(p.is_active, p.is_healthy);
                        Row::new(vec![
                            Cell::from(p.name.clone()),
                            Cell::from(p.type_.to_string()),
                            Cell::from(Span::styled(word, style)),
                            Cell::from(p.health_message.clone().unwrap_or_default()),
                        ])
                    })
                    .collect();
                let widths =
                    [Constraint::Length(16), Constraint::Length(8), Constraint::Length(10), Constraint::Min(10)];
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
}
