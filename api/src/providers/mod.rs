//! Step execution: the worker hands a step here, and it runs on the step's provider.
//!
//! * `local` ([`local`]) — offline image algorithms, on a blocking thread with progress.
//! * `openai` ([`openai`]) — Images API generations and edits (`image-gen`).
//! * `fal` ([`fal`]) — the queue API (`background-remove`).
//! * `tripo` ([`tripo`]) — image-to-model tasks (`3d-gen`).
//!
//! Remote calls share [`http`]: timeouts, retries with backoff on 429/5xx honouring
//! `Retry-After`, the provider's message passed on in a safe form. A remote job's id is
//! saved in the step's state *before* waiting on it ([`StepRun::save`]), so a run after a
//! crash resumes polling that job instead of paying for a new one.

pub mod admin;
pub mod crypto;
pub mod fal;
pub mod health;
pub mod http;
pub mod local;
pub mod openai;
pub mod tripo;

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::AppState;
use crate::assets::FileType;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::store::ProviderRow;
use crate::tools::{StepConfig, StepKind, ToolConfig};

/// The kinds of provider: three paid APIs and the built-in offline one. The store keeps
/// `as_str`; `of` reads a row back (`None` only for a value this version does not know).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    OpenAi,
    Fal,
    Tripo,
    Local,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 4] =
        [ProviderKind::OpenAi, ProviderKind::Fal, ProviderKind::Tripo, ProviderKind::Local];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Fal => "fal",
            ProviderKind::Tripo => "tripo",
            ProviderKind::Local => "local",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn of(row: &ProviderRow) -> Option<Self> {
        Self::parse(&row.kind)
    }

    /// The public API a provider of this kind talks to unless its `baseUrl` says otherwise
    /// (e.g. a proxy); `None` for `local`.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("https://api.openai.com/v1"),
            ProviderKind::Fal => Some("https://queue.fal.run"),
            ProviderKind::Tripo => Some("https://api.tripo3d.ai/v2/openapi"),
            ProviderKind::Local => None,
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider's API base: its `baseUrl`, else its kind's public API.
pub fn base_url(provider: &ProviderRow) -> String {
    provider
        .base_url
        .clone()
        .or_else(|| ProviderKind::of(provider).and_then(ProviderKind::default_base_url).map(str::to_string))
        .unwrap_or_default()
}

/// One step being run: what it needs, and how it reports and persists its progress.
pub struct StepRun<'a> {
    pub state: &'a AppState,
    pub task_id: Uuid,
    pub user_id: Uuid,
    pub step: &'a StepConfig,
    pub tool: &'a ToolConfig,
    pub input: &'a Value,
    pub attempt: u32,
    /// What an earlier run of this step saved (a provider job id, say).
    pub saved: Value,
}

impl StepRun<'_> {
    /// A progress event for this step.
    pub async fn progress(&self, percent: u8, message: &str) -> AppResult<()> {
        self.progress_with(percent, message, json!({})).await
    }

    pub async fn progress_with(&self, percent: u8, message: &str, extra: Value) -> AppResult<()> {
        let mut data = json!({ "stepId": self.step.id, "progress": percent.min(100), "message": message });
        crate::tasks::merge_into(&mut data, &extra);
        crate::events::progress(self.state, self.task_id, data).await;
        Ok(())
    }

    /// Merges `patch` into the step's saved state, durably, before the caller goes on.
    pub async fn save(&mut self, patch: Value) -> AppResult<()> {
        if !self.saved.is_object() {
            self.saved = json!({});
        }
        crate::tasks::merge_into(&mut self.saved, &patch);
        self.state.store().task_step_save(self.task_id, &self.step.id, &self.saved).await?;
        Ok(())
    }

    /// The input image's bytes (`imageStorageKey`: the user's own upload or output).
    pub async fn input_image(&self) -> AppResult<(String, Bytes)> {
        let key = self.input["imageStorageKey"].as_str().ok_or_else(|| {
            AppError::new(
                ErrorKind::Validation,
                "INVALID_INPUT",
                format!("a {} step on the local provider needs imageStorageKey (an uploaded file)", self.step.kind),
            )
        })?;
        let (asset, bytes) = crate::assets::read_owned(self.state, self.user_id, key).await?;
        let name = asset.filename.unwrap_or_else(|| "image".into());
        let stem = name.rsplit_once('.').map(|(s, _)| s.to_string()).unwrap_or(name);
        Ok((stem, bytes))
    }

    /// A URL the provider can fetch the input image from.
    pub async fn input_image_url(&self) -> AppResult<String> {
        crate::assets::resolve_image_url(self.state, self.user_id, self.input).await
    }

    /// Stores an output file as the user's asset; returns the step output describing it.
    pub async fn store(&self, filename: &str, file_type: FileType, data: Vec<u8>, extra: Value) -> AppResult<Value> {
        let module = if self.step.kind.makes_models() { "models" } else { "images" };
        let asset = crate::assets::store_output(
            self.state,
            self.user_id,
            Some(self.task_id),
            module,
            filename,
            file_type,
            Bytes::from(data),
        )
        .await?;
        let mut out = json!({
            "assetId": asset.id,
            "storageKey": asset.storage_key,
            "filename": asset.filename,
            "mimeType": asset.mime_type,
            "size": asset.size,
        });
        if matches!(file_type, FileType::Png | FileType::Jpeg | FileType::Webp) {
            // The next step of a chain takes it as its input image.
            out["imageStorageKey"] = asset.storage_key.clone().into();
        }
        crate::tasks::merge_into(&mut out, &extra);
        Ok(out)
    }
}

/// Runs one step on its provider.
pub async fn run(run: StepRun<'_>) -> AppResult<Value> {
    let provider = run.state.catalogue().provider(run.state, run.step.provider_id).await?.ok_or_else(|| {
        AppError::new(ErrorKind::Internal, "PROVIDER_MISSING", "the step's provider no longer exists")
    })?;
    if !provider.is_active {
        return Err(AppError::new(
            ErrorKind::Unavailable,
            "PROVIDER_DISABLED",
            format!("provider '{}' is disabled", provider.name),
        ));
    }
    let not_available = || {
        AppError::new(
            ErrorKind::Unavailable,
            "STEP_NOT_AVAILABLE",
            format!("provider type '{}' cannot run '{}' steps", provider.kind, run.step.kind),
        )
    };
    let Some(kind) = ProviderKind::of(&provider) else { return Err(not_available()) };
    match (kind, run.step.kind) {
        (ProviderKind::Local, StepKind::Echo) => echo(run).await,
        (ProviderKind::Local, _) => run_local(run).await,
        (ProviderKind::OpenAi, StepKind::ImageGen) => {
            let key = decrypt_key(run.state, &provider)?;
            openai::image_gen(run, &provider, &key).await
        }
        (ProviderKind::Fal, StepKind::BackgroundRemove) => {
            let key = decrypt_key(run.state, &provider)?;
            fal::background_remove(run, &provider, &key).await
        }
        (ProviderKind::Tripo, StepKind::ThreeD) => {
            let key = decrypt_key(run.state, &provider)?;
            tripo::image_to_model(run, &provider, &key).await
        }
        (ProviderKind::OpenAi | ProviderKind::Fal | ProviderKind::Tripo, _) => Err(not_available()),
    }
}

/// Decrypts a provider's key with this process's master key.
pub fn decrypt_key(state: &AppState, provider: &ProviderRow) -> AppResult<secrecy::SecretString> {
    let (Some(sealed), Some(key_id)) = (&provider.api_key, &provider.api_key_id) else {
        return Err(AppError::new(
            ErrorKind::Unavailable,
            "PROVIDER_NO_KEY",
            format!("provider '{}' has no API key", provider.name),
        ));
    };
    state.master_key().decrypt(provider.id, key_id, sealed).map(secrecy::SecretString::from).map_err(|e| {
        AppError::new(ErrorKind::Unavailable, "PROVIDER_KEY_UNREADABLE", format!("provider '{}': {e}", provider.name))
    })
}

/// What a master key rotation did.
#[derive(Debug)]
pub struct Rotation {
    pub keys: u64,
    /// The key file that now holds the new key (embedded default); `None` when the key
    /// comes from `FUNMAGIC_MASTER_KEY`.
    pub file: Option<std::path::PathBuf>,
}

/// Re-encrypts every provider key under `new`, all in one transaction. With the key in
/// `<data_dir>/master.key`, the new key is written beside it first and moved over it
/// after the commit (the old one kept as `master.key.<old id>.old`), so no step leaves
/// keys that no file can decrypt.
pub async fn rotate_master_key(state: &AppState, new: &crypto::MasterKey) -> Result<Rotation, String> {
    let current = state.master_key();
    let mut replaced = Vec::new();
    for p in state.store().provider_list().await.map_err(|e| e.to_string())? {
        let (Some(sealed), Some(key_id)) = (&p.api_key, &p.api_key_id) else { continue };
        if key_id == new.id() {
            continue;
        }
        let plain = current.decrypt(p.id, key_id, sealed).map_err(|e| format!("provider '{}': {e}", p.name))?;
        replaced.push((p.id, key_id.clone(), new.encrypt(p.id, &plain), new.id().to_string()));
    }
    let file = state.settings().providers.master_key.is_none().then(|| crypto::key_path(state.settings()));
    let staged = file.as_ref().map(|f| f.with_extension("key.new"));
    if let Some(staged) = &staged {
        let _ = std::fs::remove_file(staged);
        crypto::write_new(staged, &new.encoded()).map_err(|e| format!("{}: {e}", staged.display()))?;
    }
    if let Some(file) = &file {
        // The old key is kept before anything changes, so no failure below loses it.
        let backup = file.with_extension(format!("key.{}.old", current.id()));
        std::fs::copy(file, &backup).map_err(|e| format!("{}: {e}", backup.display()))?;
    }
    let keys = state.store().provider_keys_replace(&replaced).await.map_err(|e| e.to_string())?;
    state.catalogue().invalidate();
    if let (Some(file), Some(staged)) = (&file, &staged) {
        std::fs::rename(staged, file).map_err(|e| {
            format!("the keys are re-encrypted but {} could not replace {}: {e}", staged.display(), file.display())
        })?;
    }
    Ok(Rotation { keys, file })
}

/// `local` `echo`: returns its input after `delayMs`, with 10 progress events over the
/// delay (one, at 50 %, without a delay); `failAttempts: n` makes the first n runs fail
/// transiently (tests of retries).
async fn echo(run: StepRun<'_>) -> AppResult<Value> {
    if run.input.get("failAttempts").and_then(Value::as_u64).is_some_and(|n| u64::from(run.attempt) <= n) {
        return Err(AppError::new(
            ErrorKind::Unavailable,
            "ECHO_INJECTED_FAILURE",
            format!("injected failure on attempt {}", run.attempt),
        ));
    }
    let delay = run.input.get("delayMs").and_then(Value::as_u64).unwrap_or(0);
    if delay == 0 {
        run.progress(50, "echo 50%").await?;
    } else {
        for i in 1..=10u8 {
            tokio::time::sleep(Duration::from_millis(delay / 10)).await;
            run.progress(i * 10, &format!("echo {}%", u32::from(i) * 10)).await?;
        }
    }
    let mut out = run.input.clone();
    if let Some(o) = out.as_object_mut() {
        o.remove("parentOutput");
        o.remove("failAttempts");
    }
    Ok(out)
}

/// Images larger than this on their longer side are scaled down before processing.
const LOCAL_MAX_SIDE: u32 = 2048;

/// The `local` image steps: decode, run the algorithm on a blocking thread while its
/// progress is forwarded as events, store the result.
async fn run_local(run: StepRun<'_>) -> AppResult<Value> {
    let kind = run.step.kind;
    let style = match kind {
        StepKind::ImageGen => Some(style_of(&run)?),
        _ => None,
    };
    let (stem, img) = if kind == StepKind::ImageGen && run.input["imageStorageKey"].as_str().is_none() {
        let prompt = run.input["prompt"].as_str().unwrap_or("").to_string();
        ("generated".to_string(), local::canvas_from_prompt(&prompt, 1024))
    } else {
        let (stem, bytes) = run.input_image().await?;
        run.progress(5, "decoding the image").await?;
        let img = tokio::task::spawn_blocking(move || decode(&bytes))
            .await
            .map_err(|e| AppError::internal(format!("decoder stopped: {e}")))??;
        (stem, img)
    };
    let depth = run.input["depth"].as_f64().map(|d| d.clamp(0.01, 2.0) as f32).unwrap_or(0.25);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u8, String)>();
    let job_kind = kind;
    let job_style = style.clone();
    let job = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, FileType, Value), String> {
        let mut report = |p: u8, m: &str| {
            let _ = tx.send((p, m.to_string()));
        };
        match job_kind {
            StepKind::ImageGen => {
                let style = job_style.unwrap_or_default();
                let out = local::stylize(&img, &style, &mut report);
                Ok((
                    encode_png(&out)?,
                    FileType::Png,
                    json!({ "style": style, "width": out.width(), "height": out.height() }),
                ))
            }
            StepKind::BackgroundRemove => {
                let (out, mask) = local::remove_background(&img, &mut report);
                let kept = mask.pixels().filter(|p| p[0] > 0).count() as f64
                    / f64::from(mask.width() * mask.height()).max(1.0);
                Ok((
                    encode_png(&out)?,
                    FileType::Png,
                    json!({ "width": out.width(), "height": out.height(), "foregroundShare": (kept * 1000.0).round() / 1000.0 }),
                ))
            }
            StepKind::ThreeD => {
                let (glb, vertices, triangles) = local::relief_glb(&img, depth, &mut report)?;
                Ok((glb, FileType::Glb, json!({ "vertices": vertices, "triangles": triangles })))
            }
            StepKind::PointCloud => {
                let (ply, points) = local::point_cloud_ply(&img, depth, 500_000, &mut report);
                Ok((ply, FileType::Ply, json!({ "points": points })))
            }
            StepKind::Echo => Err("echo is not an image step".to_string()),
        }
    });
    tokio::pin!(job);
    let result = loop {
        tokio::select! {
            Some((p, m)) = rx.recv() => run.progress(p, &m).await?,
            done = &mut job => break done,
        }
    };
    while let Ok((p, m)) = rx.try_recv() {
        run.progress(p, &m).await?;
    }
    let (data, file_type, extra) = result
        .map_err(|e| AppError::internal(format!("the local step stopped: {e}")))?
        .map_err(|e| AppError::new(ErrorKind::Validation, "LOCAL_STEP_FAILED", e))?;
    let suffix = match kind {
        StepKind::ImageGen => style.unwrap_or_default(),
        StepKind::BackgroundRemove => "cutout".into(),
        StepKind::ThreeD => "relief".into(),
        StepKind::PointCloud | StepKind::Echo => "points".into(),
    };
    let filename = format!("{stem}-{suffix}.{}", file_type.extension());
    run.progress(98, "storing the result").await?;
    run.store(&filename, file_type, data, extra).await
}

/// The transform an `image-gen` step applies: the input's `style` (a style reference id of
/// the tool), or the tool's first style reference, or posterize.
fn style_of(run: &StepRun<'_>) -> AppResult<String> {
    match run.input["style"].as_str() {
        Some(id) => {
            let style = run.tool.style_references.iter().find(|s| s.id == id).ok_or_else(|| {
                AppError::new(ErrorKind::Validation, "UNKNOWN_STYLE", format!("the tool has no style '{id}'"))
            })?;
            Ok(local::style_for(&style.id, &style.name, &style.prompt).to_string())
        }
        None => Ok(run
            .tool
            .style_references
            .first()
            .map(|s| local::style_for(&s.id, &s.name, &s.prompt))
            .unwrap_or("posterize")
            .to_string()),
    }
}

fn decode(bytes: &[u8]) -> AppResult<image::RgbaImage> {
    let invalid = |e: &dyn std::fmt::Display| {
        AppError::new(ErrorKind::Validation, "INVALID_IMAGE", format!("the input is not an image we can read: {e}"))
    };
    let mut reader =
        image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| invalid(&e))?;
    // A small file can claim huge dimensions: refuse beyond 8192 px a side (~256 MiB RGBA).
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(8192);
    limits.max_image_height = Some(8192);
    limits.max_alloc = Some(300 * 1024 * 1024);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| invalid(&e))?;
    let img = if img.width().max(img.height()) > LOCAL_MAX_SIDE {
        img.resize(LOCAL_MAX_SIDE, LOCAL_MAX_SIDE, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    Ok(img.to_rgba8())
}

fn encode_png(img: &image::RgbaImage) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).map_err(|e| e.to_string())?;
    Ok(out)
}
