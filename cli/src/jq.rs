//! `--jq EXPR`: filters a command's JSON output with a jq program, as `gh --jq` does, using
//! jaq (a jq implementation in Rust: jaq-core, with jaq-std and jaq-json's definitions).
//! Every output value is printed on its own line; strings are printed raw.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;

/// A compiled jq program.
pub struct Filter {
    filter: jaq_core::Filter<data::JustLut<Val>>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("jq filter")
    }
}

impl Filter {
    /// Parses and compiles `code`; the error says what is wrong with it.
    pub fn new(code: &str) -> Result<Self, String> {
        let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
        let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(|errs| format!("--jq: cannot parse '{code}' ({} error(s))", errs.len()))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| format!("--jq: cannot compile '{code}' ({} error(s): undefined names?)", errs.len()))?;
        Ok(Self { filter })
    }

    /// Runs the program on `input`; each output as a line (strings raw, the rest as JSON).
    pub fn run(&self, input: &serde_json::Value) -> Result<Vec<String>, String> {
        let text = input.to_string();
        let value = jaq_json::read::parse_single(text.as_bytes()).map_err(|e| format!("--jq: bad input: {e}"))?;
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let mut lines = Vec::new();
        for out in self.filter.id.run((ctx, value)).map(unwrap_valr) {
            let val = out.map_err(|e| format!("--jq: {e}"))?;
            let shown = val.to_string();
            // A string result is printed without its quotes (as `jq -r`, like `gh --jq`).
            match serde_json::from_str::<serde_json::Value>(&shown) {
                Ok(serde_json::Value::String(s)) => lines.push(s),
                _ => lines.push(shown),
            }
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_like_jq() {
        let input = serde_json::json!({"tools": [{"slug": "echo", "cost": 1}, {"slug": "figme", "cost": 50}]});
        assert_eq!(Filter::new(".tools[].slug").unwrap().run(&input).unwrap(), ["echo", "figme"]);
        assert_eq!(
            Filter::new("[.tools[] | select(.cost > 10) | .slug]").unwrap().run(&input).unwrap(),
            ["[\"figme\"]"]
        );
        assert_eq!(Filter::new(".tools | length").unwrap().run(&input).unwrap(), ["2"]);
        assert_eq!(Filter::new("map(.cost) | add").unwrap().run(&serde_json::json!([])).unwrap_or_default().len(), 1);
        assert!(Filter::new(".tools[").is_err());
        assert!(Filter::new("no_such_function").is_err());
    }
}
