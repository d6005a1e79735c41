//! Hostile outbound HTTP, chosen by `MODE` (environment), against `URL`:
//!
//! - `flood`: starts `COUNT` GETs at once and sends `ok=<n> refused=<n>`
//!   to topic `results`;
//! - `redirect`: GETs `URL` and, if it answers with a redirect, follows the
//!   `Location` itself; sends `first=<status> then=<status or error>`;
//! - `wait-then-loop`: awaits a GET (so the guest is resumed by the host's
//!   callback) and then never returns.

spin_sdk::wit_bindgen::generate!({
    path: "../../../../wit",
    world: "weir:function/fetcher",
    runtime_path: "spin_sdk::wit_bindgen::rt",
});

use weir::function::producer;

struct Net;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

fn report(text: String) -> Result<(), Error> {
    producer::send("results", None, text.as_bytes())
        .map_err(|e| Error::Other(format!("send failed: {e:?}")))
}

impl Guest for Net {
    async fn handle_cron_event(_metadata: Metadata) -> Result<(), Error> {
        let url = env("URL");
        match env("MODE").as_str() {
            "flood" => {
                let count: usize = env("COUNT").parse().unwrap_or(1000);
                let requests = (0..count).map(|_| spin_sdk::http::get(&url));
                let answers = futures::future::join_all(requests).await;
                let ok = answers.iter().filter(|a| a.is_ok()).count();
                report(format!("ok={ok} refused={}", count - ok))
            }
            "redirect" => {
                let first = spin_sdk::http::get(&url)
                    .await
                    .map_err(|e| Error::Other(format!("first GET failed: {e:?}")))?;
                let location = first
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let then = match spin_sdk::http::get(&location).await {
                    Ok(second) => second.status().as_u16().to_string(),
                    Err(e) => format!("{e:?}"),
                };
                report(format!("first={} then={then}", first.status().as_u16()))
            }
            "wait-then-loop" => {
                let _ = spin_sdk::http::get(&url).await;
                let mut n = 1u64;
                loop {
                    n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            other => Err(Error::Other(format!("unknown MODE `{other}`"))),
        }
    }
}

export!(Net);
