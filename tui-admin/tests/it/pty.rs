//! The real `funmagic-admin` in a terminal (tmux): sign in with a CLI profile, find a user,
//! adjust their credits through the form and the confirmation, quit; the change is checked
//! through the API. A non-admin account is refused with a clear message.

use std::time::Duration;

use funmagic_api::store::Role;
use funmagic_api::testing::{TempDir, TestApp, TestBackend};

use crate::user;

const BIN: &str = env!("CARGO_BIN_EXE_funmagic-admin");

struct Tmux(String);

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("tmux").args(["-L", &self.0, "-f", "/dev/null"]).args(args).output().expect("tmux")
    }
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }
    async fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.cmd(&["send-keys", "-t", "t", k]);
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }
    async fn wait_for(&self, what: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if screen.contains(what) {
                return screen;
            }
            assert!(tokio::time::Instant::now() < deadline, "'{what}' never appeared:\n{screen}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_find_a_user_adjust_credits() {
    if std::process::Command::new("tmux").arg("-V").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "tmux is required in CI (.ci/run installs it)");
        eprintln!("skipping: tmux is not installed");
        return;
    }
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let (_, root) = user(&app, "root@example.com", Role::SuperAdmin, 0).await;
    let (ada_id, ada) = user(&app, "ada@example.com", Role::User, 100).await;
    let (bob_id, bob) = user(&app, "bob@example.com", Role::User, 0).await;
    // The CLI's profile file: the console signs in with it.
    let cfg = TempDir::new("tui-pty");
    let mut profiles = funmagic_sdk::profiles::ConfigFile::default();
    profiles.profiles.insert(
        "default".into(),
        funmagic_sdk::profiles::Profile { api_url: Some(app.base_url()), token: Some(root.clone()) },
    );
    let path = cfg.path().join("config.toml");
    std::fs::write(&path, toml_of(&profiles)).unwrap();

    let tmux = Tmux(format!("funmagic-admin-{}", std::process::id()));
    let done = cfg.path().join("exit");
    let script = cfg.path().join("run.sh");
    std::fs::write(&script, format!("{BIN}; echo $? > {}; sleep 30", done.display())).unwrap();
    let env = format!("FUNMAGIC_CONFIG_DIR={}", cfg.path().display());
    // An "editor" that first breaks the tool's config, then fixes it and raises the cost.
    let editor = cfg.path().join("editor.sh");
    let count = cfg.path().join("edits");
    let c = count.display();
    std::fs::write(
        &editor,
        format!(
            "n=$(cat {c} 2>/dev/null || echo 0); echo $((n+1)) > {c}\n\
             if [ \"$n\" = 0 ]; then sed -i 's/\"type\": \"echo\"/\"type\": \"teleport\"/' \"$1\"\n\
             else sed -i 's/\"type\": \"teleport\"/\"type\": \"echo\"/; s/\"cost\": 1/\"cost\": 2/' \"$1\"; fi\n"
        ),
    )
    .unwrap();
    let editor_env = format!("EDITOR=bash {}", editor.display());
    let run = format!("bash {}", script.display());
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "110",
        "-y",
        "32",
        "-e",
        &env,
        "-e",
        &editor_env,
        "-e",
        "TERM=xterm-256color",
        &run,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    tmux.wait_for("root@example.com (super_admin)").await;
    tmux.wait_for("Queue").await;
    tmux.keys(&["2"]).await;
    tmux.wait_for("bob@example.com").await;
    tmux.keys(&["/", "a", "d", "a", "Enter"]).await;
    tmux.wait_for("Users matching 'ada'").await;
    tmux.keys(&["Enter"]).await;
    tmux.wait_for("credits 100").await;
    tmux.keys(&["c", "2", "5", "Tab", "w", "e", "l", "c", "o", "m", "e", "Enter"]).await;
    let confirm = tmux.wait_for("balance 100 → 125").await;
    assert!(confirm.contains("reason: welcome"), "{confirm}");
    tmux.keys(&["y"]).await;
    tmux.wait_for("credits adjusted by +25").await;
    tmux.wait_for("credits 125").await;
    // Deleting an account: confirmed, then gone from the API at once.
    tmux.keys(&["/", "BSpace", "BSpace", "BSpace", "b", "o", "b", "Enter"]).await;
    tmux.wait_for("Users matching 'bob'").await;
    tmux.keys(&["D"]).await;
    let confirm = tmux.wait_for("Delete the account bob@example.com?").await;
    assert!(confirm.contains("anonymised record"), "{confirm}");
    tmux.keys(&["y"]).await;
    tmux.wait_for("account deleted").await;
    let as_bob = funmagic_sdk::ClientBuilder::new(app.base_url()).token(&bob).build().unwrap();
    assert!(as_bob.auth_session_get().await.is_err(), "bob's session ended");
    assert!(app.state().store().user_get(bob_id).await.unwrap().unwrap().deleted_at.is_some());
    // Tools: the config edited in $EDITOR; a refused edit is shown inline, then fixed.
    tmux.keys(&["4"]).await;
    tmux.wait_for("crystal-memory").await;
    tmux.keys(&["/", "e", "c", "h", "o", "Enter"]).await;
    tmux.wait_for("echo:echo").await;
    tmux.keys(&["e"]).await;
    let refused = tmux.wait_for("Not saved").await;
    assert!(refused.contains("unknown step type 'teleport'"), "{refused}");
    tmux.keys(&["e"]).await;
    tmux.wait_for("tool echo saved").await;
    let tools = funmagic_sdk::ClientBuilder::new(app.base_url()).token(&root).build().unwrap();
    let echo = tools.tool_get(&"echo".parse().unwrap(), None, None).await.unwrap().into_inner();
    assert_eq!(echo.credits_cost, 2, "saved through the editor");
    tmux.keys(&["q"]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done.exists() {
        assert!(tokio::time::Instant::now() < deadline, "did not quit:\n{}", tmux.screen());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::read_to_string(&done).unwrap().trim(), "0");

    // Through the API: the adjustment is there, with its reason.
    let as_ada = funmagic_sdk::ClientBuilder::new(app.base_url()).token(&ada).build().unwrap();
    assert_eq!(as_ada.credits_balance_get().await.unwrap().into_inner().balance, 125);
    let history = as_ada.credits_transaction_list(None, None, None).await.unwrap().into_inner();
    assert!(
        history
            .transactions
            .iter()
            .any(|t| t.amount == 25 && t.description.as_deref() == Some("welcome (by root@example.com)"))
    );
    let _ = ada_id;

    // A user account is refused, with a clear message and a failing exit code.
    let out = std::process::Command::new(BIN)
        .env("FUNMAGIC_CONFIG_DIR", cfg.path())
        .env("FUNMAGIC_TOKEN", &ada)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("ada@example.com is a user account; funmagic-admin is for admins")
    );
}

fn toml_of(config: &funmagic_sdk::profiles::ConfigFile) -> String {
    let mut out = String::new();
    for (name, p) in &config.profiles {
        out.push_str(&format!("[profiles.{name}]\n"));
        if let Some(url) = &p.api_url {
            out.push_str(&format!("api_url = \"{url}\"\n"));
        }
        if let Some(token) = &p.token {
            out.push_str(&format!("token = \"{token}\"\n"));
        }
    }
    out
}
