//! The committed example config and the README document every setting.

use funmagic_api::config::{SettingsLayer, settings_table};

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn example_config_parses_and_names_every_setting() {
    let text = repo_file("funmagic.example.toml");
    let layer = SettingsLayer::from_toml(&text).expect("the example config parses");
    layer.resolve().expect("the example config is valid");
    for doc in settings_table() {
        assert!(text.contains(&format!("env: {}", doc.env)), "example config does not document {}", doc.env);
        let leaf = doc.key.rsplit('.').next().unwrap();
        assert!(text.contains(&format!("{leaf} =")), "example config does not show key {}", doc.key);
    }
}

/// The README's settings table is exactly [`settings_table`], row for row
/// (`UPDATE_SNAPSHOTS=1` rewrites it).
#[test]
fn readme_documents_every_setting() {
    const HEADER: &str = "| file key | environment | default | meaning |\n|---|---|---|---|\n";
    let readme = repo_file("README.md");
    let start = readme.find(HEADER).expect("the README has the settings table") + HEADER.len();
    let end = start + readme[start..].find("\n\n").expect("a blank line ends the table") + 1;
    let rows: String = settings_table()
        .iter()
        .map(|doc| format!("| `{}` | `{}` | {} | {} |\n", doc.key, doc.env, doc.default, doc.help))
        .collect();
    if readme[start..end] != rows && std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        let path = format!("{}/../README.md", env!("CARGO_MANIFEST_DIR"));
        std::fs::write(path, format!("{}{rows}{}", &readme[..start], &readme[end..])).unwrap();
        return;
    }
    for (have, want) in readme[start..end].lines().zip(rows.lines()) {
        assert_eq!(have, want, "the README's settings table differs from the code (UPDATE_SNAPSHOTS=1 rewrites it)");
    }
    assert_eq!(readme[start..end].lines().count(), rows.lines().count(), "rows in the README's settings table");
}

/// A held submission answers within the bound `tasks.admit_wait_secs` allows (its
/// Idempotency-Key is held meanwhile, and the server's idle timeout must not cut it off).
#[test]
fn admit_wait_is_bounded() {
    for (secs, ok) in [(0, false), (1, true), (30, true), (31, false), (86_400, false)] {
        let mut layer = SettingsLayer::default();
        layer.tasks.admit_wait_secs = Some(secs);
        match layer.resolve() {
            Ok(settings) => {
                assert!(ok, "{secs} s was accepted");
                assert_eq!(settings.tasks.admit_wait_secs, secs);
            }
            Err(e) => {
                assert!(!ok, "{secs} s was refused: {e:?}");
                assert!(e.setting.contains("ADMIT_WAIT"), "{e:?}");
            }
        }
    }
}
