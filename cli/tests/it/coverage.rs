//! Every operation of the spec is reachable from the CLI: each `operationId` is called by
//! a command (`cli/src/cmd_*.rs`), or by the SDK helper a command uses for it (uploads and
//! downloads in `sdk/src/files.rs`, live progress in `sdk/src/events.rs`, keyed and
//! retried submissions in `sdk/src/retry.rs`). A new route
//! without a command fails here; a route that is deliberately left out goes in
//! `EXCEPTIONS` with its reason.

/// Operations the CLI does not call, with the reason. (None today: every route has one.)
const EXCEPTIONS: &[(&str, &str)] = &[];

/// Where a command reaches an operation through the SDK's hand-written helpers.
const SDK_HELPERS: &[&str] = &["files.rs", "events.rs", "retry.rs"];

#[test]
fn every_operation_has_a_command() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("openapi/funmagic.json")).unwrap()).unwrap();
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(root.join("cli/src")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            sources.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    for helper in SDK_HELPERS {
        sources.push((format!("sdk/{helper}"), std::fs::read_to_string(root.join("sdk/src").join(helper)).unwrap()));
    }
    let mut ops = Vec::new();
    for methods in spec["paths"].as_object().unwrap().values() {
        for op in methods.as_object().unwrap().values() {
            ops.push(op["operationId"].as_str().unwrap().to_string());
        }
    }
    assert!(ops.len() > 80, "the spec was read ({} operations)", ops.len());
    let mut missing = Vec::new();
    let mut table = Vec::new();
    for op in &ops {
        let call = format!(".{op}(");
        let callers: Vec<&str> =
            sources.iter().filter(|(_, text)| text.contains(&call)).map(|(name, _)| name.as_str()).collect();
        let excepted = EXCEPTIONS.iter().any(|(name, _)| name == op);
        match (callers.is_empty(), excepted) {
            (true, false) => missing.push(op.clone()),
            (false, true) => panic!("{op} is in EXCEPTIONS but {} calls it: remove the exception", callers.join(", ")),
            _ => table.push(format!("{op:<36} {}", callers.join(", "))),
        }
    }
    for (op, reason) in EXCEPTIONS {
        assert!(ops.contains(&op.to_string()), "EXCEPTIONS names {op}, which the spec no longer has");
        assert!(!reason.trim().is_empty(), "{op}: give the reason");
    }
    println!("{}", table.join("\n"));
    assert!(
        missing.is_empty(),
        "operations no CLI command calls (add a command, or an exception with its reason): {missing:?}"
    );
}
