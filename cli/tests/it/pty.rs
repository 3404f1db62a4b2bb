//! `funmagic run` in a real terminal: tmux gives it a pty, so indicatif draws its bars; the
//! pane is captured while it runs. Checks the live progress, the downloaded outputs, and
//! Ctrl-C detaching (exit 3, the task keeps running, `tasks watch` re-attaches).

use std::path::Path;
use std::time::Duration;

use funmagic_api::store::Role;
use funmagic_api::testing::{TempDir, TestApp, TestBackend};

use crate::{funmagic, stderr};

/// A private tmux server for one test.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Self {
        Self { socket: format!("funmagic-test-{}", uuid::Uuid::new_v4().simple()) }
    }

    fn available() -> bool {
        std::process::Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success())
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// Starts `script` under bash (which, unlike some sh, carries on after a child that
    /// handled Ctrl-C itself) in a 120×30 pane with the given environment.
    fn start(&self, dir: &Path, script: &str, env: &[(&str, String)]) {
        let file = dir.join(format!("script-{}.sh", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, script).unwrap();
        let run = format!("bash {}", file.display());
        let mut args = vec!["new-session", "-d", "-s", "t", "-x", "120", "-y", "30"];
        let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for pair in &pairs {
            args.push("-e");
            args.push(pair);
        }
        args.push(&run);
        let out = self.cmd(&args);
        assert!(out.status.success(), "tmux: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn capture(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// Captures the pane every 40 ms until `done` exists; returns every distinct frame.
async fn frames_until(tmux: &Tmux, done: &Path, limit: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut frames: Vec<String> = Vec::new();
    while !done.exists() {
        assert!(tokio::time::Instant::now() < deadline, "timed out; the screen:\n{}", tmux.capture());
        let frame = tmux.capture();
        if frames.last() != Some(&frame) {
            frames.push(frame);
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    frames.push(tmux.capture());
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_in_a_terminal_shows_progress_downloads_and_detaches() {
    if !Tmux::available() {
        assert!(std::env::var_os("CI").is_none(), "tmux is required in CI (.ci/run installs it)");
        eprintln!("skipping: tmux is not installed");
        return;
    }
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let token = crate::signed_in(&app, "ada@example.com", Role::User, 200).await;
    let work = TempDir::new("pty");
    let photo = work.path().join("photo.png");
    std::fs::write(&photo, funmagic_api::testing::sample_png(640, 480)).unwrap();
    let out_dir = work.path().join("out");
    let bin = env!("CARGO_BIN_EXE_funmagic");
    let env = [
        ("FUNMAGIC_API_URL", app.base_url()),
        ("FUNMAGIC_TOKEN", token.clone()),
        ("FUNMAGIC_CONFIG_DIR", work.path().join("cfg").display().to_string()),
        ("TERM", "xterm-256color".to_string()),
    ];
    // One tmux server per phase: killing a server's last session makes it exit, and a
    // client that reaches the same socket while it exits fails ("server exited unexpectedly").
    let tmux = Tmux::new();

    // figme in a style: both steps with live bars, then both files downloaded.
    let done = work.path().join("done1");
    tmux.start(
        work.path(),
        &format!(
            "{bin} run figme {} --style sketch --output {}; echo $? > {}; sleep 30",
            photo.display(),
            out_dir.display(),
            done.display()
        ),
        &env,
    );
    let frames = frames_until(&tmux, &done, Duration::from_secs(90)).await;
    let code = std::fs::read_to_string(&done).unwrap();
    let last = frames.last().unwrap();
    assert_eq!(code.trim(), "0", "{last}");
    let bar = frames.iter().any(|f| {
        f.lines().any(|l| (l.contains("image-gen") || l.contains("3d-gen")) && l.contains('%') && !l.contains("100%"))
    });
    assert!(bar, "a step's bar was drawn mid-way; frames:\n{}", frames.join("\n-----\n"));
    assert!(last.contains("completed"), "{last}");
    let styled = out_dir.join("photo-sketch.png");
    let model = out_dir.join("photo-sketch-relief.glb");
    assert!(last.contains("saved") && styled.exists() && model.exists(), "{last}");
    assert_eq!(image::open(&styled).unwrap().width(), 640);
    assert_eq!(&std::fs::read(&model).unwrap()[..4], b"glTF");
    drop(tmux);

    // Ctrl-C detaches: exit 3, a hint to re-attach, the task still runs to its end.
    let tmux = Tmux::new();
    let done = work.path().join("done2");
    tmux.start(
        work.path(),
        &format!("{bin} run echo --param delayMs=8000; echo $? > {}; sleep 30", done.display()),
        &env,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !tmux.capture().contains("echo") || !tmux.capture().contains('%') {
        assert!(tokio::time::Instant::now() < deadline, "no bar: {}", tmux.capture());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tmux.cmd(&["send-keys", "-t", "t", "C-c"]);
    let frames = frames_until(&tmux, &done, Duration::from_secs(20)).await;
    assert_eq!(std::fs::read_to_string(&done).unwrap().trim(), "3");
    let last = frames.last().unwrap();
    let id = last
        .split("funmagic tasks watch ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no re-attach hint: {last}"))
        .to_string();
    let cfg = TempDir::new("pty-cli");
    let out = funmagic(&cfg, &["--api-url", &app.base_url(), "--token", &token, "--json", "tasks", "watch", &id]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status =
        funmagic(&cfg, &["--api-url", &app.base_url(), "--token", &token, "--json", "tasks", "show", &id]).await;
    let detail: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(detail["task"]["status"], "completed", "detaching did not cancel");
}
