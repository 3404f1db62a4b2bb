//! The committed example config and the README document every setting.

use funmagic_api::config::{SETTINGS_TABLE, SettingsLayer};

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn example_config_parses_and_names_every_setting() {
    let text = repo_file("funmagic.example.toml");
    let layer = SettingsLayer::from_toml(&text).expect("the example config parses");
    layer.resolve().expect("the example config is valid");
    for doc in SETTINGS_TABLE {
        assert!(text.contains(&format!("env: {}", doc.env)), "example config does not document {}", doc.env);
        let leaf = doc.key.rsplit('.').next().unwrap();
        assert!(text.contains(&format!("{leaf} =")), "example config does not show key {}", doc.key);
    }
}

#[test]
fn readme_documents_every_setting() {
    let readme = repo_file("README.md");
    for doc in SETTINGS_TABLE {
        assert!(readme.contains(&format!("`{}`", doc.env)), "README does not document {}", doc.env);
        assert!(readme.contains(&format!("`{}`", doc.key)), "README does not document key {}", doc.key);
    }
}
