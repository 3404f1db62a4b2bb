//! The README's quickstart, run as a newcomer would: the `funmagic …` lines of its first
//! shell block, parsed from README.md (so they cannot drift), each run by `bash` in a fresh
//! directory holding `photo.png`, against a server with the embedded default settings (the
//! welcome grant included). Two substitutions only: the sign-up line gets its password on
//! stdin (a newcomer types it at the prompt), and `<id>` is the asset id `funmagic upload`
//! printed. Every line must succeed, and the files the README promises must appear.

use funmagic_api::app::{AppState, Migrations};
use funmagic_api::config::SettingsLayer;
use funmagic_api::testing::TempDir;

fn quickstart_lines() -> Vec<String> {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let section = readme.split("## Quickstart").nth(1).expect("a Quickstart section");
    let section = section.split("\n## ").next().unwrap();
    let mut lines = Vec::new();
    let mut in_sh = false;
    for line in section.lines() {
        if line.starts_with("```") {
            if in_sh && !lines.is_empty() {
                break; // the first block of `funmagic` lines is the quickstart
            }
            in_sh = !in_sh && line.trim() == "```sh";
            continue;
        }
        if in_sh && line.starts_with("funmagic ") {
            // The comment after the command (two spaces, then #) is for the reader.
            let command = line.split(" #").next().unwrap().trim_end();
            lines.push(command.to_string());
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quickstart_works_as_written() {
    let lines = quickstart_lines();
    assert!(lines.len() >= 10, "the quickstart was parsed: {lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("funmagic run background-remove")), "{lines:?}");

    // The server with the embedded defaults (only the data directory is ours).
    let data = TempDir::new("quickstart-data");
    let mut layer = SettingsLayer { data_dir: Some(data.path().to_path_buf()), ..Default::default() };
    layer.log.level = Some("warn".into());
    let settings = layer.resolve().unwrap();
    let state = AppState::build(settings, Migrations::Apply).await.unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(funmagic_api::worker::run_workers(state.clone(), 2, stop));
    let server = funmagic_api::server::spawn(state, "127.0.0.1:0".parse().unwrap()).await.unwrap();

    let home = TempDir::new("quickstart-home");
    let work = home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("photo.png"), funmagic_api::testing::sample_png(120, 90)).unwrap();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_funmagic")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());

    let mut asset_id = String::new();
    for line in &lines {
        let mut command = line.replace("<id>", &asset_id);
        let mut stdin = None;
        if command.starts_with("funmagic auth signup") {
            command.push_str(" --password-stdin");
            stdin = Some("a newcomer's password\n");
        }
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg("-c")
            .arg(&command)
            .current_dir(&work)
            .env("PATH", &path)
            .env("FUNMAGIC_API_URL", server.base_url())
            .env("FUNMAGIC_CONFIG_DIR", home.path().join("config"))
            .env_remove("FUNMAGIC_TOKEN")
            .env_remove("FUNMAGIC_PROFILE")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().unwrap();
            if let Some(input) = stdin {
                pipe.write_all(input.as_bytes()).await.unwrap();
            }
        }
        let out = tokio::time::timeout(std::time::Duration::from_secs(120), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("`{command}` did not finish"))
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("$ {command}\n{stdout}{stderr}");
        assert!(out.status.success(), "`{command}` failed ({}):\n{stdout}\n{stderr}", out.status);
        if command.starts_with("funmagic upload") {
            asset_id =
                stdout.split_whitespace().find(|w| w.parse::<uuid::Uuid>().is_ok()).expect("an asset id").to_string();
        }
    }
    for file in ["copy.png", "out/photo-cutout.png"] {
        assert!(work.join(file).is_file(), "the quickstart promised {file}");
    }
    let outputs: Vec<String> = std::fs::read_dir(work.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(outputs.iter().any(|f| f.ends_with(".glb")), "figme's 3D model: {outputs:?}");
    assert!(outputs.iter().any(|f| f.ends_with(".ply")), "crystal-memory's point cloud: {outputs:?}");
}
