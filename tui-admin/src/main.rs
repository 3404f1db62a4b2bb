//! `funmagic-admin`: the terminal admin console. Signs in with the `funmagic` CLI's
//! profiles (or `--token` / `FUNMAGIC_TOKEN`), refuses accounts that are not admins, then
//! runs the console until `q`. The terminal is restored on every exit, panics included.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use funmagic_admin::app::{App, Effect, Key};
use funmagic_admin::{io, ui};
use funmagic_sdk::types::UserRole;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

#[derive(Debug, Parser)]
#[command(name = "funmagic-admin", version, about = "FunMagic terminal admin console")]
struct Args {
    /// The API (default: the profile's, else http://127.0.0.1:8000).
    #[arg(long, env = "FUNMAGIC_API_URL")]
    api_url: Option<String>,
    /// A session token or API key (default: the profile's, from `funmagic auth login`).
    #[arg(long, env = "FUNMAGIC_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The `funmagic` profile to use.
    #[arg(long, env = "FUNMAGIC_PROFILE", default_value = "default")]
    profile: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("funmagic-admin: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("funmagic-admin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = funmagic_sdk::profiles::ConfigFile::load()?;
    let profile = config.profiles.get(&args.profile).cloned().unwrap_or_default();
    let api_url = args.api_url.or(profile.api_url).unwrap_or_else(|| funmagic_sdk::DEFAULT_API_URL.to_string());
    let Some(token) = args.token.or(profile.token) else {
        anyhow::bail!("not signed in: run `funmagic auth login` (profile '{}') or pass --token", args.profile);
    };
    let client = funmagic_sdk::ClientBuilder::new(api_url.clone()).token(&token).build()?;
    let me = match client.auth_session_get().await {
        Ok(s) => s.into_inner().user,
        Err(funmagic_sdk::Error::ErrorResponse(r)) if r.status().as_u16() == 401 => {
            anyhow::bail!("the saved credentials are no longer valid: run `funmagic auth login`")
        }
        Err(funmagic_sdk::Error::CommunicationError(e)) => anyhow::bail!("cannot reach {api_url}: {e}"),
        Err(funmagic_sdk::Error::ErrorResponse(r)) => {
            let status = r.status().as_u16();
            let body = r.into_inner();
            anyhow::bail!("{api_url} refused the sign-in check: {} ({}, {status})", body.error, body.code)
        }
        Err(e) => anyhow::bail!("unexpected answer from {api_url}: {e}"),
    };
    if !matches!(me.role, UserRole::Admin | UserRole::SuperAdmin) {
        anyhow::bail!("{} is a {} account; funmagic-admin is for admins", me.email, me.role);
    }
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let (requests, mut responses) = io::spawn(client);
    let mut app = App::new(me, api_url, requests, color);
    app.refresh();
    // Keys come from a blocking thread (crossterm's reader); never read on the async side.
    let (key_tx, mut keys) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let (ctl_tx, ctl_rx) = std::sync::mpsc::channel::<Ctl>();
    std::thread::spawn(move || {
        loop {
            match ctl_rx.try_recv() {
                Ok(Ctl::Pause(ack)) => {
                    // The editor owns the terminal: say so, and read nothing until it is back.
                    let _ = ack.send(());
                    loop {
                        match ctl_rx.recv() {
                            Ok(Ctl::Resume) => break,
                            Ok(Ctl::Pause(ack)) => {
                                let _ = ack.send(());
                            }
                            Err(_) => return,
                        }
                    }
                }
                Ok(Ctl::Resume) | Err(std::sync::mpsc::TryRecvError::Empty) => {}
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            }
            // An input error ends the thread; the closed channel then ends the console.
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => match event::read() {
                    Ok(e) => {
                        if key_tx.send(e).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(_) => return,
            }
        }
    });
    let mut terminal = ratatui::init();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let result: anyhow::Result<()> = loop {
        if let Err(e) = terminal.draw(|f| ui::draw(f, &app)) {
            break Err(e.into());
        }
        if app.shell.quit {
            break Ok(());
        }
        tokio::select! {
            event = keys.recv() => {
                let Some(event) = event else { break Err(anyhow::anyhow!("the terminal's input closed")) };
                let Some(key) = to_key(&event) else { continue };
                if let Some(Effect::EditTool { id, config }) = app.on_key(key) {
                    let (ack_tx, ack_rx) = std::sync::mpsc::channel();
                    let _ = ctl_tx.send(Ctl::Pause(ack_tx));
                    // The key reader finishes its current poll (≤ 100 ms) and stops reading.
                    let _ = ack_rx.recv_timeout(Duration::from_secs(1));
                    ratatui::restore();
                    let edited = edit(&config);
                    terminal = ratatui::init();
                    let _ = ctl_tx.send(Ctl::Resume);
                    match edited {
                        Ok(text) => app.on_tool_edited(id, &text),
                        Err(e) => app.error(format!("EDITOR: {e:#}")),
                    }
                }
            }
            Some(response) = responses.recv() => app.on_response(response),
            _ = tick.tick() => {
                // The dashboard and the task list refresh themselves.
                if matches!(app.tab, funmagic_admin::app::Tab::Dashboard | funmagic_admin::app::Tab::Tasks)
                    && app.shell.dialog.is_none() && app.shell.pending == 0
                {
                    app.refresh();
                }
            }
        }
    };
    ratatui::restore();
    result
}

/// Control of the key-reader thread.
enum Ctl {
    /// Stop reading (acknowledged on the sender) until `Resume`.
    Pause(std::sync::mpsc::Sender<()>),
    Resume,
}

fn to_key(event: &Event) -> Option<Key> {
    let Event::Key(k) = event else { return None };
    if k.kind != KeyEventKind::Press {
        return None;
    }
    Some(match k.code {
        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => Key::CtrlC,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Backspace => Key::Backspace,
        _ => return None,
    })
}

/// Opens `text` in `$VISUAL`/`$EDITOR` (default `vi`) and returns what was saved.
fn edit(text: &str) -> anyhow::Result<String> {
    let file = tempfile::Builder::new().prefix("funmagic-tool-").suffix(".json").tempfile()?;
    std::fs::write(file.path(), text)?;
    let editor = std::env::var("VISUAL").or_else(|_| std::env::var("EDITOR")).unwrap_or_else(|_| "vi".into());
    let mut parts = editor.split_whitespace();
    let program = parts.next().unwrap_or("vi");
    let status = std::process::Command::new(program)
        .args(parts)
        .arg(file.path())
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run '{program}' (set $EDITOR): {e}"))?;
    if !status.success() {
        anyhow::bail!("{editor} exited with {status}; nothing saved");
    }
    Ok(std::fs::read_to_string(file.path())?)
}
