//! Credit packages and banners: create, edit, activate, a banner's window, the order.

use funmagic_sdk::types;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row};
use uuid::Uuid;

use super::{Screen, opt_text, parse_time, text};
use crate::app::{Dialog, Effect, FormAction, Key, Shell};
use crate::form::{Field, Form};
use crate::io::Request;
use crate::ui::{Theme, table, time};

#[derive(Debug, Default)]
pub struct ContentScreen {
    pub packages: Vec<types::CreditPackage>,
    pub banners: Vec<types::Banner>,
    /// false: packages; true: banners.
    pub on_banners: bool,
    pub selected: usize,
}

impl ContentScreen {
    pub fn len(&self) -> usize {
        if self.on_banners { self.banners.len() } else { self.packages.len() }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The form for a new package or banner, or (`edit`) for the selected one.
    fn open_form(&mut self, edit: bool, shell: &mut Shell) {
        let field = |label: &str, value: String| {
            let mut f = Field::new(label, false);
            f.value = value;
            f
        };
        let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
        if self.on_banners {
            let b = if edit { self.banners.get(self.selected).cloned() } else { None };
            if edit && b.is_none() {
                return;
            }
            let form = Form::new(
                b.as_ref().map(|b| format!("Edit banner {}", b.title)).unwrap_or_else(|| "New banner".into()),
                vec![
                    field("Title", b.as_ref().map(|b| b.title.clone()).unwrap_or_default()),
                    field("Type (main/side)", b.as_ref().map(|b| b.type_.to_string()).unwrap_or_else(|| "main".into())),
                    field("Link", b.as_ref().and_then(|b| b.link.clone()).unwrap_or_default()),
                    field("Starts (RFC 3339, optional)", time(b.as_ref().and_then(|b| b.starts_at))),
                    field("Ends (RFC 3339, optional)", time(b.as_ref().and_then(|b| b.ends_at))),
                ],
            );
            shell.dialog = Some(Dialog::Form(form, FormAction::Banner(b.map(|b| b.id))));
        } else {
            let p = if edit { self.packages.get(self.selected).cloned() } else { None };
            if edit && p.is_none() {
                return;
            }
            let form = Form::new(
                p.as_ref().map(|p| format!("Edit package {}", p.name)).unwrap_or_else(|| "New credit package".into()),
                vec![
                    field("Name", p.as_ref().map(|p| p.name.clone()).unwrap_or_default()),
                    field("Credits", p.as_ref().map(|p| p.credits.to_string()).unwrap_or_default()),
                    field("Price (cents)", p.as_ref().map(|p| p.price.to_string()).unwrap_or_default()),
                    field("Currency", p.as_ref().map(|p| p.currency.clone()).unwrap_or_else(|| "usd".into())),
                ],
            );
            shell.dialog = Some(Dialog::Form(form, FormAction::Package(p.map(|p| p.id))));
        }
    }

    /// Swaps the selected package's sort order with its neighbour's.
    fn move_package(&mut self, up: bool, shell: &mut Shell) {
        let i = self.selected;
        let j = if up { i.checked_sub(1) } else { Some(i + 1).filter(|j| *j < self.packages.len()) };
        let (Some(j), Some(a)) = (j, self.packages.get(i).cloned()) else { return };
        let b = self.packages[j].clone();
        // Distinct orders even if they were equal.
        let (oa, ob) = if a.sort_order == b.sort_order {
            if up { (b.sort_order - 1, b.sort_order) } else { (b.sort_order + 1, b.sort_order) }
        } else {
            (b.sort_order, a.sort_order)
        };
        for (p, order) in [(a, oa), (b, ob)] {
            match package_input(&p) {
                Ok(mut input) => {
                    input.sort_order = Some(order);
                    shell.send(Request::SavePackage { id: Some(p.id), input });
                }
                Err(e) => shell.error(e),
            }
        }
        self.selected = j;
    }

    fn toggle(&mut self, shell: &mut Shell) {
        if self.on_banners {
            if let Some(b) = self.banners.get(self.selected) {
                match banner_input(b) {
                    Ok(mut input) => {
                        input.is_active = Some(!b.is_active);
                        shell.send(Request::SaveBanner { id: Some(b.id), input: Box::new(input) });
                    }
                    Err(e) => shell.error(e),
                }
            }
        } else if let Some(p) = self.packages.get(self.selected) {
            match package_input(p) {
                Ok(mut input) => {
                    input.is_active = Some(!p.is_active);
                    shell.send(Request::SavePackage { id: Some(p.id), input });
                }
                Err(e) => shell.error(e),
            }
        }
    }

    fn move_banner(&mut self, up: bool, shell: &mut Shell) {
        let i = self.selected;
        let Some(b) = self.banners.get(i) else { return };
        let kind = b.type_;
        let mut same: Vec<Uuid> = self.banners.iter().filter(|x| x.type_ == kind).map(|x| x.id).collect();
        let Some(pos) = same.iter().position(|id| *id == b.id) else { return };
        let to = if up { pos.checked_sub(1) } else { Some(pos + 1).filter(|p| *p < same.len()) };
        let Some(to) = to else { return };
        same.swap(pos, to);
        self.selected = if up { i.saturating_sub(1) } else { i + 1 };
        shell.send(Request::ReorderBanners { kind, ids: same });
    }
}

impl Screen for ContentScreen {
    fn title(&self) -> &'static str {
        "Packages & Banners"
    }

    fn keys(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("p/b", "packages/banners"),
            ("n", "new"),
            ("e", "edit"),
            ("space", "activate"),
            ("w", "window"),
            ("K/J", "move up/down"),
        ]
    }

    fn load(&self, _shell: &Shell) -> Option<Request> {
        Some(Request::Content)
    }

    fn list_len(&self, _shell: &Shell) -> usize {
        self.len()
    }

    fn selected_mut(&mut self) -> Option<&mut usize> {
        Some(&mut self.selected)
    }

    fn on_key(&mut self, key: Key, shell: &mut Shell) -> Option<Effect> {
        match key {
            Key::Char('p') => {
                self.on_banners = false;
                self.selected = 0;
            }
            Key::Char('b') => {
                self.on_banners = true;
                self.selected = 0;
            }
            Key::Char('n') => self.open_form(false, shell),
            Key::Char('e') => self.open_form(true, shell),
            Key::Char(' ') => self.toggle(shell),
            Key::Char('w') if self.on_banners => {
                if let Some(b) = self.banners.get(self.selected) {
                    let mut starts = Field::new("Starts (RFC 3339, empty: now)", false);
                    starts.value = b.starts_at.map(|t| t.to_rfc3339()).unwrap_or_default();
                    let mut ends = Field::new("Ends (RFC 3339, empty: open)", false);
                    ends.value = b.ends_at.map(|t| t.to_rfc3339()).unwrap_or_default();
                    let form = Form::new(format!("Window of {}", b.title), vec![starts, ends]);
                    shell.dialog = Some(Dialog::Form(form, FormAction::BannerWindow(b.id)));
                }
            }
            Key::Char(c @ ('K' | 'J')) if self.on_banners => self.move_banner(c == 'K', shell),
            Key::Char(c @ ('K' | 'J')) => self.move_package(c == 'K', shell),
            _ => {}
        }
        None
    }

    fn on_form(&mut self, form: &Form, action: &FormAction, shell: &mut Shell) -> Result<(), String> {
        let v = |i: usize| form.fields[i].value.trim().to_string();
        match action {
            FormAction::Package(id) => {
                let credits: std::num::NonZeroU64 =
                    v(1).parse().map_err(|_| "credits must be a whole number from 1".to_string())?;
                let price: i64 = v(2).parse().map_err(|_| "price must be a whole number of cents".to_string())?;
                let existing = id.and_then(|id| self.packages.iter().find(|p| p.id == id));
                let name: types::Line100 = text("name", &v(0))?;
                let mut input = match existing {
                    Some(p) => package_input(p)?,
                    None => types::PackageInput {
                        name: name.clone(),
                        credits,
                        price,
                        currency: None,
                        stripe_price_id: None,
                        is_active: Some(true),
                        sort_order: None,
                    },
                };
                input.name = name;
                input.credits = credits;
                input.price = price;
                input.currency = opt_text("currency", Some(v(3)).filter(|c| !c.is_empty()).as_deref())?;
                shell.send(Request::SavePackage { id: *id, input });
            }
            FormAction::Banner(id) => {
                let (starts_at, ends_at) = (parse_time(&v(3))?, parse_time(&v(4))?);
                let existing = id.and_then(|id| self.banners.iter().find(|b| b.id == id));
                let title: types::Line200 = text("title", &v(0))?;
                let mut input = match existing {
                    Some(b) => banner_input(b)?,
                    None => types::BannerInput {
                        title: title.clone(),
                        description: None,
                        thumbnail: None,
                        link: None,
                        link_text: None,
                        link_target: None,
                        type_: None,
                        position: None,
                        badge: None,
                        badge_color: None,
                        is_active: Some(true),
                        starts_at: None,
                        ends_at: None,
                    },
                };
                input.title = title;
                input.type_ = match v(1).as_str() {
                    "" => None,
                    t => Some(t.parse().map_err(|_| format!("'{t}' is not a banner type: use main or side"))?),
                };
                input.link = opt_text("link", Some(v(2)).filter(|l| !l.is_empty()).as_deref())?;
                input.starts_at = starts_at;
                input.ends_at = ends_at;
                if existing.is_some_and(|b| Some(&b.type_) != input.type_.as_ref()) {
                    input.position = None; // appended to its new type
                }
                shell.send(Request::SaveBanner { id: *id, input: Box::new(input) });
            }
            FormAction::BannerWindow(id) => {
                let Some(b) = self.banners.iter().find(|b| b.id == *id) else { return Ok(()) };
                let mut input = banner_input(b)?;
                input.starts_at = parse_time(&v(0))?;
                input.ends_at = parse_time(&v(1))?;
                shell.send(Request::SaveBanner { id: Some(*id), input: Box::new(input) });
            }
            _ => {}
        }
        Ok(())
    }

    fn draw(&self, frame: &mut Frame, area: Rect, _shell: &Shell, theme: &Theme) {
        let [packages, banners] =
            Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(area);
        let rows = self
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
            format!("{} Credit packages ", marker(!self.on_banners)),
            &["NAME", "CREDITS", "PRICE", "STATE"],
            &widths,
            rows,
            if self.on_banners { usize::MAX } else { self.selected },
            theme,
        );
        let now = chrono::Utc::now();
        let rows = self
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
            format!("{} Banners ", marker(self.on_banners)),
            &["TYPE", "POS", "TITLE", "STATE", "WINDOW"],
            &widths,
            rows,
            if self.on_banners { self.selected } else { usize::MAX },
            theme,
        );
    }
}

fn package_input(p: &types::CreditPackage) -> Result<types::PackageInput, String> {
    Ok(types::PackageInput {
        name: text("name", &p.name)?,
        credits: text("credits", &p.credits.to_string())?,
        price: text("price", &p.price.to_string())?,
        currency: opt_text("currency", Some(&p.currency))?,
        stripe_price_id: opt_text("stripePriceId", p.stripe_price_id.as_deref())?,
        is_active: Some(p.is_active),
        sort_order: Some(p.sort_order),
    })
}
fn banner_input(b: &types::Banner) -> Result<types::BannerInput, String> {
    Ok(types::BannerInput {
        title: text("title", &b.title)?,
        description: opt_text("description", b.description.as_deref())?,
        thumbnail: opt_text("thumbnail", b.thumbnail.as_deref())?,
        link: opt_text("link", b.link.as_deref())?,
        link_text: opt_text("linkText", b.link_text.as_deref())?,
        link_target: Some(b.link_target),
        type_: Some(b.type_),
        position: Some(b.position),
        badge: opt_text("badge", b.badge.as_deref())?,
        badge_color: opt_text("badgeColor", b.badge_color.as_deref())?,
        is_active: Some(b.is_active),
        starts_at: b.starts_at,
        ends_at: b.ends_at,
    })
}
