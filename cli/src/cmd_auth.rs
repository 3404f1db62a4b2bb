//! `funmagic auth …`: sign in (device flow like `gh auth login`, or email + password, or a
//! token on stdin), status, sign out, sign up, password reset, API keys.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use funmagic_sdk::types;

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{self, DIM, HEADER, field};

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Sign in and store the credentials in the profile (default: in the browser, by code).
    Login(LoginArgs),
    /// Show who you are signed in as.
    Status,
    /// End the session and forget the stored token.
    Logout,
    /// Create an account and sign in.
    Signup {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Ask for a password-reset token by mail.
    ForgotPassword {
        #[arg(long)]
        email: String,
    },
    /// Set a new password with the token from the reset mail.
    ResetPassword {
        #[arg(long)]
        token: String,
        /// Read the new password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Manage API keys for scripts and the SDK.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// List your signed-in sessions (browsers, CLIs), or end them.
    Sessions {
        #[command(subcommand)]
        command: Option<SessionsCommand>,
    },
    /// Show your profile, or change your name or picture.
    Profile {
        #[arg(long)]
        name: Option<String>,
        /// The picture: an image file (uploaded and published) or an http(s) URL.
        #[arg(long, conflicts_with = "remove_image", value_name = "FILE|URL")]
        image: Option<String>,
        /// Remove the picture.
        #[arg(long)]
        remove_image: bool,
    },
    /// Delete your account: sessions, keys and files go, running tasks are cancelled.
    DeleteAccount(DeleteAccountArgs),
    /// Your password.
    #[command(subcommand)]
    Password(PasswordCommand),
    /// Verify your email with the token from the mail, or (without one) send a new mail.
    VerifyEmail { token: Option<String> },
    /// Approve a device's sign-in by the code it shows (`funmagic auth login` elsewhere).
    Approve {
        /// The code the other terminal shows (ABCD-EFGH).
        code: String,
        /// Deny it instead.
        #[arg(long)]
        deny: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PasswordCommand {
    /// Change it: the current password, then the new one (prompted; or two lines of stdin).
    Change {
        #[arg(long)]
        password_stdin: bool,
        /// Keep your other sessions signed in (default: they are signed out).
        #[arg(long)]
        keep_sessions: bool,
        /// Also revoke your API keys.
        #[arg(long)]
        revoke_keys: bool,
    },
}

#[derive(Debug, Args)]
pub struct DeleteAccountArgs {
    /// Confirm: the account, its sessions, keys and files are deleted for good.
    #[arg(long)]
    yes: bool,
    /// Read the password from the first line of standard input.
    #[arg(long, conflicts_with = "no_password")]
    password_stdin: bool,
    /// The account has no password (OAuth sign-in only): use a session signed in within
    /// the last ten minutes.
    #[arg(long)]
    no_password: bool,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// End one session by id (your current one signs you out).
    Rm { id: uuid::Uuid },
    /// End every session but the one this CLI uses.
    RmOthers,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Sign in with this email and a password (prompted, or --password-stdin).
    #[arg(long, conflicts_with = "with_token")]
    email: Option<String>,
    /// With --email: read the password from the first line of standard input.
    #[arg(long, requires = "email")]
    password_stdin: bool,
    /// Read a session token or API key from standard input and store it.
    #[arg(long)]
    with_token: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value_t = Scope::Write)]
        scope: Scope,
        /// Days until the key expires, 1–3650 (default: never).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: Option<u32>,
    },
    /// List your keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: uuid::Uuid },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl From<Scope> for types::ApiKeyScope {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Read => Self::Read,
            Scope::Write => Self::Write,
            Scope::Admin => Self::Admin,
        }
    }
}

pub async fn run(ctx: &Context, command: AuthCommand) -> Result<ExitCode, CliError> {
    let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
    match command {
        AuthCommand::Login(args) => login(ctx, args).await,
        AuthCommand::Status => status(ctx).await,
        AuthCommand::Logout => {
            if ctx.token_source.is_some() {
                match ctx.client.auth_sign_out().await {
                    Ok(_) => {}
                    // An API key or an already-dead session: forgetting it is all there is to do.
                    Err(funmagic_sdk::Error::ErrorResponse(r)) if matches!(r.status().as_u16(), 400 | 401) => {}
                    Err(e) => return Err(sdk(e)),
                }
            }
            ctx.store_token(None)?;
            done(ctx, "signed out", serde_json::json!({ "signedOut": true, "profile": ctx.profile }));
            Ok(ExitCode::SUCCESS)
        }
        AuthCommand::Signup { email, name, password_stdin } => {
            let password = read_password(password_stdin, true)?;
            let body = types::SignUpRequest {
                name: field("name", name)?,
                email: field("email", email)?,
                password: field("password", password)?,
            };
            let signed = ctx.client.auth_sign_up_email(&body).await.map_err(sdk)?.into_inner();
            let path = ctx.store_token(Some(&signed.token))?;
            done(
                ctx,
                &format!("created {} and signed in (credentials in {})", signed.user.email, path.display()),
                serde_json::json!({ "user": signed.user, "profile": ctx.profile }),
            );
            Ok(ExitCode::SUCCESS)
        }
        AuthCommand::ForgotPassword { email } => {
            ctx.client
                .auth_password_reset_request(&types::PasswordResetRequest { email: field("email", email)? })
                .await
                .map_err(sdk)?;
            done(
                ctx,
                "if that address has an account, a reset token is on its way",
                serde_json::json!({ "requested": true }),
            );
            Ok(ExitCode::SUCCESS)
        }
        AuthCommand::ResetPassword { token, password_stdin } => {
            let new_password = read_password(password_stdin, true)?;
            ctx.client
                .auth_password_reset(&types::ResetPasswordRequest {
                    token: field("token", token)?,
                    new_password: field("new password", new_password)?,
                })
                .await
                .map_err(sdk)?;
            done(
                ctx,
                "password changed; every session was signed out — run `funmagic auth login`",
                serde_json::json!({ "reset": true }),
            );
            Ok(ExitCode::SUCCESS)
        }
        AuthCommand::Password(PasswordCommand::Change { password_stdin, keep_sessions, revoke_keys }) => {
            if !password_stdin {
                eprintln!("Current password, then the new one:");
            }
            let current = read_password(password_stdin, false)?;
            let new_password = read_password(password_stdin, !password_stdin)?;
            let body = types::ChangePasswordRequest {
                current_password: field("current password", current)?,
                new_password: field("new password", new_password)?,
                revoke_other_sessions: Some(!keep_sessions),
                revoke_api_keys: Some(revoke_keys),
            };
            let r = ctx.client.auth_password_change(&body).await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&r);
            } else {
                done(ctx, "password changed", serde_json::Value::Null);
            }
            Ok(ExitCode::SUCCESS)
        }
        AuthCommand::VerifyEmail { token: Some(token) } => {
            let user = ctx.client.auth_email_verify(&field("token", token)?).await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&user);
            } else {
                done(ctx, &format!("{} is verified", user.email), serde_json::Value::Null);
            }
            Ok(ExitCode::SUCCESS)
        }
        AuthCommand::VerifyEmail { token: None } => {
            ctx.client.auth_verification_email_send().await.map_err(sdk)?;
            done(ctx, "a new verification mail is on its way", serde_json::json!({ "sent": true }));
            Ok(ExitCode::SUCCESS)
        }
        AuthCommand::Approve { code, deny, yes } => {
            let user_code: types::Line64 = field("code", &code)?;
            let pending = ctx.client.auth_device_pending_get(&user_code).await.map_err(sdk)?.into_inner();
            let client = if pending.client_name.is_empty() {
                "an unnamed client".to_string()
            } else {
                pending.client_name.clone()
            };
            if !yes && !deny {
                if !std::io::stdin().is_terminal() {
                    return Err(CliError::usage("approving gives full access to your account: pass --yes to confirm"));
                }
                eprint!(
                    "Approve {client} (code {}, asked {} s ago) with full access to your account? [y/N] ",
                    pending.user_code, pending.age_secs
                );
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer).map_err(|e| CliError::other(e.to_string()))?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Err(CliError::new(crate::exit::Exit::Cancelled, "not approved"));
                }
            }
            let body = types::DeviceApproveRequest { user_code: field("code", pending.user_code)?, approve: !deny };
            let r = ctx.client.auth_device_approve(&body).await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&r);
            } else if deny {
                done(ctx, &format!("denied {client}"), serde_json::Value::Null);
            } else {
                done(ctx, &format!("approved {client}"), serde_json::Value::Null);
            }
            Ok(ExitCode::SUCCESS)
        }
        AuthCommand::DeleteAccount(args) => {
            if !args.yes {
                return Err(CliError::usage(
                    "this deletes your account, its sessions, API keys and files for good: pass --yes",
                ));
            }
            let password = if args.no_password { None } else { Some(read_password(args.password_stdin, false)?) };
            let body = types::DeleteAccountRequest { password: password.map(|p| field("password", p)).transpose()? };
            ctx.client.auth_user_delete(&body).await.map_err(sdk)?;
            ctx.store_token(None)?;
            done(ctx, "account deleted", serde_json::json!({ "deleted": true, "profile": ctx.profile }));
            Ok(ExitCode::SUCCESS)
        }
        AuthCommand::Keys(keys) => run_keys(ctx, keys).await,
        AuthCommand::Sessions { command } => run_sessions(ctx, command).await,
        AuthCommand::Profile { name, image, remove_image } => {
            let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
            let user = if name.is_none() && image.is_none() && !remove_image {
                ctx.client.auth_session_get().await.map_err(sdk)?.into_inner().user
            } else {
                // A URL is sent as it is; anything else is a file to upload first.
                let (url, asset) = match image {
                    Some(i) if i.starts_with("http://") || i.starts_with("https://") => (Some(i), None),
                    Some(path) => {
                        let path = std::path::PathBuf::from(path);
                        if !path.is_file() {
                            return Err(CliError::usage(format!(
                                "{} is not a file nor an http(s) URL",
                                path.display()
                            )));
                        }
                        (None, Some(crate::cmd_assets::upload_with_bar(ctx, &path, Some("avatars")).await?.id))
                    }
                    None => (None, None),
                };
                let body = types::UpdateProfileRequest {
                    name: name.map(|n| field("name", n)).transpose()?,
                    image: url.map(|i| field("image", i)).transpose()?,
                    image_asset_id: asset,
                    remove_image: remove_image.then_some(true),
                };
                ctx.client.auth_user_update(&body).await.map_err(sdk)?.into_inner()
            };
            if ctx.json {
                output::print_json(&user);
            } else {
                println!("{}", user.name.as_str());
                println!(
                    "{} {}",
                    user.email.as_str(),
                    if user.email_verified { "(verified)" } else { "(not verified)" }
                );
                println!("picture: {}", user.image.as_deref().unwrap_or("—"));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn run_sessions(ctx: &Context, command: Option<SessionsCommand>) -> Result<ExitCode, CliError> {
    let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
    match command {
        None => {
            let list = ctx.client.auth_session_list().await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&list);
            } else {
                let mut rows = vec![
                    ["ID", "", "CREATED", "LAST USED", "EXPIRES", "ADDRESS", "CLIENT"]
                        .map(|h| (h.to_string(), HEADER))
                        .to_vec(),
                ];
                let date = |d: chrono::DateTime<chrono::Utc>| d.format("%Y-%m-%d %H:%M").to_string();
                for s in list.sessions {
                    let plain = anstyle::Style::new();
                    rows.push(vec![
                        (s.id.to_string(), DIM),
                        ((if s.current { "current" } else { "" }).to_string(), output::OK),
                        (date(s.created_at), plain),
                        (s.last_used_at.format("%Y-%m-%d").to_string(), plain),
                        (date(s.expires_at), plain),
                        (s.ip_address.unwrap_or_else(|| "—".into()), plain),
                        (s.user_agent.unwrap_or_else(|| "—".into()).chars().take(40).collect(), plain),
                    ]);
                }
                output::print_table(&rows);
            }
        }
        Some(SessionsCommand::Rm { id }) => {
            ctx.client.auth_session_revoke(&id).await.map_err(sdk)?;
            done(ctx, &format!("session {id} ended"), serde_json::json!({ "revoked": id }));
        }
        Some(SessionsCommand::RmOthers) => {
            let ended = ctx.client.auth_sessions_revoke_others().await.map_err(sdk)?.into_inner();
            done(ctx, &format!("{} other sessions ended", ended.revoked), serde_json::json!(ended));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a success line, or `json` with `--json`.
fn done(ctx: &Context, human: &str, json: serde_json::Value) {
    if ctx.json {
        output::print_json(&json);
    } else {
        anstream::println!("{}✓{} {human}", output::OK.render(), output::OK.render_reset());
    }
}

async fn login(ctx: &Context, args: LoginArgs) -> Result<ExitCode, CliError> {
    let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
    let token = if args.with_token {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| CliError::other(format!("reading stdin: {e}")))?;
        let token = line.trim().to_string();
        if token.is_empty() {
            return Err(CliError::usage("--with-token: standard input was empty"));
        }
        token
    } else if let Some(email) = args.email {
        let password = read_password(args.password_stdin, false)?;
        ctx.client
            .auth_sign_in_email(&types::SignInRequest {
                email: field("email", email)?,
                password: field("password", password)?,
            })
            .await
            .map_err(sdk)?
            .into_inner()
            .token
    } else {
        device_login(ctx).await?
    };
    // Check the token before storing it.
    let me = ctx.client_with_token(&token)?.auth_session_get().await.map_err(sdk)?.into_inner();
    let path = ctx.store_token(Some(&token))?;
    done(
        ctx,
        &format!(
            "signed in to {} as {} ({}); credentials in {}",
            ctx.api_url,
            me.user.email,
            me.user.role,
            path.display()
        ),
        serde_json::json!({ "user": me.user, "profile": ctx.profile, "apiUrl": ctx.api_url }),
    );
    Ok(ExitCode::SUCCESS)
}

/// RFC 8628: show a code, let the person approve it in a browser, poll for the token.
async fn device_login(ctx: &Context) -> Result<String, CliError> {
    let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
    let client_id = format!("funmagic CLI {}", env!("CARGO_PKG_VERSION"));
    let code = ctx
        .client
        .auth_device_code_create(&types::DeviceCodeRequest { client_id: Some(field("client id", client_id)?) })
        .await
        .map_err(sdk)?
        .into_inner();
    anstream::eprintln!(
        "Open {} in a browser and confirm the code {}{}{}\n{}(or go to {} and type it){}",
        code.verification_uri_complete,
        HEADER.render(),
        code.user_code,
        HEADER.render_reset(),
        DIM.render(),
        code.verification_uri,
        DIM.render_reset()
    );
    let deadline = Instant::now() + Duration::from_secs(code.expires_in.max(1) as u64);
    let mut interval = Duration::from_secs(code.interval.max(1) as u64);
    let request = types::DeviceTokenRequest {
        grant_type: types::DeviceGrantType::UrnIetfParamsOauthGrantTypeDeviceCode,
        device_code: field("device code", &code.device_code)?,
    };
    loop {
        if Instant::now() >= deadline {
            return Err(CliError::new(
                Exit::Cancelled,
                "the code expired before it was approved; run `funmagic auth login` again",
            ));
        }
        tokio::time::sleep(interval).await;
        match ctx.client.auth_device_token_create(&request).await {
            Ok(token) => return Ok(token.into_inner().access_token),
            Err(funmagic_sdk::Error::ErrorResponse(resp)) if resp.status().as_u16() == 400 => {
                match resp.into_inner().error.as_str() {
                    "authorization_pending" => {}
                    "slow_down" => interval += Duration::from_secs(5),
                    "access_denied" => return Err(CliError::new(Exit::Auth, "the sign-in request was denied")),
                    "expired_token" => {
                        return Err(CliError::new(
                            Exit::Cancelled,
                            "the code expired; run `funmagic auth login` again",
                        ));
                    }
                    other => return Err(CliError::new(Exit::Auth, format!("sign-in failed: {other}"))),
                }
            }
            Err(e) => return Err(sdk(e)),
        }
    }
}

async fn status(ctx: &Context) -> Result<ExitCode, CliError> {
    if ctx.token_source.is_none() {
        return Err(CliError::new(
            Exit::Auth,
            format!("not signed in (profile '{}'); run `funmagic auth login`", ctx.profile),
        ));
    }
    let me = ctx.client.auth_session_get().await.map_err(|e| CliError::from_sdk(e, &ctx.api_url))?.into_inner();
    if ctx.json {
        let mut value = serde_json::to_value(&me).unwrap_or_default();
        value["profile"] = ctx.profile.clone().into();
        value["apiUrl"] = ctx.api_url.clone().into();
        output::print_json(&value);
    } else {
        let credential = match (&me.session, &me.api_key_id) {
            (Some(s), _) => format!("session, expires {}", s.expires_at.format("%Y-%m-%d %H:%M UTC")),
            (None, Some(id)) => format!("API key {id}"),
            _ => "unknown".into(),
        };
        println!("Signed in to {} as {} <{}>", ctx.api_url, me.user.name, me.user.email);
        println!("  role:       {}", me.user.role);
        println!("  scope:      {}", me.scope);
        println!("  credential: {credential} (from {})", ctx.token_source.unwrap_or("profile"));
        println!("  profile:    {}", ctx.profile);
        if !me.user.email_verified {
            println!("  email not verified yet: check your inbox");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_keys(ctx: &Context, command: KeysCommand) -> Result<ExitCode, CliError> {
    let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
    match command {
        KeysCommand::Create { name, scope, expires_in_days } => {
            let expires_in_days = expires_in_days.and_then(std::num::NonZeroU32::new);
            let body = types::CreateApiKeyRequest { name: field("name", name)?, scope: scope.into(), expires_in_days };
            let created = ctx.client.auth_api_key_create(&body).await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&created);
            } else {
                println!("{}", created.key);
                eprintln!(
                    "API key '{}' ({}) created: this is the only time its secret is shown.",
                    created.api_key.name, created.api_key.id
                );
            }
        }
        KeysCommand::List => {
            let list = ctx.client.auth_api_key_list().await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&list);
            } else {
                let mut rows = vec![
                    ["ID", "NAME", "PREFIX", "SCOPE", "CREATED", "LAST USED", "EXPIRES"]
                        .map(|h| (h.to_string(), HEADER))
                        .to_vec(),
                ];
                let date = |d: Option<chrono::DateTime<chrono::Utc>>| {
                    d.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "—".into())
                };
                for k in list.api_keys {
                    let plain = anstyle::Style::new();
                    rows.push(vec![
                        (k.id.to_string(), DIM),
                        (k.name, plain),
                        (format!("{}…", k.prefix), plain),
                        (k.scope.to_string(), plain),
                        (date(Some(k.created_at)), plain),
                        (date(k.last_used_at), plain),
                        (date(k.expires_at), plain),
                    ]);
                }
                output::print_table(&rows);
            }
        }
        KeysCommand::Revoke { id } => {
            ctx.client.auth_api_key_revoke(&id).await.map_err(sdk)?;
            done(ctx, &format!("revoked {id}"), serde_json::json!({ "revoked": id }));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A password from stdin (`--password-stdin`) or a terminal prompt that does not echo.
fn read_password(from_stdin: bool, confirm: bool) -> Result<String, CliError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| CliError::other(format!("reading stdin: {e}")))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(CliError::usage("no terminal to ask for a password: pass --password-stdin"));
    }
    let password = rpassword::prompt_password("Password: ").map_err(|e| CliError::other(e.to_string()))?;
    if confirm && rpassword::prompt_password("Repeat:   ").map_err(|e| CliError::other(e.to_string()))? != password {
        return Err(CliError::usage("the passwords differ"));
    }
    Ok(password)
}
