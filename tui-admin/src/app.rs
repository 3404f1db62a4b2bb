//! The console's state and its reactions to keys and to answers from the I/O task. No I/O
//! here: requests are sent over a channel, answers come back as [`Response`]s. What each
//! screen shows and does lives in [`crate::screens`]; this file holds what they share (the
//! [`Shell`]: the user, the status line, the open dialog, the request channel) and routes
//! keys, answers and submitted forms to them.

use funmagic_sdk::types;
use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;

use crate::form::Form;
use crate::io::{Request, Response};
use crate::screens::Screen;
use crate::screens::content::ContentScreen;
use crate::screens::dashboard::DashboardScreen;
use crate::screens::providers::ProvidersScreen;
use crate::screens::tasks::TasksScreen;
use crate::screens::tools::ToolsScreen;
use crate::screens::users::UsersScreen;

/// The screens, in tab order (`1`–`6`).
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
    /// Suspend the UI, edit this tool's config in `$EDITOR` (`id: None`: a new tool's whole
    /// definition), then hand the text back.
    EditTool { id: Option<Uuid>, config: String },
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
    Delete { user: Uuid, email: String },
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
            Confirm::Delete { email, .. } => format!(
                "Delete the account {email}?\n\nIts sessions, keys and files go for good; running tasks are cancelled.\nThe credits ledger keeps an anonymised record."
            ),
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
            Confirm::Delete { user, .. } => Request::DeleteUser(user),
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
    /// A new tool type.
    ToolType,
}

#[derive(Debug, Clone)]
pub enum Dialog {
    Confirm(Confirm),
    Form(Form, FormAction),
}

/// What every screen shares: who is signed in, the status line, the filter being typed,
/// the open dialog, and the channel to the I/O task.
#[derive(Debug)]
pub struct Shell {
    pub me: types::User,
    pub api_url: String,
    pub status: Option<(Level, String)>,
    pub help: bool,
    /// Typing a filter: the text so far.
    pub typing: Option<String>,
    /// Each screen's filter, by its title.
    pub filters: std::collections::HashMap<&'static str, String>,
    pub dialog: Option<Dialog>,
    pub quit: bool,
    /// Requests sent and not yet answered (shown as a spinner).
    pub pending: usize,
    pub color: bool,
    io: UnboundedSender<Request>,
}

impl Shell {
    pub fn is_super(&self) -> bool {
        self.me.role == types::UserRole::SuperAdmin
    }

    pub fn send(&mut self, request: Request) {
        self.pending += 1;
        let _ = self.io.send(request);
    }

    /// The filter of the screen titled `title`, if one is set.
    pub fn filter_of(&self, title: &str) -> Option<String> {
        self.filters.get(title).cloned().filter(|f| !f.is_empty())
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.status = Some((Level::Info, text.into()));
    }

    /// Shows an error in the status line.
    pub fn error(&mut self, text: impl Into<String>) {
        self.status = Some((Level::Error, text.into()));
    }
}

/// The whole console: the shell and one of each screen.
#[derive(Debug)]
pub struct App {
    pub tab: Tab,
    pub shell: Shell,
    pub dashboard: DashboardScreen,
    pub users: UsersScreen,
    pub tasks: TasksScreen,
    pub tools: ToolsScreen,
    pub providers: ProvidersScreen,
    pub content: ContentScreen,
}

impl App {
    pub fn new(me: types::User, api_url: String, io: UnboundedSender<Request>, color: bool) -> Self {
        Self {
            tab: Tab::Dashboard,
            shell: Shell {
                me,
                api_url,
                status: None,
                help: false,
                typing: None,
                filters: Default::default(),
                dialog: None,
                quit: false,
                pending: 0,
                color,
                io,
            },
            dashboard: Default::default(),
            users: Default::default(),
            tasks: Default::default(),
            tools: Default::default(),
            providers: Default::default(),
            content: Default::default(),
        }
    }

    /// The screen of `tab`.
    pub fn screen(&self, tab: Tab) -> &dyn Screen {
        match tab {
            Tab::Dashboard => &self.dashboard,
            Tab::Users => &self.users,
            Tab::Tasks => &self.tasks,
            Tab::Tools => &self.tools,
            Tab::Providers => &self.providers,
            Tab::Content => &self.content,
        }
    }

    /// The current screen and the shell, borrowed together.
    fn current(&mut self) -> (&mut dyn Screen, &mut Shell) {
        let screen: &mut dyn Screen = match self.tab {
            Tab::Dashboard => &mut self.dashboard,
            Tab::Users => &mut self.users,
            Tab::Tasks => &mut self.tasks,
            Tab::Tools => &mut self.tools,
            Tab::Providers => &mut self.providers,
            Tab::Content => &mut self.content,
        };
        (screen, &mut self.shell)
    }

    /// Loads what the current screen shows.
    pub fn refresh(&mut self) {
        let (screen, shell) = self.current();
        if let Some(request) = screen.load(shell) {
            shell.send(request);
        }
    }

    /// Shows an error in the status line.
    pub fn error(&mut self, text: impl Into<String>) {
        self.shell.error(text);
    }

    /// An answer from the I/O task: it names the screen it is for.
    pub fn on_response(&mut self, response: Response) {
        self.shell.pending = self.shell.pending.saturating_sub(1);
        match response {
            Response::Dashboard(d) => self.dashboard.data = Some(*d),
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
            Response::Tools { tools, types } => {
                self.tools.selected = self.tools.selected.min(tools.len().saturating_sub(1));
                self.tools.list = tools;
                self.tools.types = types;
            }
            Response::DeadLetters(list) => {
                self.tasks.selected = self.tasks.selected.min(list.len().saturating_sub(1));
                self.tasks.dead = Some(list);
            }
            Response::ToolInvalid { id, message, config } => {
                self.shell.error(format!("VALIDATION_ERROR: {message}"));
                self.tools.invalid = Some((id, message, config));
            }
            Response::Providers(list) => {
                self.providers.selected = self.providers.selected.min(list.len().saturating_sub(1));
                self.providers.list = list;
            }
            Response::Content { packages, banners } => {
                self.content.packages = packages;
                self.content.banners = banners;
                self.content.selected = self.content.selected.min(self.content.len().saturating_sub(1));
            }
            Response::Done { message, reload } => {
                self.shell.info(message);
                if let Some(reload) = reload {
                    self.shell.send(reload);
                }
                // Lists change too.
                if matches!(self.tab, Tab::Users | Tab::Tasks) {
                    self.refresh();
                }
            }
            Response::Failed { code, message } => self.shell.error(format!("{code}: {message}")),
        }
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
            self.shell.quit = true;
            return None;
        }
        if let Some(dialog) = self.shell.dialog.take() {
            self.on_dialog_key(dialog, key);
            return None;
        }
        if let Some(mut text) = self.shell.typing.take() {
            match key {
                Key::Enter => {
                    let title = self.screen(self.tab).title();
                    self.shell.filters.insert(title, text);
                    self.refresh();
                }
                Key::Esc => {}
                Key::Backspace => {
                    text.pop();
                    self.shell.typing = Some(text);
                }
                Key::Char(c) => {
                    text.push(c);
                    self.shell.typing = Some(text);
                }
                _ => self.shell.typing = Some(text),
            }
            return None;
        }
        if self.shell.help {
            self.shell.help = false;
            return None;
        }
        let i = Tab::ALL.iter().position(|t| *t == self.tab).unwrap_or(0);
        match key {
            Key::Char('q') => self.shell.quit = true,
            Key::Char('?') => self.shell.help = true,
            Key::Char('r') => self.refresh(),
            Key::Char('/') if self.screen(self.tab).filterable() => {
                let title = self.screen(self.tab).title();
                self.shell.typing = Some(self.shell.filter_of(title).unwrap_or_default());
            }
            Key::Tab => self.switch(Tab::ALL[(i + 1) % Tab::ALL.len()]),
            Key::BackTab => self.switch(Tab::ALL[(i + Tab::ALL.len() - 1) % Tab::ALL.len()]),
            Key::Char(c @ '1'..='6') => self.switch(Tab::ALL[c as usize - '1' as usize]),
            Key::Up | Key::Char('k') => {
                if let Some(s) = self.current().0.selected_mut() {
                    *s = s.saturating_sub(1);
                }
            }
            Key::Down | Key::Char('j') => {
                let (screen, shell) = self.current();
                let len = screen.list_len(shell);
                if let Some(s) = screen.selected_mut() {
                    *s = (*s + 1).min(len.saturating_sub(1));
                }
            }
            Key::Esc => {
                self.current().0.close_detail();
                self.shell.status = None;
            }
            other => {
                let (screen, shell) = self.current();
                return screen.on_key(other, shell);
            }
        }
        None
    }

    fn on_dialog_key(&mut self, dialog: Dialog, key: Key) {
        match dialog {
            Dialog::Confirm(confirm) => match key {
                Key::Char('y') | Key::Enter => {
                    let request = confirm.request();
                    self.shell.send(request);
                }
                Key::Char('n') | Key::Esc | Key::Char('q') => self.shell.info("cancelled"),
                _ => self.shell.dialog = Some(Dialog::Confirm(confirm)),
            },
            Dialog::Form(mut form, action) => match key {
                Key::Esc => self.shell.info("cancelled"),
                Key::Enter if form.on_last() => {
                    // The screen that opened the form checks and sends it.
                    let screen: &mut dyn Screen = match action {
                        FormAction::Adjust { .. } => &mut self.users,
                        FormAction::AddProvider | FormAction::RotateKey(_) => &mut self.providers,
                        FormAction::ToolType => &mut self.tools,
                        FormAction::Package(_) | FormAction::Banner(_) | FormAction::BannerWindow(_) => {
                            &mut self.content
                        }
                    };
                    if let Err(problem) = screen.on_form(&form, &action, &mut self.shell) {
                        form.error = Some(problem);
                        self.shell.dialog = Some(Dialog::Form(form, action));
                    }
                }
                other => {
                    form.on_key(other);
                    self.shell.dialog = Some(Dialog::Form(form, action));
                }
            },
        }
    }

    /// The edited text of a tool's config (see [`ToolsScreen::on_edited`]).
    pub fn on_tool_edited(&mut self, id: Option<Uuid>, text: &str) {
        match id {
            Some(id) => self.tools.on_edited(id, text, &mut self.shell),
            None => self.tools.on_new(text, &mut self.shell),
        }
    }
}
