//! The console's state and its reactions to keys and to answers from the I/O task. No I/O
//! here: requests are sent over a channel, answers come back as [`Response`]s.

use funmagic_sdk::types;
use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;

use crate::form::{Field, Form};
use crate::io::{Dashboard, Request, Response, TaskDetail, UserDetail};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Dashboard,
    Users,
    Tasks,
    Tools,
    Providers,
    Content,
}

impl Tab {
    pub const ALL: [Tab; 6] = [Tab::Dashboard, Tab::Users, Tab::Tasks, Tab::Tools, Tab::Providers, Tab::Content];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Dashboard => "Dashboard",
            Tab::Users => "Users",
            Tab::Tasks => "Tasks",
            Tab::Tools => "Tools",
            Tab::Providers => "Providers",
            Tab::Content => "Packages & Banners",
        }
    }

    /// The keys of this screen, for its hint bar and the help.
    pub fn keys(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Tab::Dashboard => &[("r", "refresh")],
            Tab::Users => &[
                ("/", "search"),
                ("enter", "details"),
                ("c", "adjust credits"),
                ("b", "ban/unban"),
                ("s", "revoke sessions"),
                ("o", "change role"),
            ],
            Tab::Tasks => {
                &[("/", "filter tool/user id"), ("f", "status"), ("enter", "details"), ("x", "cancel"), ("t", "retry")]
            }
            Tab::Tools => &[("/", "filter"), ("e", "edit JSON in $EDITOR"), ("space", "enable/disable")],
            Tab::Providers => &[("a", "add"), ("R", "rotate key"), ("t", "test"), ("d", "disable/enable")],
            Tab::Content => &[
                ("p/b", "packages/banners"),
                ("n", "new"),
                ("e", "edit"),
                ("space", "activate"),
                ("w", "window"),
                ("K/J", "move up/down"),
            ],
        }
    }

    fn load(self, app: &App) -> Request {
        match self {
            Tab::Dashboard => Request::Dashboard { providers: app.is_super() },
            Tab::Users => Request::Users { query: app.filter_of(self) },
            Tab::Tasks => Request::Tasks { status: app.tasks.status, filter: app.filter_of(self) },
            Tab::Tools => Request::Tools,
            Tab::Providers => Request::Providers,
            Tab::Content => Request::Content,
        }
    }
}

/// A keypress, independent of the terminal library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Up,
    Down,
    Backspace,
    CtrlC,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// What the main loop must do outside the app (it owns the terminal).
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Suspend the UI, edit this tool's config in `$EDITOR`, then hand the text back.
    EditTool { id: Uuid, config: String },
}

#[derive(Debug, Clone)]
pub enum Confirm {
    Adjust { user: Uuid, email: String, amount: i64, reason: String, before: i64 },
    CancelTask(Uuid),
    RetryTask(Uuid),
    SetRole { user: Uuid, email: String, role: types::UserRole },
    Ban { user: Uuid, email: String },
    Unban { user: Uuid, email: String },
    Revoke { user: Uuid, email: String },
}

impl Confirm {
    pub fn message(&self) -> String {
        match self {
            Confirm::Adjust { email, amount, reason, before, .. } => format!(
                "Adjust {email}'s credits by {amount:+}?\n\nbalance {before} → {}\nreason: {reason}",
                before + amount
            ),
            Confirm::CancelTask(id) => format!("Cancel task {}?", crate::io::short(id)),
            Confirm::RetryTask(id) => {
                format!("Run task {} again (as a new task, paid by its user)?", crate::io::short(id))
            }
            Confirm::SetRole { email, role, .. } => format!("Make {email} {role}?"),
            Confirm::Ban { email, .. } => format!("Ban {email}? Their sessions end at once."),
            Confirm::Unban { email, .. } => format!("Unban {email}?"),
            Confirm::Revoke { email, .. } => format!("Sign {email} out everywhere?"),
        }
    }

    fn request(self) -> Request {
        match self {
            Confirm::Adjust { user, amount, reason, .. } => {
                Request::AdjustCredits { user, amount, reason, key: Uuid::new_v4().to_string() }
            }
            Confirm::CancelTask(id) => Request::CancelTask(id),
            Confirm::RetryTask(id) => Request::RetryTask(id),
            Confirm::SetRole { user, role, .. } => Request::SetRole { user, role },
            Confirm::Ban { user, .. } => Request::Ban { user, reason: Some("banned from funmagic-admin".into()) },
            Confirm::Unban { user, .. } => Request::Unban(user),
            Confirm::Revoke { user, .. } => Request::RevokeSessions(user),
        }
    }
}

#[derive(Debug, Clone)]
pub enum FormAction {
    Adjust {
        user: Uuid,
        email: String,
        before: i64,
    },
    AddProvider,
    RotateKey(Uuid),
    /// New (`None`) or an edit of a package.
    Package(Option<Uuid>),
    /// New (`None`) or an edit of a banner.
    Banner(Option<Uuid>),
    BannerWindow(Uuid),
}

#[derive(Debug, Clone)]
pub enum Dialog {
    Confirm(Confirm),
    Form(Form, FormAction),
}

#[derive(Debug, Default)]
pub struct UsersState {
    pub list: Vec<types::User>,
    pub selected: usize,
    pub detail: Option<UserDetail>,
}

#[derive(Debug, Default)]
pub struct TasksState {
    pub list: Vec<types::Task>,
    pub selected: usize,
    pub status: Option<funmagic_sdk::types::TaskStatus>,
    pub detail: Option<TaskDetail>,
}

#[derive(Debug, Default)]
pub struct ToolsState {
    pub list: Vec<types::Tool>,
    pub selected: usize,
    /// The server's word on the last edit, shown under the list.
    pub invalid: Option<(Uuid, String, serde_json::Value)>,
}

#[derive(Debug, Default)]
pub struct ProvidersState {
    pub list: Vec<types::Provider>,
    pub selected: usize,
}

#[derive(Debug, Default)]
pub struct ContentState {
    pub packages: Vec<types::CreditPackage>,
    pub banners: Vec<types::Banner>,
    /// false: packages; true: banners.
    pub on_banners: bool,
    pub selected: usize,
}

/// The whole console.
#[derive(Debug)]
pub struct App {
    pub tab: Tab,
    pub me: types::User,
    pub api_url: String,
    pub status: Option<(Level, String)>,
    pub help: bool,
    /// Typing a filter: the text so far.
    pub typing: Option<String>,
    pub filters: std::collections::HashMap<&'static str, String>,
    pub dialog: Option<Dialog>,
    pub dashboard: Option<Dashboard>,
    pub users: UsersState,
    pub tasks: TasksState,
    pub tools: ToolsState,
    pub providers: ProvidersState,
    pub content: ContentState,
    pub quit: bool,
    /// Requests sent and not yet answered (shown as a spinner).
    pub pending: usize,
    pub color: bool,
    io: UnboundedSender<Request>,
}

impl App {
    pub fn new(me: types::User, api_url: String, io: UnboundedSender<Request>, color: bool) -> Self {
        Self {
            tab: Tab::Dashboard,
            me,
            api_url,
            status: None,
            help: false,
            typing: None,
            filters: Default::default(),
            dialog: None,
            dashboard: None,
            users: Default::default(),
            tasks: Default::default(),
            tools: Default::default(),
            providers: Default::default(),
            content: Default::default(),
            quit: false,
            pending: 0,
            color,
            io,
        }
    }

    pub fn is_super(&self) -> bool {
        self.me.role == types::UserRole::SuperAdmin
    }

    fn send(&mut self, request: Request) {
        self.pending += 1;
        let _ = self.io.send(request);
    }

    /// Loads what the current screen shows.
    pub fn refresh(&mut self) {
        if self.tab == Tab::Providers && !self.is_super() {
            return;
        }
        let request = self.tab.load(self);
        self.send(request);
    }

    pub fn filter_of(&self, tab: Tab) -> Option<String> {
        self.filters.get(tab.title()).cloned().filter(|f| !f.is_empty())
    }

    fn info(&mut self, text: impl Into<String>) {
        self.status = Some((Level::Info, text.into()));
    }

    /// Shows an error in the status line.
    pub fn error(&mut self, text: impl Into<String>) {
        self.status = Some((Level::Error, text.into()));
    }

    /// An answer from the I/O task.
    pub fn on_response(&mut self, response: Response) {
        self.pending = self.pending.saturating_sub(1);
        match response {
            Response::Dashboard(d) => self.dashboard = Some(*d),
            Response::Users(list) => {
                self.users.selected = self.users.selected.min(list.len().saturating_sub(1));
                self.users.list = list;
            }
            Response::UserDetail(d) => {
                if let Some(u) = self.users.list.iter_mut().find(|u| u.id == d.user.id) {
                    *u = d.user.clone();
                }
                self.users.detail = Some(*d);
            }
            Response::Tasks(list) => {
                self.tasks.selected = self.tasks.selected.min(list.len().saturating_sub(1));
                self.tasks.list = list;
            }
            Response::TaskDetail(d) => self.tasks.detail = Some(*d),
            Response::Tools(list) => {
                self.tools.selected = self.tools.selected.min(list.len().saturating_sub(1));
                self.tools.list = list;
            }
            Response::ToolInvalid { id, message, config } => {
                self.error(format!("VALIDATION_ERROR: {message}"));
                self.tools.invalid = Some((id, message, config));
            }
            Response::Providers(list) => {
                self.providers.selected = self.providers.selected.min(list.len().saturating_sub(1));
                self.providers.list = list;
            }
            Response::Content { packages, banners } => {
                self.content.packages = packages;
                self.content.banners = banners;
                let len = self.content_len();
                self.content.selected = self.content.selected.min(len.saturating_sub(1));
            }
            Response::Done { message, reload } => {
                self.info(message);
                if let Some(reload) = reload {
                    self.send(reload);
                }
                // Lists change too.
                if matches!(self.tab, Tab::Users | Tab::Tasks) {
                    let request = self.tab.load(self);
                    self.send(request);
                }
            }
            Response::Failed { code, message } => self.error(format!("{code}: {message}")),
        }
    }

    fn content_len(&self) -> usize {
        if self.content.on_banners { self.content.banners.len() } else { self.content.packages.len() }
    }

    fn list_len(&self) -> usize {
        match self.tab {
            Tab::Dashboard => 0,
            Tab::Users => self.users.list.len(),
            Tab::Tasks => self.tasks.list.len(),
            Tab::Tools => self.visible_tools().len(),
            Tab::Providers => self.providers.list.len(),
            Tab::Content => self.content_len(),
        }
    }

    fn selected_mut(&mut self) -> Option<&mut usize> {
        match self.tab {
            Tab::Dashboard => None,
            Tab::Users => Some(&mut self.users.selected),
            Tab::Tasks => Some(&mut self.tasks.selected),
            Tab::Tools => Some(&mut self.tools.selected),
            Tab::Providers => Some(&mut self.providers.selected),
            Tab::Content => Some(&mut self.content.selected),
        }
    }

    /// Tools matching the filter (client-side: the list is small).
    pub fn visible_tools(&self) -> Vec<&types::Tool> {
        let filter = self.filter_of(Tab::Tools).map(|f| f.to_lowercase());
        self.tools
            .list
            .iter()
            .filter(|t| {
                filter
                    .as_ref()
                    .is_none_or(|f| t.slug.contains(f.as_str()) || t.title.to_lowercase().contains(f.as_str()))
            })
            .collect()
    }

    fn switch(&mut self, tab: Tab) {
        if self.tab != tab {
            self.tab = tab;
            self.refresh();
        }
    }

    /// A key; returns what the main loop must do outside the app, if anything.
    pub fn on_key(&mut self, key: Key) -> Option<Effect> {
        if key == Key::CtrlC {
            self.quit = true;
            return None;
        }
        if let Some(dialog) = self.dialog.take() {
            self.on_dialog_key(dialog, key);
            return None;
        }
        if let Some(mut text) = self.typing.take() {
            match key {
                Key::Enter => {
                    self.filters.insert(self.tab.title(), text);
                    self.refresh();
                }
                Key::Esc => {}
                Key::Backspace => {
                    text.pop();
                    self.typing = Some(text);
                }
                Key::Char(c) => {
                    text.push(c);
                    self.typing = Some(text);
                }
                _ => self.typing = Some(text),
            }
            return None;
        }
        if self.help {
            self.help = false;
            return None;
        }
        match key {
            Key::Char('q') => self.quit = true,
            Key::Char('?') => self.help = true,
            Key::Char('r') => self.refresh(),
            Key::Char('/') if matches!(self.tab, Tab::Users | Tab::Tasks | Tab::Tools) => {
                self.typing = Some(self.filter_of(self.tab).unwrap_or_default());
            }
            Key::Tab => {
                let i = Tab::ALL.iter().position(|t| *t == self.tab).unwrap_or(0);
                self.switch(Tab::ALL[(i + 1) % Tab::ALL.len()]);
            }
            Key::BackTab => {
                let i = Tab::ALL.iter().position(|t| *t == self.tab).unwrap_or(0);
                self.switch(Tab::ALL[(i + Tab::ALL.len() - 1) % Tab::ALL.len()]);
            }
            Key::Char(c @ '1'..='6') => self.switch(Tab::ALL[c as usize - '1' as usize]),
            Key::Up | Key::Char('k') => {
                if let Some(s) = self.selected_mut() {
                    *s = s.saturating_sub(1);
                }
            }
            Key::Down | Key::Char('j') => {
                let len = self.list_len();
                if let Some(s) = self.selected_mut() {
                    *s = (*s + 1).min(len.saturating_sub(1));
                }
            }
            Key::Esc => {
                self.users.detail = None;
                self.tasks.detail = None;
                self.status = None;
            }
            other => return self.on_screen_key(other),
        }
        None
    }

    fn on_screen_key(&mut self, key: Key) -> Option<Effect> {
        match self.tab {
            Tab::Dashboard => {}
            Tab::Users => {
                let user = self.users.list.get(self.users.selected).cloned()?;
                match key {
                    Key::Enter => self.send(Request::UserDetail(user.id)),
                    Key::Char('c') => {
                        let before =
                            self.users.detail.as_ref().filter(|d| d.user.id == user.id).map(|d| d.credits.balance);
                        let Some(before) = before else {
                            self.send(Request::UserDetail(user.id));
                            self.info("loading the user's credits — press c again");
                            return None;
                        };
                        let form = Form::new(
                            format!("Adjust credits of {}", user.email),
                            vec![Field::new("Amount (+/-)", false), Field::new("Reason", false)],
                        );
                        self.dialog =
                            Some(Dialog::Form(form, FormAction::Adjust { user: user.id, email: user.email, before }));
                    }
                    Key::Char('b') => {
                        self.dialog = Some(Dialog::Confirm(if user.banned {
                            Confirm::Unban { user: user.id, email: user.email }
                        } else {
                            Confirm::Ban { user: user.id, email: user.email }
                        }));
                    }
                    Key::Char('s') => {
                        self.dialog = Some(Dialog::Confirm(Confirm::Revoke { user: user.id, email: user.email }))
                    }
                    Key::Char('o') => {
                        if !self.is_super() {
                            self.error("FORBIDDEN: only a super_admin changes roles");
                            return None;
                        }
                        let role = match user.role {
                            types::UserRole::User => types::UserRole::Admin,
                            types::UserRole::Admin => types::UserRole::SuperAdmin,
                            types::UserRole::SuperAdmin => types::UserRole::User,
                        };
                        self.dialog =
                            Some(Dialog::Confirm(Confirm::SetRole { user: user.id, email: user.email, role }));
                    }
                    _ => {}
                }
            }
            Tab::Tasks => {
                if key == Key::Char('f') {
                    use funmagic_sdk::types::TaskStatus;
                    const CYCLE: [Option<TaskStatus>; 6] = [
                        None,
                        Some(TaskStatus::Queued),
                        Some(TaskStatus::Running),
                        Some(TaskStatus::Completed),
                        Some(TaskStatus::Failed),
                        Some(TaskStatus::Cancelled),
                    ];
                    let i = CYCLE.iter().position(|s| *s == self.tasks.status).unwrap_or(0);
                    self.tasks.status = CYCLE[(i + 1) % CYCLE.len()];
                    self.tasks.selected = 0;
                    self.refresh();
                    return None;
                }
                let task = self.tasks.list.get(self.tasks.selected).cloned()?;
                match key {
                    Key::Enter => self.send(Request::TaskDetail(task.id)),
                    Key::Char('x') => self.dialog = Some(Dialog::Confirm(Confirm::CancelTask(task.id))),
                    Key::Char('t') => self.dialog = Some(Dialog::Confirm(Confirm::RetryTask(task.id))),
                    _ => {}
                }
            }
            Tab::Tools => {
                let tool = self.visible_tools().get(self.tools.selected).map(|t| (*t).clone())?;
                match key {
                    Key::Char(' ') => match tool.config.clone().map(|c| tool_input(&tool, c, !tool.is_active)) {
                        Some(Ok(input)) => self.send(Request::SaveTool { id: tool.id, input: Box::new(input) }),
                        Some(Err(e)) => self.error(e),
                        None => self.error("INCOMPLETE_TOOL: the listing lacks this tool's config; press r"),
                    },
                    Key::Char('e') => {
                        let config = match (&self.tools.invalid, &tool.config) {
                            (Some((id, _, config)), _) if *id == tool.id => config.clone(),
                            (_, Some(config)) => config.clone(),
                            (_, None) => {
                                self.error("INCOMPLETE_TOOL: the listing lacks this tool's config; press r");
                                return None;
                            }
                        };
                        let text = serde_json::to_string_pretty(&config).unwrap_or_default();
                        return Some(Effect::EditTool { id: tool.id, config: text });
                    }
                    _ => {}
                }
            }
            Tab::Providers => {
                if !self.is_super() {
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
                    self.dialog = Some(Dialog::Form(form, FormAction::AddProvider));
                    return None;
                }
                let p = self.providers.list.get(self.providers.selected).cloned()?;
                match key {
                    Key::Char('R') => {
                        let form = Form::new(format!("New API key for {}", p.name), vec![Field::new("API key", true)]);
                        self.dialog = Some(Dialog::Form(form, FormAction::RotateKey(p.id)));
                    }
                    Key::Char('t') => self.send(Request::TestProvider(p.id)),
                    Key::Char('d') => self.send(Request::SetProviderActive { id: p.id, active: !p.is_active }),
                    _ => {}
                }
            }
            Tab::Content => match key {
                Key::Char('p') => {
                    self.content.on_banners = false;
                    self.content.selected = 0;
                }
                Key::Char('b') => {
                    self.content.on_banners = true;
                    self.content.selected = 0;
                }
                Key::Char('n') => self.content_form(false),
                Key::Char('e') => self.content_form(true),
                Key::Char(' ') => self.toggle_content(),
                Key::Char('w') if self.content.on_banners => {
                    if let Some(b) = self.content.banners.get(self.content.selected) {
                        let mut starts = Field::new("Starts (RFC 3339, empty: now)", false);
                        starts.value = b.starts_at.map(|t| t.to_rfc3339()).unwrap_or_default();
                        let mut ends = Field::new("Ends (RFC 3339, empty: open)", false);
                        ends.value = b.ends_at.map(|t| t.to_rfc3339()).unwrap_or_default();
                        let form = Form::new(format!("Window of {}", b.title), vec![starts, ends]);
                        self.dialog = Some(Dialog::Form(form, FormAction::BannerWindow(b.id)));
                    }
                }
                Key::Char(c @ ('K' | 'J')) if self.content.on_banners => self.move_banner(c == 'K'),
                Key::Char(c @ ('K' | 'J')) => self.move_package(c == 'K'),
                _ => {}
            },
        }
        None
    }

    /// The form for a new package or banner, or (`edit`) for the selected one.
    fn content_form(&mut self, edit: bool) {
        let field = |label: &str, value: String| {
            let mut f = Field::new(label, false);
            f.value = value;
            f
        };
        let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
        if self.content.on_banners {
            let b = if edit { self.content.banners.get(self.content.selected).cloned() } else { None };
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
            self.dialog = Some(Dialog::Form(form, FormAction::Banner(b.map(|b| b.id))));
        } else {
            let p = if edit { self.content.packages.get(self.content.selected).cloned() } else { None };
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
            self.dialog = Some(Dialog::Form(form, FormAction::Package(p.map(|p| p.id))));
        }
    }

    /// Swaps the selected package's sort order with its neighbour's.
    fn move_package(&mut self, up: bool) {
        let i = self.content.selected;
        let j = if up { i.checked_sub(1) } else { Some(i + 1).filter(|j| *j < self.content.packages.len()) };
        let (Some(j), Some(a)) = (j, self.content.packages.get(i).cloned()) else { return };
        let b = self.content.packages[j].clone();
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
                    self.send(Request::SavePackage { id: Some(p.id), input });
                }
                Err(e) => self.error(e),
            }
        }
        self.content.selected = j;
    }

    fn toggle_content(&mut self) {
        if self.content.on_banners {
            if let Some(b) = self.content.banners.get(self.content.selected) {
                match banner_input(b) {
                    Ok(mut input) => {
                        input.is_active = Some(!b.is_active);
                        self.send(Request::SaveBanner { id: Some(b.id), input: Box::new(input) });
                    }
                    Err(e) => self.error(e),
                }
            }
        } else if let Some(p) = self.content.packages.get(self.content.selected) {
            match package_input(p) {
                Ok(mut input) => {
                    input.is_active = Some(!p.is_active);
                    self.send(Request::SavePackage { id: Some(p.id), input });
                }
                Err(e) => self.error(e),
            }
        }
    }

    fn move_banner(&mut self, up: bool) {
        let i = self.content.selected;
        let Some(b) = self.content.banners.get(i) else { return };
        let kind = b.type_;
        let mut same: Vec<Uuid> = self.content.banners.iter().filter(|x| x.type_ == kind).map(|x| x.id).collect();
        let Some(pos) = same.iter().position(|id| *id == b.id) else { return };
        let to = if up { pos.checked_sub(1) } else { Some(pos + 1).filter(|p| *p < same.len()) };
        let Some(to) = to else { return };
        same.swap(pos, to);
        self.content.selected = if up { i.saturating_sub(1) } else { i + 1 };
        self.send(Request::ReorderBanners { kind, ids: same });
    }

    fn on_dialog_key(&mut self, dialog: Dialog, key: Key) {
        match dialog {
            Dialog::Confirm(confirm) => match key {
                Key::Char('y') | Key::Enter => {
                    let request = confirm.request();
                    self.send(request);
                }
                Key::Char('n') | Key::Esc | Key::Char('q') => self.info("cancelled"),
                _ => self.dialog = Some(Dialog::Confirm(confirm)),
            },
            Dialog::Form(mut form, action) => match key {
                Key::Esc => self.info("cancelled"),
                Key::Enter if form.on_last() => match self.submit_form(&form, &action) {
                    Ok(()) => {}
                    Err(problem) => {
                        form.error = Some(problem);
                        self.dialog = Some(Dialog::Form(form, action));
                    }
                },
                other => {
                    form.on_key(other);
                    self.dialog = Some(Dialog::Form(form, action));
                }
            },
        }
    }

    /// Checks a form and turns it into a confirmation or a request.
    fn submit_form(&mut self, form: &Form, action: &FormAction) -> Result<(), String> {
        let v = |i: usize| form.fields[i].value.trim().to_string();
        match action {
            FormAction::Adjust { user, email, before } => {
                let amount: i64 = v(0)
                    .trim_start_matches('+')
                    .parse()
                    .map_err(|_| "the amount must be a whole number".to_string())?;
                if amount == 0 {
                    return Err("the amount must not be 0".into());
                }
                if v(1).is_empty() {
                    return Err("give a reason".into());
                }
                self.dialog = Some(Dialog::Confirm(Confirm::Adjust {
                    user: *user,
                    email: email.clone(),
                    amount,
                    reason: v(1),
                    before: *before,
                }));
            }
            FormAction::AddProvider => {
                if v(0).is_empty() || v(2).is_empty() {
                    return Err("name and API key are required".into());
                }
                let base_url = Some(v(3)).filter(|u| !u.is_empty());
                let kind: types::ExternalProviderType =
                    v(1).parse().map_err(|_| format!("'{}' is not a provider type: use openai, fal or tripo", v(1)))?;
                self.send(Request::AddProvider { name: v(0), kind, key: v(2), base_url });
            }
            FormAction::RotateKey(id) => {
                if v(0).is_empty() {
                    return Err("the key is empty".into());
                }
                self.send(Request::RotateProviderKey { id: *id, key: v(0) });
            }
            FormAction::Package(id) => {
                let credits: std::num::NonZeroU64 =
                    v(1).parse().map_err(|_| "credits must be a whole number from 1".to_string())?;
                let price: i64 = v(2).parse().map_err(|_| "price must be a whole number of cents".to_string())?;
                let existing = id.and_then(|id| self.content.packages.iter().find(|p| p.id == id));
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
                self.send(Request::SavePackage { id: *id, input });
            }
            FormAction::Banner(id) => {
                let (starts_at, ends_at) = (parse_time(&v(3))?, parse_time(&v(4))?);
                let existing = id.and_then(|id| self.content.banners.iter().find(|b| b.id == id));
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
                self.send(Request::SaveBanner { id: *id, input: Box::new(input) });
            }
            FormAction::BannerWindow(id) => {
                let Some(b) = self.content.banners.iter().find(|b| b.id == *id) else { return Ok(()) };
                let mut input = banner_input(b)?;
                input.starts_at = parse_time(&v(0))?;
                input.ends_at = parse_time(&v(1))?;
                self.send(Request::SaveBanner { id: Some(*id), input: Box::new(input) });
            }
        }
        Ok(())
    }

    /// The edited text of a tool's config: checked as JSON here, then by the server.
    pub fn on_tool_edited(&mut self, id: Uuid, text: &str) {
        let Some(tool) = self.tools.list.iter().find(|t| t.id == id).cloned() else { return };
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(config) if Some(&config) == tool.config.as_ref() => {
                self.tools.invalid = None;
                self.info("no change");
            }
            Ok(config) => {
                self.tools.invalid = None;
                match tool_input(&tool, config, tool.is_active) {
                    Ok(input) => self.send(Request::SaveTool { id, input: Box::new(input) }),
                    Err(e) => self.error(e),
                }
            }
            Err(e) => {
                let config = serde_json::Value::String(text.to_string());
                self.tools.invalid = Some((id, format!("not JSON: {e}"), config));
                self.error(format!("INVALID_JSON: {e} — press e to fix it"));
            }
        }
    }
}

fn parse_time(s: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.with_timezone(&chrono::Utc)))
        .map_err(|_| format!("'{s}' is not an RFC 3339 time (like 2026-12-01T00:00:00Z)"))
}

/// A field the spec constrains, checked as the server will check it.
fn text<T: std::str::FromStr>(field: &str, value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| format!("VALIDATION_FAILED: {field}: {e}"))
}

fn opt_text<T: std::str::FromStr>(field: &str, value: Option<&str>) -> Result<Option<T>, String>
where
    T::Err: std::fmt::Display,
{
    value.map(|v| text(field, v)).transpose()
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
    })
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
