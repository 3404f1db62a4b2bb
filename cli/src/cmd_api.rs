//! `funmagic api METHOD PATH [-f key=value]… [-F key=json]… [--input FILE] [--paginate]`:
//! any API call with the stored credentials, as `gh api`. For GET and DELETE the fields
//! become query parameters; otherwise they build a JSON body (`--input` gives the whole body
//! instead). The answer's JSON goes to stdout (through `--jq` when given); a non-2xx answer
//! prints its JSON error there too and exits with the code its status maps to.
//! `--paginate` follows `nextCursor` until the last page, printing each page.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output;

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// GET, POST, PATCH, PUT or DELETE.
    pub method: String,
    /// The path, e.g. /api/tools or /api/tasks?limit=5.
    pub path: String,
    /// A string field (`key=value`): a query parameter for GET/DELETE, else a body field.
    #[arg(short = 'f', long = "raw-field", value_name = "KEY=VALUE")]
    pub fields: Vec<String>,
    /// A typed field (`key=value`, the value read as JSON: numbers, true, false, null,
    /// arrays, objects; anything else is a string).
    #[arg(short = 'F', long = "field", value_name = "KEY=VALUE")]
    pub typed_fields: Vec<String>,
    /// The request body from a JSON file (`-` for stdin).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["fields", "typed_fields"])]
    pub input: Option<PathBuf>,
    /// An extra request header (`Name: value`), e.g. `Idempotency-Key: …`.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Follow `nextCursor` and print every page.
    #[arg(long)]
    pub paginate: bool,
    /// Print the status line and headers before the body (on stderr).
    #[arg(short, long)]
    pub include: bool,
}

fn split_field(raw: &str) -> Result<(String, String), CliError> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| CliError::usage(format!("'{raw}': expected KEY=VALUE")))
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub async fn run(ctx: &Context, args: ApiArgs) -> Result<ExitCode, CliError> {
    let method: reqwest::Method = args
        .method
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| CliError::usage(format!("'{}' is not an HTTP method", args.method)))?;
    if !args.path.starts_with('/') {
        return Err(CliError::usage(format!("the path must start with /: '{}'", args.path)));
    }
    let mut fields: Vec<(String, serde_json::Value)> = Vec::new();
    for f in &args.fields {
        let (k, v) = split_field(f)?;
        fields.push((k, serde_json::Value::String(v)));
    }
    for f in &args.typed_fields {
        let (k, v) = split_field(f)?;
        let value = serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v));
        fields.push((k, value));
    }
    let mut headers = Vec::new();
    for h in &args.headers {
        let (k, v) =
            h.split_once(':').ok_or_else(|| CliError::usage(format!("header '{h}': expected 'Name: value'")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let in_query = matches!(method, reqwest::Method::GET | reqwest::Method::DELETE | reqwest::Method::HEAD);
    let mut path = args.path.clone();
    let mut body = None;
    if let Some(file) = &args.input {
        body = Some(output::read_json_file(file)?);
    } else if in_query {
        for (k, v) in &fields {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(&format!("{}={}", query_escape(k), query_escape(&v)));
        }
    } else if !fields.is_empty() {
        body = Some(serde_json::Value::Object(fields.into_iter().collect()));
    }

    let mut cursor: Option<String> = None;
    loop {
        let page_path = match &cursor {
            Some(c) => format!("{path}{}cursor={}", if path.contains('?') { '&' } else { '?' }, query_escape(c)),
            None => path.clone(),
        };
        let resp = funmagic_sdk::raw::call(&ctx.client, method.clone(), &page_path, body.as_ref(), &headers)
            .await
            .map_err(|e| CliError::other(format!("cannot reach the FunMagic server at {}: {e}", ctx.api_url)))?;
        if args.include {
            eprintln!("HTTP {} {page_path}", resp.status);
            for (k, v) in &resp.headers {
                eprintln!("{k}: {}", v.to_str().unwrap_or("…"));
            }
            eprintln!();
        }
        let json = resp.json();
        if !resp.body.is_empty() {
            if json.is_null() && !resp.body.starts_with(b"null") {
                // Not JSON (an SSE stream, a file): the bytes as they came.
                use std::io::Write;
                std::io::stdout().write_all(&resp.body).map_err(|e| CliError::other(e.to_string()))?;
            } else {
                output::print_json(&json);
            }
        }
        if !resp.is_success() {
            let mut err = CliError::new(exit_for(resp.status), format!("HTTP {}", resp.status));
            err.code = json["code"].as_str().map(str::to_string);
            err.message = json["error"].as_str().map(str::to_string).unwrap_or(err.message);
            return Err(err);
        }
        cursor = json["nextCursor"].as_str().map(str::to_string);
        if !args.paginate || cursor.is_none() {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// As any command's exit code, except that a request the API refuses as malformed or
/// pointing nowhere is a usage error here (the caller wrote the request).
fn exit_for(status: u16) -> Exit {
    match status {
        400 | 404 | 405 | 409 | 413 | 415 | 422 => Exit::Usage,
        other => Exit::for_status(other),
    }
}
