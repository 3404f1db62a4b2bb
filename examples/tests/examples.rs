//! Runs every SDK example against an embedded server, as a user would run them. `cargo
//! test` builds the examples (target/debug/examples/NAME) before it runs this.

use funmagic_api::store::{NewUser, Role, TransactionType};
use funmagic_api::testing::{TestApp, TestBackend};

fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(name);
    assert!(path.is_file(), "{} is not built (cargo test builds the examples)", path.display());
    path
}

async fn user(app: &TestApp, email: &str, role: Role, credits: i64) -> String {
    let state = app.state();
    let hash = state.hasher().hash("correct horse battery").await.unwrap();
    let new = NewUser { email: email.into(), name: "Example".into(), role, email_verified: true };
    let user = state.store().user_create_with_password(&new, &hash).await.unwrap();
    if credits > 0 {
        state
            .store()
            .credits_grant(user.id, TransactionType::Bonus, credits, &format!("seed-{email}"), None)
            .await
            .unwrap();
    }
    funmagic_api::accounts::flows::create_session(state, user, &Default::default()).await.unwrap().token
}

async fn run(app: &TestApp, token: &str, name: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new(example(name))
        .args(args)
        .current_dir(app.dir.path())
        .env("FUNMAGIC_API_URL", app.base_url())
        .env("FUNMAGIC_TOKEN", token)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{name} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_runs_against_an_embedded_server() {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let token = user(&app, "sdk@example.com", Role::User, 500).await;
    let admin = user(&app, "sdk-admin@example.com", Role::Admin, 0).await;
    std::fs::write(app.dir.path().join("photo.png"), funmagic_api::testing::sample_png(80, 60)).unwrap();

    let out = run(&app, &admin, "health", &[&app.base_url()]).await;
    assert!(out.contains("database") && out.contains("ok"), "{out}");
    let out = run(&app, &token, "run_echo", &[&app.base_url()]).await;
    assert!(out.contains("ended with completed"), "{out}");
    let out = run(&app, &token, "upload_run_download", &["photo.png", "out"]).await;
    assert!(out.contains("saved out/photo-cutout.png"), "{out}");
    assert!(app.dir.path().join("out/photo-cutout.png").is_file());
    let out = run(&app, &token, "figme_chain", &["photo.png", "posterize"]).await;
    assert!(
        out.contains("image-gen → 3d-gen") && out.contains("3D model:") && out.contains("model/gltf-binary"),
        "{out}"
    );
    let out = run(&app, &token, "follow_many", &["4"]).await;
    assert!(out.contains("4 of 4 tasks completed"), "{out}");
    let out = run(&app, &token, "paginate_assets", &[]).await;
    assert!(out.contains("image/png") && out.contains("model/gltf-binary"), "{out}");
    let out = run(&app, &admin, "admin_grant", &["sdk@example.com", "25", "thanks for testing"]).await;
    assert!(out.contains("sdk@example.com now has"), "{out}");
    // Run again: the same grant is not made twice.
    let again = run(&app, &admin, "admin_grant", &["sdk@example.com", "25", "thanks for testing"]).await;
    assert_eq!(out, again, "an idempotent grant: {again}");
}
