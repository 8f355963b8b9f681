//! `kill -9` of a gateway under a load of streamed and non-streamed
//! requests, then the ledger read back from its sled directory: with
//! `[state] durability = "sync"` every answer a client fully received (a
//! JSON body, a stream up to `[DONE]`) has its record; with the default
//! group commit what a crash loses is measured and printed.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::gateway::{self, Mock};
use crate::support::process::{Sluice, config_file};
use crate::support::state::{ledger, open_sled, try_read};

/// Concurrent clients, each sending one request after the other.
const CLIENTS: usize = 8;
/// Fully received answers before the kill.
const KILL_AFTER: usize = 300;

fn config(mock: &Mock, dir: &Path, durability: &str) -> String {
    format!(
        r#"
[[providers]]
name = "mock"
base-url = "{}"

[models.chat]
routes = [{{ provider = "mock", model = "mock-small", input-cost-per-mtok = 1.0, output-cost-per-mtok = 2.0 }}]

[state]
dir = '{}'
durability = "{durability}"
"#,
        mock.base(),
        dir.join("data").display()
    )
}

struct Load {
    /// Request ids of answers the client received whole.
    complete: Mutex<Vec<String>>,
    done: AtomicUsize,
    stop: AtomicBool,
}

/// Load `url` until the gateway dies; kill it after [`KILL_AFTER`] answers.
async fn kill_under_load(gw: &mut Sluice) -> (Vec<String>, f64) {
    let load = Arc::new(Load {
        complete: Mutex::new(Vec::new()),
        done: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let url = gw.v1("chat/completions");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (load, url) = (load.clone(), url.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for i in 0usize.. {
                    if load.stop.load(Ordering::Acquire) {
                        return;
                    }
                    let mut body = json!({
                        "model": "chat",
                        "messages": [{"role": "user", "content": format!("client {c} request {i}: tell me a story")}],
                    });
                    if i % 2 == 1 {
                        body["stream"] = json!(true);
                    }
                    let Ok(res) = client.post(&url).json(&body).send().await else {
                        return; // the gateway is gone
                    };
                    // A body cut by the kill is not complete (or fails to read).
                    let Ok(text_res) = tokio::time::timeout(Duration::from_secs(60), read_whole(res)).await else {
                        return;
                    };
                    if let Some(id) = text_res {
                        load.complete.lock().unwrap().push(id);
                        load.done.fetch_add(1, Ordering::AcqRel);
                    }
                }
            })
        })
        .collect();
    let start = Instant::now();
    let guard = Duration::from_secs(300);
    while load.done.load(Ordering::Acquire) < KILL_AFTER {
        assert!(
            start.elapsed() < guard,
            "the load did not reach {KILL_AFTER} answers:\n{}",
            gw.log_text()
        );
        // A poll interval: the clients count as they go.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = load.done.load(Ordering::Acquire) as f64 / start.elapsed().as_secs_f64();
    gw.kill9().await;
    load.stop.store(true, Ordering::Release);
    for c in clients {
        c.await.unwrap();
    }
    let complete = load.complete.lock().unwrap().clone();
    (complete, rate)
}

/// The request id of an answer read whole, None if it was cut short.
async fn read_whole(res: reqwest::Response) -> Option<String> {
    let a = try_read(res).await?;
    a.complete().then_some(a.id)
}

async fn records_after_crash(dir: &Path) -> HashSet<String> {
    let state = open_sled(&dir.join("data")).await;
    ledger(&state)
        .await
        .into_iter()
        .map(|r| r.request_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_mode_loses_no_answer_the_client_received() {
    let _machine = crate::support::loading_the_machine().await;
    let mock = gateway::mock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(dir.path(), &config(&mock, dir.path(), "sync"));
    let mut gw = Sluice::serve(&path).await;
    let (complete, rate) = kill_under_load(&mut gw).await;
    drop(gw);
    let present = records_after_crash(dir.path()).await;
    let missing: Vec<&String> = complete
        .iter()
        .filter(|id| !present.contains(*id))
        .collect();
    println!(
        "kill -9, sync: {} answers received whole ({rate:.0}/s), {} records on disk, {} missing",
        complete.len(),
        present.len(),
        missing.len()
    );
    assert!(complete.len() >= KILL_AFTER);
    assert!(missing.is_empty(), "answers without a record: {missing:?}");

    // The gateway restarts on the crashed directory and keeps serving.
    let gw = Sluice::serve(&path).await;
    let res = reqwest::Client::new()
        .post(gw.v1("chat/completions"))
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "still there?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_loss_is_measured() {
    let _machine = crate::support::loading_the_machine().await;
    let mock = gateway::mock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(dir.path(), &config(&mock, dir.path(), "group"));
    let mut gw = Sluice::serve(&path).await;
    let (complete, rate) = kill_under_load(&mut gw).await;
    drop(gw);
    let present = records_after_crash(dir.path()).await;
    let lost = complete.iter().filter(|id| !present.contains(*id)).count();
    println!(
        "kill -9, group commit (10 ms): {lost} of {} answers received whole lost ({rate:.0} answers/s, {:.1} ms of answers)",
        complete.len(),
        lost as f64 / rate * 1e3
    );
    // What survives is a prefix of the writes: most of the run.
    assert!(
        present.len() * 2 >= complete.len(),
        "{} of {}",
        present.len(),
        complete.len()
    );
}
