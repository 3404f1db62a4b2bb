//! OpenAI Images API (`image-gen`): `POST /images/generations` from a prompt, or
//! `POST /images/edits` (multipart) when the step has an input image; gpt-image models
//! answer with `data[0].b64_json`, which is decoded, checked to be an image, and stored.
//! The style reference's prompt leads the user's prompt.
//!
//! The call is synchronous — there is no job to resume — so it is the one provider call a
//! crash after OpenAI's answer can repeat (and pay for twice).

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::StepRun;
use super::http;
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::storage::FileType;
use crate::store::ProviderRow;

pub async fn image_gen(run: StepRun<'_>, provider: &ProviderRow, key: &SecretString) -> AppResult<Value> {
    let base = super::base_url(provider);
    let base = base.trim_end_matches('/').to_string();
    let prompt = prompt_for(&run)?;
    let size = run.input["size"].as_str().unwrap_or("1024x1024").to_string();
    if !["1024x1024", "1536x1024", "1024x1536", "auto"].contains(&size.as_str()) {
        return Err(AppError::validation("size must be 1024x1024, 1536x1024, 1024x1536 or auto"));
    }
    let quality = run.input["quality"].as_str().unwrap_or("auto").to_string();
    let client = run.ctx.http().clone();
    let model = run.step.provider_model.clone();
    let image = match run.input["imageStorageKey"].as_str() {
        Some(_) => Some(run.input_image().await?),
        None => None,
    };
    run.progress(10, if image.is_some() { "editing the image with OpenAI" } else { "generating with OpenAI" }).await?;
    let resp = match &image {
        None => {
            let body = json!({ "model": model, "prompt": prompt, "n": 1, "size": size, "quality": quality });
            http::send(&run.ctx.settings().providers, "OpenAI", key, http::Repeat::CreatesWork, || {
                client.post(format!("{base}/images/generations")).bearer_auth(key.expose_secret()).json(&body)
            })
            .await?
        }
        Some((stem, bytes)) => {
            let mime = FileType::sniff(bytes).map(|t| t.mime()).unwrap_or("image/png");
            http::send(&run.ctx.settings().providers, "OpenAI", key, http::Repeat::CreatesWork, || {
                let part = reqwest::multipart::Part::bytes(bytes.to_vec())
                    .file_name(format!("{stem}.png"))
                    .mime_str(mime)
                    .expect("a valid mime type");
                let form = reqwest::multipart::Form::new()
                    .text("model", model.clone())
                    .text("prompt", prompt.clone())
                    .text("n", "1")
                    .text("size", size.clone())
                    .text("quality", quality.clone())
                    .part("image", part);
                client.post(format!("{base}/images/edits")).bearer_auth(key.expose_secret()).multipart(form)
            })
            .await?
        }
    };
    let body = http::json("OpenAI", resp).await?;
    let b64 =
        body["data"][0]["b64_json"].as_str().ok_or_else(|| http::bad_response("OpenAI", "no data[0].b64_json"))?;
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| http::bad_response("OpenAI", "b64_json is not base64"))?;
    let file_type = FileType::sniff(&png)
        .filter(|t| matches!(t, FileType::Png | FileType::Jpeg | FileType::Webp))
        .ok_or_else(|| http::bad_response("OpenAI", "b64_json is not an image"))?;
    run.progress(90, "storing the image").await?;
    let usage = body.get("usage").cloned().unwrap_or(Value::Null);
    let stem = image.as_ref().map(|(s, _)| s.as_str()).unwrap_or("generated");
    run.store(
        &format!("{stem}-openai.{}", file_type.extension()),
        file_type,
        png,
        json!({ "model": run.step.provider_model, "prompt": prompt, "usage": usage }),
    )
    .await
}

/// The style reference's prompt, then the user's.
fn prompt_for(run: &StepRun<'_>) -> AppResult<String> {
    let user = run.input["prompt"].as_str().unwrap_or("").trim().to_string();
    let style = match run.input["style"].as_str() {
        Some(id) => Some(run.tool.style_references.iter().find(|s| s.id == id).ok_or_else(|| {
            AppError::new(ErrorKind::Validation, ErrorCode::UnknownStyle, format!("the tool has no style '{id}'"))
        })?),
        None => None,
    };
    let prompt = match (style, user.is_empty()) {
        (Some(s), true) => s.prompt.clone(),
        (Some(s), false) => format!("{}. {user}", s.prompt.trim_end_matches('.')),
        (None, false) => user,
        (None, true) => return Err(AppError::validation("an OpenAI image-gen step needs a prompt or a style")),
    };
    if prompt.chars().count() > 32_000 {
        return Err(AppError::validation("the prompt is longer than 32,000 characters"));
    }
    Ok(prompt)
}
