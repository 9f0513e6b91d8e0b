//! `OpenAiEmbedder` against a stand-in embeddings server in the test process: request shape, input order, retries of transient failures only, timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use adapter_search::{OpenAiEmbedder, OpenAiSettings};
use domain::ports::{EmbeddingError, EmbeddingProvider};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the stand-in answers to the `n`th request (from 0), and after how long.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    Embeddings { dimensions: usize },
    Slow(Duration),
}

/// A stand-in `POST /v1/embeddings`: counts requests, keeps the last body and authorisation.
struct StandIn {
    base_url: String,
    calls: Arc<AtomicUsize>,
    last: Arc<std::sync::Mutex<Option<(String, Value)>>>,
}

async fn read_request(stream: &mut TcpStream) -> Option<(String, String, Value)> {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let header = |name: &str| {
        head.lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let length: usize = header("content-length").parse().unwrap_or(0);
    while buffer.len() < head_end + length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = serde_json::from_slice(&buffer[head_end..head_end + length]).ok()?;
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Some((path, header("authorization"), body))
}

async fn respond(stream: &mut TcpStream, status: u16, body: &str) {
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await.ok();
    stream.shutdown().await.ok();
}

impl StandIn {
    /// Answers request `n` with `script[n]` (the last entry for every later one).
    async fn start(script: Vec<Answer>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let base_url = format!("http://{}/v1", listener.local_addr().expect("an address"));
        let calls = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(std::sync::Mutex::new(None));
        let (counter, seen) = (Arc::clone(&calls), Arc::clone(&last));
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (counter, seen, script) =
                    (Arc::clone(&counter), Arc::clone(&seen), script.clone());
                tokio::spawn(async move {
                    let Some((path, authorization, body)) = read_request(&mut stream).await else {
                        return;
                    };
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let answer = script[n.min(script.len() - 1)];
                    let inputs = body["input"].as_array().map_or(0, Vec::len);
                    *seen.lock().expect("the lock") = Some((authorization, body.clone()));
                    assert_eq!(path, "/v1/embeddings");
                    match answer {
                        Answer::Status(status) => {
                            respond(&mut stream, status, r#"{"error":{"message":"no"}}"#).await;
                        }
                        Answer::Slow(delay) => {
                            tokio::time::sleep(delay).await;
                            respond(&mut stream, 200, "{}").await;
                        }
                        Answer::Embeddings { dimensions } => {
                            // Reversed, as an API may: the client must order by `index`.
                            let data: Vec<Value> = (0..inputs)
                                .rev()
                                .map(|index| {
                                    let mut vector = vec![0.0_f32; dimensions];
                                    vector[index % dimensions] = 1.0;
                                    json!({"object": "embedding", "index": index, "embedding": vector})
                                })
                                .collect();
                            let body =
                                json!({"object": "list", "data": data, "model": body["model"]});
                            respond(&mut stream, 200, &body.to_string()).await;
                        }
                    }
                });
            }
        });
        Self {
            base_url,
            calls,
            last,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn embedder(&self, retries: u32, timeout: Duration) -> OpenAiEmbedder {
        OpenAiEmbedder::new(OpenAiSettings {
            base_url: format!("{}/", self.base_url),
            model: "test-embedding".to_owned(),
            api_key: Some(SecretString::from("sk-test".to_owned())),
            dimensions: 4,
            timeout,
            retries,
        })
        .expect("a client")
        .with_retry_base(Duration::from_millis(5))
    }
}

fn texts() -> Vec<String> {
    vec!["first".to_owned(), "second".to_owned()]
}

#[tokio::test]
async fn vectors_come_back_in_input_order_from_an_authorised_request() {
    let server = StandIn::start(vec![Answer::Embeddings { dimensions: 4 }]).await;
    let vectors = server
        .embedder(0, Duration::from_secs(5))
        .embed(&texts())
        .await
        .expect("vectors");
    let values: Vec<Vec<f32>> = vectors.iter().map(|e| e.values().to_vec()).collect();
    assert_eq!(values, [vec![1.0, 0.0, 0.0, 0.0], vec![0.0, 1.0, 0.0, 0.0]]);
    let (authorization, body) = server
        .last
        .lock()
        .expect("the lock")
        .clone()
        .expect("a request");
    assert_eq!(authorization, "Bearer sk-test");
    assert_eq!(
        body,
        json!({"model": "test-embedding", "input": ["first", "second"]})
    );
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn server_errors_and_429_are_retried_until_they_pass() {
    let server = StandIn::start(vec![
        Answer::Status(503),
        Answer::Status(429),
        Answer::Status(500),
        Answer::Embeddings { dimensions: 4 },
    ])
    .await;
    let vectors = server
        .embedder(3, Duration::from_secs(5))
        .embed(&texts())
        .await
        .expect("vectors after three failures");
    assert_eq!(vectors.len(), 2);
    assert_eq!(server.calls(), 4);
}

#[tokio::test]
async fn retries_run_out() {
    let server = StandIn::start(vec![Answer::Status(502)]).await;
    let error = server
        .embedder(2, Duration::from_secs(5))
        .embed(&texts())
        .await
        .expect_err("always failing");
    assert!(matches!(error, EmbeddingError::Unavailable(_)), "{error:?}");
    assert_eq!(server.calls(), 3);
}

#[tokio::test]
async fn other_client_errors_are_never_retried() {
    for status in [400, 401, 404, 422] {
        let server = StandIn::start(vec![
            Answer::Status(status),
            Answer::Embeddings { dimensions: 4 },
        ])
        .await;
        let error = server
            .embedder(3, Duration::from_secs(5))
            .embed(&texts())
            .await
            .expect_err("a client error");
        assert!(
            matches!(error, EmbeddingError::Rejected(_)),
            "{status}: {error:?}"
        );
        assert_eq!(server.calls(), 1, "{status}");
    }
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() {
    let server = StandIn::start(vec![
        Answer::Slow(Duration::from_secs(2)),
        Answer::Embeddings { dimensions: 4 },
    ])
    .await;
    let vectors = server
        .embedder(1, Duration::from_millis(200))
        .embed(&texts())
        .await
        .expect("vectors from the second attempt");
    assert_eq!(vectors.len(), 2);
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn vectors_of_the_wrong_dimension_are_a_bad_response_not_retried() {
    let server = StandIn::start(vec![Answer::Embeddings { dimensions: 3 }]).await;
    let error = server
        .embedder(3, Duration::from_secs(5))
        .embed(&texts())
        .await
        .expect_err("three dimensions, four configured");
    assert!(matches!(error, EmbeddingError::Rejected(_)), "{error:?}");
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("an address");
    drop(listener);
    let embedder = OpenAiEmbedder::new(OpenAiSettings {
        base_url: format!("http://{address}/v1"),
        model: "m".to_owned(),
        api_key: None,
        dimensions: 4,
        timeout: Duration::from_secs(1),
        retries: 1,
    })
    .expect("a client")
    .with_retry_base(Duration::from_millis(5));
    let error = embedder.embed(&texts()).await.expect_err("nobody listens");
    assert!(matches!(error, EmbeddingError::Unavailable(_)), "{error:?}");
}
