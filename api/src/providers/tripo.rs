//! Tripo's image-to-model API (`3d-gen`): `POST {base}/task` with
//! `{type: "image_to_model", model_version, file: {type, url}}` (Bearer key), save the task
//! id, poll `GET {base}/task/{id}` (its progress becomes progress events), and download the
//! GLB at once — Tripo's result URLs expire — then store it. Tripo answers
//! `{code: 0, data: …}`; any other code is its error.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::StepRun;
use super::http;
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::storage::FileType;
use crate::store::ProviderRow;

const WHO: &str = "Tripo";

fn data(key: &SecretString, answer: Value) -> AppResult<Value> {
    match answer["code"].as_i64() {
        Some(0) => Ok(answer["data"].clone()),
        Some(code) => Err(AppError::new(
            ErrorKind::Validation,
            ErrorCode::ProviderRejected,
            format!(
                "Tripo error {code}: {}",
                http::safe_message(answer["message"].as_str().unwrap_or("no message"), key)
            ),
        )),
        None => Err(http::bad_response(WHO, "no code")),
    }
}

pub async fn image_to_model(mut run: StepRun<'_>, provider: &ProviderRow, key: &SecretString) -> AppResult<Value> {
    let base = super::base_url(provider);
    let base = base.trim_end_matches('/').to_string();
    let client = run.ctx.http().clone();
    let task_id = match run.saved["tripoTaskId"].as_str() {
        Some(id) => {
            run.progress(5, "resuming the Tripo task").await?;
            id.to_string()
        }
        None => {
            let url = run.input_image_url().await?;
            let kind = match url.split('?').next().and_then(|p| p.rsplit('.').next()).map(str::to_ascii_lowercase) {
                Some(ext) if ext == "jpg" || ext == "jpeg" => "jpg",
                Some(ext) if ext == "webp" => "webp",
                _ => "png",
            };
            let body = json!({
                "type": "image_to_model",
                "model_version": run.step.provider_model,
                "file": { "type": kind, "url": url },
            });
            let resp = http::send(&run.ctx.settings().providers, WHO, key, http::Repeat::CreatesWork, || {
                client.post(format!("{base}/task")).bearer_auth(key.expose_secret()).json(&body)
            })
            .await?;
            let created = data(key, http::json(WHO, resp).await?)?;
            let id = created["task_id"].as_str().ok_or_else(|| http::bad_response(WHO, "no task_id"))?;
            if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || id.len() > 100 {
                return Err(http::bad_response(WHO, "a malformed task_id"));
            }
            // Saved before waiting: a run after a crash polls this task, not a new one.
            run.save(json!({ "tripoTaskId": id })).await?;
            id.to_string()
        }
    };
    let poll = Duration::from_millis(run.ctx.settings().providers.poll_ms);
    let mut last = None;
    let output = loop {
        let resp = http::send(&run.ctx.settings().providers, WHO, key, http::Repeat::Safe, || {
            client.get(format!("{base}/task/{task_id}")).bearer_auth(key.expose_secret())
        })
        .await?;
        let task = data(key, http::json(WHO, resp).await?)?;
        let progress = task["progress"].as_u64().unwrap_or(0).min(100) as u8;
        match task["status"].as_str() {
            Some("queued") | Some("running") => {
                if last != Some(progress) {
                    last = Some(progress);
                    let shown = (10 + u32::from(progress) * 7 / 10) as u8;
                    let message = format!("{} at Tripo ({progress}%)", task["status"].as_str().unwrap_or(""));
                    run.progress(shown, &message).await?;
                }
            }
            Some("success") => break task["output"].clone(),
            Some(status @ ("failed" | "cancelled" | "banned" | "expired" | "unknown")) => {
                return Err(AppError::new(
                    ErrorKind::Validation,
                    ErrorCode::ProviderJobFailed,
                    format!("the Tripo task ended as '{status}'"),
                ));
            }
            _ => return Err(http::bad_response(WHO, "an unknown task status")),
        }
        tokio::time::sleep(poll).await;
    };
    let url = ["pbr_model", "model", "base_model"]
        .iter()
        .find_map(|k| output[*k].as_str().or_else(|| output[*k]["url"].as_str()))
        .ok_or_else(|| http::bad_response(WHO, "no model URL in the output"))?;
    run.progress(85, "downloading the model").await?;
    let max = run.ctx.settings().storage.max_model_bytes;
    let glb = http::download(&run.ctx.settings().providers, run.ctx.http(), WHO, url, max).await?;
    if FileType::sniff(&glb) != Some(FileType::Glb) {
        return Err(http::bad_response(WHO, "the model is not binary glTF"));
    }
    run.progress(95, "storing the model").await?;
    run.store(
        "model-tripo.glb",
        FileType::Glb,
        glb,
        json!({ "model": run.step.provider_model, "providerTaskId": task_id }),
    )
    .await
}
