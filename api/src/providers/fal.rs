//! fal.ai's queue API (`background-remove`): submit to `POST {base}/{model}` (header
//! `Authorization: Key …`), save the request id, poll
//! `GET {base}/{app}/requests/{id}/status?logs=1` (queue position and logs become progress
//! events), fetch `GET {base}/{app}/requests/{id}`, download `image.url` and store it.
//! `{app}` is the model id's owner/name (`fal-ai/birefnet/v2` → `fal-ai/birefnet`). URLs are
//! built from the configured base, never taken from answers, so the key only goes there.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::StepRun;
use super::http;
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::storage::FileType;
use crate::store::ProviderRow;

const WHO: &str = "fal.ai";

pub async fn background_remove(mut run: StepRun<'_>, provider: &ProviderRow, key: &SecretString) -> AppResult<Value> {
    let base = super::base_url(provider);
    let base = base.trim_end_matches('/').to_string();
    let model = run.step.provider_model.clone();
    let app: String = model.split('/').take(2).collect::<Vec<_>>().join("/");
    let client = run.ctx.http().clone();
    let auth = format!("Key {}", key.expose_secret());
    let request_id = match run.saved["falRequestId"].as_str() {
        Some(id) => {
            run.progress(5, "resuming the fal.ai request").await?;
            id.to_string()
        }
        None => {
            let image_url = run.input_image_url().await?;
            let body = json!({ "image_url": image_url, "output_format": "png" });
            let resp = http::send(&run.ctx.settings().providers, WHO, key, http::Repeat::CreatesWork, || {
                client.post(format!("{base}/{model}")).header("Authorization", &auth).json(&body)
            })
            .await?;
            let answer = http::json(WHO, resp).await?;
            let id = answer["request_id"].as_str().ok_or_else(|| http::bad_response(WHO, "no request_id"))?;
            if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || id.len() > 100 {
                return Err(http::bad_response(WHO, "a malformed request_id"));
            }
            // Saved before waiting: a run after a crash polls this request, not a new one.
            run.save(json!({ "falRequestId": id, "falModel": model })).await?;
            id.to_string()
        }
    };
    let poll = Duration::from_millis(run.ctx.settings().providers.poll_ms);
    let mut last_position: Option<i64> = None;
    // Lines of fal.ai's log already shown; `None` until the first IN_PROGRESS.
    let mut logs_seen: Option<usize> = None;
    loop {
        let resp = http::send(&run.ctx.settings().providers, WHO, key, http::Repeat::Safe, || {
            client
                .get(format!("{base}/{app}/requests/{request_id}/status"))
                .query(&[("logs", "1")])
                .header("Authorization", &auth)
        })
        .await?;
        let status = http::json(WHO, resp).await?;
        match status["status"].as_str() {
            Some("IN_QUEUE") => {
                let position = status["queue_position"].as_i64();
                if position != last_position || last_position.is_none() {
                    last_position = position;
                    let message = match position {
                        Some(p) => format!("waiting at fal.ai: position {p}"),
                        None => "waiting at fal.ai".to_string(),
                    };
                    run.progress_with(10, &message, json!({ "providerQueuePosition": position })).await?;
                }
            }
            Some("IN_PROGRESS") => {
                let logs = status["logs"].as_array().cloned().unwrap_or_default();
                let seen = logs_seen.unwrap_or(0);
                if logs_seen.is_none() || logs.len() > seen {
                    let message = logs
                        .get(seen..)
                        .and_then(|new| new.last())
                        .and_then(|l| l["message"].as_str())
                        .map(|m| http::safe_message(m, key))
                        .unwrap_or_else(|| "removing the background at fal.ai".into());
                    run.progress(50, &message).await?;
                }
                logs_seen = Some(logs.len());
            }
            Some("COMPLETED") => {
                if let Some(error) = status["error"].as_str() {
                    return Err(AppError::new(
                        ErrorKind::Validation,
                        ErrorCode::ProviderJobFailed,
                        format!("fal.ai: {}", http::safe_message(error, key)),
                    ));
                }
                break;
            }
            _ => return Err(http::bad_response(WHO, "an unknown request status")),
        }
        tokio::time::sleep(poll).await;
    }
    run.progress(80, "fetching the result").await?;
    let resp = http::send(&run.ctx.settings().providers, WHO, key, http::Repeat::Safe, || {
        client.get(format!("{base}/{app}/requests/{request_id}")).header("Authorization", &auth)
    })
    .await?;
    let result = http::json(WHO, resp).await?;
    let url = result["image"]["url"].as_str().ok_or_else(|| http::bad_response(WHO, "no image.url in the result"))?;
    let max = run.ctx.settings().storage.max_image_bytes;
    let bytes = http::download(&run.ctx.settings().providers, run.ctx.http(), WHO, url, max).await?;
    let file_type = FileType::sniff(&bytes)
        .filter(|t| matches!(t, FileType::Png | FileType::Jpeg | FileType::Webp))
        .ok_or_else(|| http::bad_response(WHO, "the result is not an image"))?;
    run.progress(95, "storing the result").await?;
    let stem = run.input["imageStorageKey"]
        .as_str()
        .and_then(|k| k.rsplit('/').next())
        .and_then(|f| f.split_once('_').map(|(_, n)| n).or(Some(f)))
        .and_then(|f| f.rsplit_once('.').map(|(s, _)| s.to_string()))
        .unwrap_or_else(|| "image".into());
    run.store(
        &format!("{stem}-cutout.{}", file_type.extension()),
        file_type,
        bytes,
        json!({ "model": model, "providerRequestId": request_id }),
    )
    .await
}
