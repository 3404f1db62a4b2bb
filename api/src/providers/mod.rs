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

pub mod crypto;
pub mod fal;
pub mod http;
pub mod local;
pub mod openai;
pub mod tripo;

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::Settings;
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::storage::FileType;
use crate::store::{AssetRow, ProviderRow};
use crate::tools::{Catalogue, StepConfig, StepKind, ToolConfig};

/// What a running step may use of the platform, and no more: the worker implements it
/// (reporting progress, saving the step's state, reading the input and storing outputs as
/// the user's assets), so providers depend on neither tasks nor assets.
#[async_trait::async_trait]
pub trait StepContext: Send + Sync {
    fn settings(&self) -> &Settings;
    /// The process's shared outbound client; callers set each request's timeout.
    fn http(&self) -> &reqwest::Client;
    fn master_key(&self) -> &crypto::MasterKey;
    fn catalogue(&self) -> &Catalogue;
    /// A live progress event of the task (not recorded).
    async fn progress(&self, task_id: Uuid, data: Value);
    /// Saves a step's state durably (a provider job id, say).
    async fn save_state(&self, task_id: Uuid, step_id: &str, state: &Value) -> AppResult<()>;
    /// A file the user owns, by storage key: its asset row and bytes.
    async fn read_input(&self, user_id: Uuid, key: &str) -> AppResult<(AssetRow, Bytes)>;
    /// A URL a provider can fetch the step's input image from.
    async fn input_url(&self, user_id: Uuid, input: &Value) -> AppResult<String>;
    /// Stores an output file as the user's asset in `module`.
    async fn store_output(
        &self,
        user_id: Uuid,
        task_id: Uuid,
        module: &str,
        filename: &str,
        file_type: FileType,
        data: Bytes,
    ) -> AppResult<AssetRow>;
}

/// Merges the keys of `extra` (an object) into `target` (an object).
pub fn merge_into(target: &mut Value, extra: &Value) {
    if let (Some(t), Some(e)) = (target.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            t.insert(k.clone(), v.clone());
        }
    }
}

pub use crate::domain::ProviderKind;

impl ProviderKind {
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

/// A provider's API base: its `baseUrl`, else its kind's public API.
pub fn base_url(provider: &ProviderRow) -> String {
    provider.base_url.clone().or_else(|| provider.kind.default_base_url().map(str::to_string)).unwrap_or_default()
}

/// One step being run: what it needs, and how it reports and persists its progress.
pub struct StepRun<'a> {
    pub ctx: &'a dyn StepContext,
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
        merge_into(&mut data, &extra);
        self.ctx.progress(self.task_id, data).await;
        Ok(())
    }

    /// Merges `patch` into the step's saved state, durably, before the caller goes on.
    pub async fn save(&mut self, patch: Value) -> AppResult<()> {
        if !self.saved.is_object() {
            self.saved = json!({});
        }
        merge_into(&mut self.saved, &patch);
        self.ctx.save_state(self.task_id, &self.step.id, &self.saved).await?;
        Ok(())
    }

    /// The input image's bytes (`imageStorageKey`: the user's own upload or output).
    pub async fn input_image(&self) -> AppResult<(String, Bytes)> {
        let key = self.input["imageStorageKey"].as_str().ok_or_else(|| {
            AppError::new(
                ErrorKind::Validation,
                ErrorCode::InvalidInput,
                format!("a {} step on the local provider needs imageStorageKey (an uploaded file)", self.step.kind),
            )
        })?;
        let (asset, bytes) = self.ctx.read_input(self.user_id, key).await?;
        let name = asset.filename.unwrap_or_else(|| "image".into());
        let stem = name.rsplit_once('.').map(|(s, _)| s.to_string()).unwrap_or(name);
        Ok((stem, bytes))
    }

    /// A URL the provider can fetch the input image from.
    pub async fn input_image_url(&self) -> AppResult<String> {
        self.ctx.input_url(self.user_id, self.input).await
    }

    /// Stores an output file as the user's asset; returns the step output describing it.
    pub async fn store(&self, filename: &str, file_type: FileType, data: Vec<u8>, extra: Value) -> AppResult<Value> {
        let module = if self.step.kind.makes_models() { "models" } else { "images" };
        let asset =
            self.ctx.store_output(self.user_id, self.task_id, module, filename, file_type, Bytes::from(data)).await?;
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
        merge_into(&mut out, &extra);
        Ok(out)
    }
}

/// Runs one step on its provider.
pub async fn run(run: StepRun<'_>) -> AppResult<Value> {
    let provider = run.ctx.catalogue().provider(run.step.provider_id).await?.ok_or_else(|| {
        AppError::new(ErrorKind::Internal, ErrorCode::ProviderMissing, "the step's provider no longer exists")
    })?;
    if !provider.is_active {
        return Err(AppError::new(
            ErrorKind::Unavailable,
            ErrorCode::ProviderDisabled,
            format!("provider '{}' is disabled", provider.name),
        ));
    }
    let not_available = || {
        AppError::new(
            ErrorKind::Unavailable,
            ErrorCode::StepNotAvailable,
            format!("provider type '{}' cannot run '{}' steps", provider.kind, run.step.kind),
        )
    };
    match (provider.kind, run.step.kind) {
        (ProviderKind::Local, StepKind::Echo) => echo(run).await,
        (ProviderKind::Local, _) => run_local(run).await,
        (ProviderKind::OpenAi, StepKind::ImageGen) => {
            let key = decrypt_key(run.ctx.master_key(), &provider)?;
            openai::image_gen(run, &provider, &key).await
        }
        (ProviderKind::Fal, StepKind::BackgroundRemove) => {
            let key = decrypt_key(run.ctx.master_key(), &provider)?;
            fal::background_remove(run, &provider, &key).await
        }
        (ProviderKind::Tripo, StepKind::ThreeD) => {
            let key = decrypt_key(run.ctx.master_key(), &provider)?;
            tripo::image_to_model(run, &provider, &key).await
        }
        (ProviderKind::OpenAi | ProviderKind::Fal | ProviderKind::Tripo, _) => Err(not_available()),
    }
}

/// Decrypts a provider's key with this process's master key.
pub fn decrypt_key(master_key: &crypto::MasterKey, provider: &ProviderRow) -> AppResult<secrecy::SecretString> {
    let (Some(sealed), Some(key_id)) = (&provider.api_key, &provider.api_key_id) else {
        return Err(AppError::new(
            ErrorKind::Unavailable,
            ErrorCode::ProviderNoKey,
            format!("provider '{}' has no API key", provider.name),
        ));
    };
    master_key.decrypt(provider.id, key_id, sealed).map(secrecy::SecretString::from).map_err(|e| {
        AppError::new(
            ErrorKind::Unavailable,
            ErrorCode::ProviderKeyUnreadable,
            format!("provider '{}': {e}", provider.name),
        )
    })
}

/// `local` `echo`: returns its input after `delayMs`, with 10 progress events over the
/// delay (one, at 50 %, without a delay); `failAttempts: n` makes the first n runs fail
/// transiently (tests of retries).
async fn echo(run: StepRun<'_>) -> AppResult<Value> {
    if run.input.get("failAttempts").and_then(Value::as_u64).is_some_and(|n| u64::from(run.attempt) <= n) {
        return Err(AppError::new(
            ErrorKind::Unavailable,
            ErrorCode::EchoInjectedFailure,
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
        .map_err(|e| AppError::new(ErrorKind::Validation, ErrorCode::LocalStepFailed, e))?;
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
                AppError::new(ErrorKind::Validation, ErrorCode::UnknownStyle, format!("the tool has no style '{id}'"))
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
        AppError::new(
            ErrorKind::Validation,
            ErrorCode::InvalidImage,
            format!("the input is not an image we can read: {e}"),
        )
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
