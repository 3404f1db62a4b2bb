//! Tools: the seed's multi-step tool configuration (`tools.config`: steps with id, name,
//! type, providerId, providerModel, cost; styleReferences), validated on every write, and
//! the default catalogue (figme, background-remove, crystal-memory, echo) wired to the
//! offline `local` provider, created at start when missing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::ProviderKind;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::Store;
use crate::store::{ProviderRow, ToolRow, ToolTypeRow};

pub use crate::domain::StepKind;

impl StepKind {
    /// Whether the step's result is a 3D file (stored under `models`, else `images`).
    pub fn makes_models(self) -> bool {
        matches!(self, StepKind::ThreeD | StepKind::PointCloud)
    }
}

/// The public catalogue: the active tools (only the featured ones when `featured`), in
/// their order, with every tool type (to name each tool's).
pub async fn catalogue(store: &Store, featured: bool) -> AppResult<(Vec<ToolRow>, Vec<ToolTypeRow>)> {
    Ok((store.tool_list(true, featured).await?, store.tool_type_list().await?))
}

/// One active tool of the public catalogue by slug, with every tool type; a disabled or
/// unknown tool is 404.
pub async fn catalogue_tool(store: &Store, slug: &str) -> AppResult<(ToolRow, Vec<ToolTypeRow>)> {
    let row = store.tool_get_by_slug(slug).await?.filter(|t| t.is_active).ok_or_else(|| AppError::not_found("tool"))?;
    Ok((row, store.tool_type_list().await?))
}

/// Every tool type.
pub async fn tool_types(store: &Store) -> AppResult<Vec<ToolTypeRow>> {
    Ok(store.tool_type_list().await?)
}

/// Models a provider offers for a step type; anything else is rejected on write.
pub fn known_models(provider: ProviderKind, step: StepKind) -> &'static [&'static str] {
    use ProviderKind as P;
    use StepKind as S;
    match (provider, step) {
        (P::Local, S::Echo) => &["echo"],
        (P::Local, S::ImageGen) => &["local-style"],
        (P::Local, S::BackgroundRemove) => &["local-matting"],
        (P::Local, S::ThreeD) => &["local-relief"],
        (P::Local, S::PointCloud) => &["local-pointcloud"],
        (P::OpenAi, S::ImageGen) => &["gpt-image-1", "gpt-image-1.5", "gpt-image-1-mini"],
        (P::Fal, S::BackgroundRemove) => &["fal-ai/birefnet", "fal-ai/birefnet/v2", "fal-ai/imageutils/rembg"],
        (P::Tripo, S::ThreeD) => &["tripo-v2", "v2.5-20250123", "v3.0-20250812"],
        (P::OpenAi, S::Echo | S::BackgroundRemove | S::ThreeD | S::PointCloud)
        | (P::Fal, S::Echo | S::ImageGen | S::ThreeD | S::PointCloud)
        | (P::Tripo, S::Echo | S::ImageGen | S::BackgroundRemove | S::PointCloud) => &[],
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepConfig {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: StepKind,
    pub provider_id: Uuid,
    pub provider_model: String,
    pub cost: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StyleReference {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// The preview as an admin-bucket upload (shown through an expiring URL); not with
    /// `imageUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_key: Option<String>,
    pub prompt: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolConfig {
    pub steps: Vec<StepConfig>,
    #[serde(default)]
    pub style_references: Vec<StyleReference>,
    /// The tool in other languages, by locale tag (`zh`, `pt-BR`); English is the base.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub translations: BTreeMap<String, Translation>,
}

/// A tool's texts in one language; what is left out stays English.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Translation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Step names by step id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub steps: BTreeMap<String, String>,
    /// Style names by style id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub styles: BTreeMap<String, String>,
}

/// Whether `tag` is a language tag as tools use them: a 2–3 letter language, then optional
/// 2–8 character subtags (`zh`, `zh-Hant`, `pt-BR`).
pub fn locale_ok(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let lang = parts.next().unwrap_or_default();
    (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_alphabetic())
        && tag.len() <= 35
        && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The languages a client asks for, best first: `?locale=` alone when given, else the
/// `Accept-Language` header's tags by quality (q=0 and `*` dropped).
pub fn wanted_locales(query: Option<&str>, accept_language: Option<&str>) -> Vec<String> {
    if let Some(tag) = query.map(str::trim).filter(|t| !t.is_empty()) {
        return vec![tag.to_string()];
    }
    let mut tags: Vec<(f32, usize, String)> = accept_language
        .unwrap_or_default()
        .split(',')
        .enumerate()
        .filter_map(|(i, item)| {
            let mut parts = item.split(';');
            let tag = parts.next()?.trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .next()
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            (q > 0.0 && !tag.is_empty() && tag != "*").then(|| (q, i, tag.to_string()))
        })
        .collect();
    tags.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    tags.into_iter().map(|(_, _, t)| t).collect()
}

/// The first of `wanted` this tool has: the exact tag, else one of the same language
/// (`zh-TW` → `zh`, `zh` → `zh-Hans`); `None` (English) when English comes first or none fits.
pub fn pick_locale<'a>(available: &'a BTreeMap<String, Translation>, wanted: &[String]) -> Option<&'a str> {
    for want in wanted {
        let lang = want.split('-').next().unwrap_or_default();
        if lang.eq_ignore_ascii_case("en") {
            return None;
        }
        let exact = available.keys().find(|k| k.eq_ignore_ascii_case(want));
        let same_language =
            || available.keys().find(|k| k.split('-').next().is_some_and(|l| l.eq_ignore_ascii_case(lang)));
        if let Some(found) = exact.or_else(same_language) {
            return Some(found.as_str());
        }
    }
    None
}

impl ToolConfig {
    /// What running every step costs.
    pub fn total_cost(&self) -> i64 {
        self.steps.iter().map(|s| s.cost).sum()
    }

    pub fn step(&self, id: &str) -> Option<&StepConfig> {
        self.steps.iter().find(|s| s.id == id)
    }
}

fn slug_ok(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn invalid(message: String) -> AppError {
    AppError::new(crate::error::ErrorKind::Validation, ErrorCode::InvalidToolConfig, message)
}

/// Parses and checks a tool config against the providers that exist.
pub fn validate_config(raw: &serde_json::Value, providers: &[ProviderRow]) -> AppResult<ToolConfig> {
    // An unknown step type is named with its step (serde would only say "unknown variant").
    for (i, step) in raw["steps"].as_array().into_iter().flatten().enumerate() {
        if let Some(kind) = step["type"].as_str()
            && !StepKind::ALL.iter().any(|k| k.as_str() == kind)
        {
            let id = step["id"].as_str().unwrap_or("?");
            let known: Vec<&str> = StepKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(invalid(format!(
                "steps[{i}] ({id}): unknown step type '{kind}' (known: {})",
                known.join(", ")
            )));
        }
    }
    let config: ToolConfig = serde_json::from_value(raw.clone()).map_err(|e| invalid(format!("config: {e}")))?;
    if config.steps.is_empty() || config.steps.len() > 10 {
        return Err(invalid("a tool has 1 to 10 steps".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, step) in config.steps.iter().enumerate() {
        let at = format!("steps[{i}] ({})", step.id);
        if !slug_ok(&step.id, 40) {
            return Err(invalid(format!("{at}: id must be 1–40 characters of a-z, 0-9, -")));
        }
        if !seen.insert(step.id.as_str()) {
            return Err(invalid(format!("{at}: duplicate step id")));
        }
        if step.name.trim().is_empty() || step.name.chars().count() > 100 {
            return Err(invalid(format!("{at}: name must have 1–100 characters")));
        }
        if !(0..=1_000_000).contains(&step.cost) {
            return Err(invalid(format!("{at}: cost must be 0–1,000,000 credits")));
        }
        let provider = providers
            .iter()
            .find(|p| p.id == step.provider_id)
            .ok_or_else(|| invalid(format!("{at}: unknown provider {}", step.provider_id)))?;
        let models = known_models(provider.kind, step.kind);
        if !models.contains(&step.provider_model.as_str()) {
            return Err(invalid(format!(
                "{at}: provider '{}' ({}) has no model '{}' for {} steps (known: {})",
                provider.name,
                provider.kind,
                step.provider_model,
                step.kind,
                if models.is_empty() { "none".to_string() } else { models.join(", ") }
            )));
        }
    }
    let mut styles = std::collections::HashSet::new();
    for (i, style) in config.style_references.iter().enumerate() {
        let at = format!("styleReferences[{i}] ({})", style.id);
        if !slug_ok(&style.id, 40) || !styles.insert(style.id.as_str()) {
            return Err(invalid(format!("{at}: ids must be unique, 1–40 characters of a-z, 0-9, -")));
        }
        if style.name.trim().is_empty() || style.prompt.chars().count() > 2000 {
            return Err(invalid(format!("{at}: a name and a prompt of at most 2000 characters are required")));
        }
        if let Some(url) = &style.image_url
            && !crate::urls::is_http_url(url)
        {
            return Err(invalid(format!("{at}: imageUrl must be an http(s) URL")));
        }
        if let Some(key) = &style.image_key
            && (style.image_url.is_some() || crate::storage::local_key_check(key).is_err())
        {
            return Err(invalid(format!("{at}: imageKey is an admin-bucket key, and not given with imageUrl")));
        }
    }
    if config.translations.len() > 50 {
        return Err(invalid("at most 50 translations".into()));
    }
    for (tag, t) in &config.translations {
        let at = format!("translations.{tag}");
        if !locale_ok(tag) || tag.split('-').next().is_some_and(|l| l.eq_ignore_ascii_case("en")) {
            return Err(invalid(format!("{at}: a language tag other than English (zh, pt-BR, …) is required")));
        }
        let text_ok = |s: &str, max: usize| !s.trim().is_empty() && s.chars().count() <= max;
        if t.title.as_deref().is_some_and(|s| !text_ok(s, 200)) {
            return Err(invalid(format!("{at}.title: 1–200 characters")));
        }
        if t.description.as_deref().is_some_and(|s| !text_ok(s, 2000)) {
            return Err(invalid(format!("{at}.description: 1–2000 characters")));
        }
        for (id, name) in &t.steps {
            if config.step(id).is_none() {
                return Err(invalid(format!("{at}.steps: the tool has no step '{id}'")));
            }
            if !text_ok(name, 100) {
                return Err(invalid(format!("{at}.steps.{id}: 1–100 characters")));
            }
        }
        for (id, name) in &t.styles {
            if !config.style_references.iter().any(|s| &s.id == id) {
                return Err(invalid(format!("{at}.styles: the tool has no style '{id}'")));
            }
            if !text_ok(name, 100) {
                return Err(invalid(format!("{at}.styles.{id}: 1–100 characters")));
            }
        }
    }
    Ok(config)
}

pub fn validate_slug(slug: &str) -> AppResult<()> {
    if slug_ok(slug, 60) { Ok(()) } else { Err(AppError::validation("slug must be 1–60 characters of a-z, 0-9, -")) }
}

/// Creates the default tool types and tools (wired to `local`) when they are missing;
/// admin edits to existing ones are never overwritten.
pub async fn seed_defaults(store: &Store) -> AppResult<()> {
    let local = store.provider_ensure_local().await?;
    let now = crate::store::now();
    let mut types = store.tool_type_list().await?;
    for (name, display, icon, color, description) in [
        ("image-generation", "Image Generation", "sparkles", "#8b5cf6", "Create and restyle images"),
        ("image-editing", "Image Editing", "scissors", "#0ea5e9", "Cut out and clean up images"),
        ("3d", "3D", "cube", "#f59e0b", "Turn images into 3D models and point clouds"),
        ("utility", "Utility", "wrench", "#64748b", "Diagnostics and testing"),
    ] {
        if !types.iter().any(|t| t.name == name) {
            let row = ToolTypeRow {
                id: Uuid::now_v7(),
                name: name.into(),
                display_name: display.into(),
                icon: Some(icon.into()),
                color: Some(color.into()),
                description: Some(description.into()),
                created_at: now,
                updated_at: now,
            };
            types.push(store.tool_type_upsert(&row).await?);
        }
    }
    let type_id = |name: &str| types.iter().find(|t| t.name == name).map(|t| t.id).expect("seeded above");
    let step = |id: &str, name: &str, kind: &str, model: &str, cost: i64| serde_json::json!({"id": id, "name": name, "type": kind, "providerId": local, "providerModel": model, "cost": cost});
    let style = |id: &str, name: &str, prompt: &str| serde_json::json!({"id": id, "name": name, "prompt": prompt});
    let defaults = [
        (
            "figme",
            "FigMe",
            "Turn a photo into a stylized figure, then into a 3D model",
            "3d",
            serde_json::json!({
                "steps": [step("image-gen", "Image Generation", "image-gen", "local-style", 20), step("3d-gen", "3D Generation", "3d-gen", "local-relief", 30)],
                "styleReferences": [
                    style("sketch", "Sketch", "Transform into a pencil sketch"),
                    style("posterize", "Poster", "Transform into a flat-colour poster"),
                    style("pixel-art", "Pixel Art", "Transform into retro pixel art"),
                    style("duotone", "Duotone", "Transform into a two-tone print"),
                ],
                "translations": {
                    "zh": {
                        "title": "FigMe 手办",
                        "description": "把照片变成风格化的手办，再变成 3D 模型",
                        "steps": {"image-gen": "图像生成", "3d-gen": "3D 生成"},
                        "styles": {"sketch": "素描", "posterize": "海报", "pixel-art": "像素画", "duotone": "双色调"}
                    }
                }
            }),
        ),
        (
            "background-remove",
            "Background Remover",
            "Cut the subject out of its background",
            "image-editing",
            serde_json::json!({"steps": [step("background-remove", "Background Removal", "background-remove", "local-matting", 10)]}),
        ),
        (
            "crystal-memory",
            "Crystal Memory",
            "Turn a photo into a coloured point cloud",
            "3d",
            serde_json::json!({"steps": [step("point-cloud", "Point Cloud", "point-cloud", "local-pointcloud", 25)]}),
        ),
        (
            "echo",
            "Echo",
            "Returns its input (for tests and benchmarks)",
            "utility",
            serde_json::json!({"steps": [step("echo", "Echo", "echo", "echo", 1)]}),
        ),
    ];
    let providers = store.provider_list().await?;
    for (i, (slug, title, description, kind, config)) in defaults.into_iter().enumerate() {
        if store.tool_get_by_slug(slug).await?.is_some() {
            continue;
        }
        let parsed = validate_config(&config, &providers)?;
        let row = ToolRow {
            id: Uuid::now_v7(),
            slug: slug.into(),
            title: title.into(),
            description: Some(description.into()),
            tool_type_id: type_id(kind),
            config: sqlx::types::Json(config),
            credits_cost: parsed.total_cost(),
            is_active: true,
            created_at: now,
            updated_at: now,
            // A homepage shows the two photo tools first.
            featured: matches!(slug, "figme" | "background-remove"),
            position: 10 * (i as i32 + 1),
        };
        match store.tool_upsert(&row).await {
            Ok(_) | Err(crate::store::StoreError::Conflict(_)) => {} // another process seeded it
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> ProviderRow {
        let now = chrono::Utc::now();
        ProviderRow {
            id: Uuid::nil(),
            name: "local".into(),
            kind: ProviderKind::Local,
            base_url: None,
            is_active: true,
            is_healthy: true,
            health_checked_at: None,
            created_at: now,
            updated_at: now,
            api_key: None,
            api_key_id: None,
            api_key_last4: None,
            health_message: None,
            config: sqlx::types::Json(serde_json::json!({})),
        }
    }

    fn config(steps: serde_json::Value) -> serde_json::Value {
        serde_json::json!({ "steps": steps })
    }

    #[test]
    fn configs_are_validated() {
        let p = [local()];
        let step = |id: &str, kind: &str, model: &str| serde_json::json!({"id": id, "name": "S", "type": kind, "providerId": Uuid::nil(), "providerModel": model, "cost": 5});
        let ok = validate_config(
            &config(serde_json::json!([step("a", "echo", "echo"), step("b", "3d-gen", "local-relief")])),
            &p,
        )
        .unwrap();
        assert_eq!(ok.total_cost(), 10);
        for (bad, why) in [
            (config(serde_json::json!([])), "no steps"),
            (config(serde_json::json!([step("a", "echo", "echo"), step("a", "echo", "echo")])), "duplicate id"),
            (config(serde_json::json!([step("a", "teleport", "echo")])), "unknown type"),
            (config(serde_json::json!([step("a", "echo", "gpt-image-1")])), "unknown model"),
            (config(serde_json::json!([step("A b", "echo", "echo")])), "bad id"),
            (serde_json::json!({"steps": [step("a", "echo", "echo")], "extra": 1}), "unknown field"),
        ] {
            assert!(validate_config(&bad, &p).is_err(), "{why}");
        }
        let other_provider = serde_json::json!([{"id": "a", "name": "S", "type": "echo", "providerId": Uuid::now_v7(), "providerModel": "echo", "cost": 1}]);
        assert!(validate_config(&config(other_provider), &p).is_err(), "unknown provider");
    }
}

/// The tools and providers the task hot path reads, cached in the process.
///
/// A submission looks its tool up by slug and a step its provider by id; both change only
/// when an admin edits them. Entries live for [`Catalogue::TTL`] at most and are dropped at
/// once when this process changes a tool or provider (other processes see the change within
/// the TTL). A worker's parsed tool config is keyed by the tool's `updated_at`, read with the
/// claim, so it is never stale.
#[derive(Debug)]
pub struct Catalogue {
    store: Store,
    by_slug: Cache<String, Instant, Option<Arc<Tool>>>,
    configs: Cache<Uuid, chrono::DateTime<chrono::Utc>, Arc<ToolConfig>>,
    providers: Cache<Uuid, Instant, Option<Arc<ProviderRow>>>,
}

/// Values with the instant (or version) they were read at.
type Cache<K, At, V> = Mutex<HashMap<K, (At, V)>>;

/// Most entries a cache holds before it starts afresh.
const CACHE_MAX: usize = 10_000;

fn remember<K: std::hash::Hash + Eq, At, V>(cache: &Cache<K, At, V>, key: K, at: At, value: V) {
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= CACHE_MAX {
        cache.clear();
    }
    cache.insert(key, (at, value));
}

/// A tool row with its parsed config.
#[derive(Debug)]
pub struct Tool {
    pub row: ToolRow,
    pub config: ToolConfig,
}

impl Catalogue {
    pub const TTL: Duration = Duration::from_secs(1);

    pub fn new(store: Store) -> Self {
        Self { store, by_slug: Mutex::default(), configs: Mutex::default(), providers: Mutex::default() }
    }

    /// Forgets everything (after this process changed a tool or provider).
    pub fn invalidate(&self) {
        self.by_slug.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.configs.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.providers.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The tool with this slug (active or not), at most [`Self::TTL`] old.
    pub async fn tool(&self, slug: &str) -> AppResult<Option<Arc<Tool>>> {
        if let Some((at, tool)) = self.by_slug.lock().unwrap_or_else(|e| e.into_inner()).get(slug)
            && at.elapsed() < Self::TTL
        {
            return Ok(tool.clone());
        }
        let tool = match self.store.tool_get_by_slug(slug).await? {
            Some(row) => {
                let config: ToolConfig = serde_json::from_value(row.config.0.clone()).map_err(AppError::internal)?;
                Some(Arc::new(Tool { row, config }))
            }
            None => None,
        };
        remember(&self.by_slug, slug.to_string(), Instant::now(), tool.clone());
        Ok(tool)
    }

    /// The parsed config of this version of a tool.
    pub async fn config(&self, tool_id: Uuid, version: chrono::DateTime<chrono::Utc>) -> AppResult<Arc<ToolConfig>> {
        if let Some((at, config)) = self.configs.lock().unwrap_or_else(|e| e.into_inner()).get(&tool_id)
            && *at == version
        {
            return Ok(config.clone());
        }
        let row = self.store.tool_get(tool_id).await?.ok_or_else(|| AppError::internal("tool vanished"))?;
        let config: Arc<ToolConfig> = Arc::new(serde_json::from_value(row.config.0).map_err(AppError::internal)?);
        remember(&self.configs, tool_id, row.updated_at, config.clone());
        Ok(config)
    }

    /// A provider, at most [`Self::TTL`] old.
    pub async fn provider(&self, id: Uuid) -> AppResult<Option<Arc<ProviderRow>>> {
        if let Some((at, provider)) = self.providers.lock().unwrap_or_else(|e| e.into_inner()).get(&id)
            && at.elapsed() < Self::TTL
        {
            return Ok(provider.clone());
        }
        let provider = self.store.provider_get(id).await?.map(Arc::new);
        remember(&self.providers, id, Instant::now(), provider.clone());
        Ok(provider)
    }
}
