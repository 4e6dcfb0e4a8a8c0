//! `hookwire listen`: a temporary webhook whose deliveries come to this process over its own
//! connection to the registry (server-sent events), each forwarded as the same signed POST to a
//! local URL; the local answer is the attempt's result. Ctrl-C removes the webhook; a `listen`
//! that dies leaves one that expires within minutes.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hookwire_api::listen::{Listening, RelayedRequest, RelayedResponse};
use http_body_util::{BodyExt as _, Full};
use serde_json::json;

use crate::Context;
use hookwire_client::{http_client, root_cause, Client, HttpClient as Local};

#[derive(clap::Args)]
pub struct ListenArgs {
    /// Event patterns to receive, e.g. `person.*` (repeat or comma-separate).
    #[arg(long, required = true, num_args = 1.., value_delimiter = ',')]
    events: Vec<String>,
    /// Where to POST each delivery, e.g. http://localhost:3000/webhooks.
    #[arg(long)]
    forward_to: String,
}

/// How long the local receiver may take; past it the attempt fails as a timeout.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(25);

pub async fn run(ctx: &Context, args: ListenArgs) -> anyhow::Result<()> {
    let api = ctx.customer()?;
    let target: hyper::Uri = args
        .forward_to
        .parse()
        .map_err(|e| anyhow::anyhow!("--forward-to {}: {e}", args.forward_to))?;
    let session: Listening = api.post("/v1/listen", &json!({ "events": args.events })).await?;
    let mut announced = false;
    let local = http_client();
    let ended = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break None,
            outcome = follow(&api, &session, &local, &target, &mut announced, &args.forward_to) => match outcome {
                Ok(()) => break Some("the registry ended the session (it expired)"),
                Err(e) => {
                    eprintln!("stream interrupted ({e}); reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    };
    if let Some(why) = ended {
        anyhow::bail!("{why}");
    }
    api.delete(&format!("/v1/listen/{}", session.id)).await?;
    eprintln!("Removed the temporary webhook {}.", session.webhook_id);
    Ok(())
}

/// Reads the session's stream until the registry ends it (`Ok`) or it breaks (`Err`).
async fn follow(
    api: &Client,
    session: &Listening,
    local: &Local,
    target: &hyper::Uri,
    announced: &mut bool,
    forward_to: &str,
) -> anyhow::Result<()> {
    let (_, mut body) = api
        .raw("GET", &format!("/v1/listen/{}/requests", session.id), None)
        .await?;
    // The registry answers once its queue is bound: from now on no delivery is missed.
    if !std::mem::replace(announced, true) {
        println!("Ready: forwarding {} to {forward_to}", session.events.join(", "));
        println!("Signing secret: {}", session.secret);
        println!("Webhook: {} (removed when you press Ctrl-C)", session.webhook_id);
    }
    let mut buffer = String::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else { continue };
        buffer.push_str(&String::from_utf8_lossy(data));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let (mut kind, mut data) = ("message", String::new());
            for line in event.lines() {
                if let Some(k) = line.strip_prefix("event: ") {
                    kind = if k == "request" {
                        "request"
                    } else if k == "ended" {
                        "ended"
                    } else {
                        "other"
                    };
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            match kind {
                "ended" => return Ok(()),
                "request" => {
                    let request: RelayedRequest = serde_json::from_str(&data)?;
                    let (api, local, target, id) = (api.clone(), local.clone(), target.clone(), session.id);
                    tokio::spawn(async move { relay(&api, &local, &target, id, request).await });
                }
                _ => {}
            }
        }
    }
    anyhow::bail!("the registry closed the stream")
}

/// Forwards one request to the local receiver and reports what it answered.
async fn relay(api: &Client, local: &Local, target: &hyper::Uri, id: uuid::Uuid, request: RelayedRequest) {
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.clone())
            .unwrap_or_default()
    };
    let event_id = header("webhook-id");
    let event_type = serde_json::from_str::<serde_json::Value>(&request.body)
        .ok()
        .and_then(|b| b["type"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let started = Instant::now();
    let mut req = hyper::Request::post(target.clone());
    for h in &request.headers {
        if !matches!(
            h.name.to_ascii_lowercase().as_str(),
            "host" | "content-length" | "connection"
        ) {
            req = req.header(h.name.as_str(), h.value.as_str());
        }
    }
    let answer = match req.body(Full::new(Bytes::from(request.body.clone()))) {
        Err(e) => Err(format!("invalid_request: {e}")),
        Ok(req) => match tokio::time::timeout(LOCAL_TIMEOUT, local.request(req)).await {
            Err(_) => Err(format!("timeout: no response within {} s", LOCAL_TIMEOUT.as_secs())),
            Ok(Err(e)) => Err(format!("connect: {}", root_cause(&e))),
            Ok(Ok(res)) => {
                let status = res.status().as_u16();
                let body = res
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let kept = &body[..body.len().min(1024)];
                Ok((status, String::from_utf8_lossy(kept).into_owned()))
            }
        },
    };
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, body, error) = match answer {
        Ok((status, body)) => (Some(status), Some(body), None),
        Err(e) => (None, None, Some(e)),
    };
    let outcome = status.map_or_else(|| error.clone().unwrap_or_default(), |s| s.to_string());
    println!(
        "{}  {event_type}  {event_id}  -> {outcome}  {duration_ms} ms",
        chrono::Utc::now().format("%H:%M:%S")
    );
    let response = RelayedResponse {
        correlation_id: request.correlation_id,
        reply_to: request.reply_to,
        status,
        body,
        error,
        duration_ms,
    };
    if let Err(e) = api
        .call::<serde_json::Value>("POST", &format!("/v1/listen/{id}/responses"), Some(&response))
        .await
    {
        eprintln!("could not report the answer to event {event_id}: {e}");
    }
}
