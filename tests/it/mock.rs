//! Integration tests for the mock upstream: each test starts `serve` on an ephemeral loopback
//! port and talks to it over real sockets with hyper's legacy client.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flywheel::mock::serve;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Mock {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// What a request produced: the head, each body frame with its arrival time, and whether
/// the body ended in an error instead of a clean end.
struct Answer {
    status: StatusCode,
    content_type: String,
    frames: Vec<(Instant, Bytes)>,
    body_error: bool,
}

impl Answer {
    fn text(&self) -> String {
        let all: Vec<u8> = self.frames.iter().flat_map(|(_, b)| b.to_vec()).collect();
        String::from_utf8(all).expect("body is utf-8")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text()).expect("body is json")
    }

    /// The `data:` payloads of an SSE body, in order.
    fn events(&self) -> Vec<String> {
        let text = self.text();
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let data = e.lines().find_map(|l| l.strip_prefix("data: "));
                data.expect("event has data").to_owned()
            })
            .collect()
    }

    fn chunks(&self) -> Vec<Value> {
        let events = self.events();
        let json = events.iter().filter(|e| *e != "[DONE]");
        json.map(|e| serde_json::from_str(e).expect("event is json"))
            .collect()
    }
}

impl Mock {
    async fn start() -> Self {
        Self::start_with(false).await
    }

    async fn start_with(h2: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, async move {
            let _ = rx.await;
        }));
        let client = Client::builder(TokioExecutor::new())
            .http2_only(h2)
            .build_http();
        Mock {
            addr,
            client,
            stop: Some(tx),
            task: Some(task),
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
        let resp = self.client.request(req).await.expect("response head");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let mut body = resp.into_body();
        let mut frames = Vec::new();
        let mut body_error = false;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        frames.push((Instant::now(), data));
                    }
                }
                Err(_) => {
                    body_error = true;
                    break;
                }
            }
        }
        Answer {
            status,
            content_type,
            frames,
            body_error,
        }
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], body: Value) -> Answer {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.request(Method::POST, path, &all, &body.to_string())
            .await
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let task = self.task.take().unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), task).await;
        result
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
    }
}

fn chat_body(extra: Value) -> Value {
    let mut body = json!({
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there world"}
        ]
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Concatenated `delta.content` of chat chunks.
fn streamed_content(chunks: &[Value]) -> String {
    let content = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str());
    content.collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_non_streaming_echoes_last_user_message() {
    let mock = Mock::start().await;
    let answer = mock
        .post("/v1/chat/completions", &[], chat_body(json!({})))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type, "application/json");
    let v = answer.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["model"], "gpt-test");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["choices"].as_array().unwrap().len(), 1);
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "mock reply: hello there world"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10})
    );
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_content_parts_max_tokens_json_mode_and_n() {
    let mock = Mock::start().await;
    let parts = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "alpha beta"}, {"type": "text", "text": "gamma"}
    ]}], "max_tokens": 3});
    let v = mock
        .post("/v1/chat/completions", &[], chat_body(parts))
        .await
        .json();
    assert_eq!(v["choices"][0]["message"]["content"], "mock reply: alpha");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["prompt_tokens"], 3);

    let json_mode = json!({"response_format": {"type": "json_object"}, "n": 3});
    let v = mock
        .post("/v1/chat/completions", &[], chat_body(json_mode))
        .await
        .json();
    assert_eq!(v["choices"].as_array().unwrap().len(), 3);
    let content: Value =
        serde_json::from_str(v["choices"][2]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"reply": "mock reply: hello there world"}));
    assert_eq!(v["choices"][2]["index"], 2);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_stream_with_include_usage() {
    let mock = Mock::start().await;
    let body = chat_body(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let answer = mock.post("/v1/chat/completions", &[], body).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type, "text/event-stream");
    assert!(!answer.body_error);
    assert!(answer.text().ends_with("data: [DONE]\n\n"));
    let chunks = answer.chunks();
    // Role chunk, five word chunks, finish chunk, usage chunk.
    assert_eq!(chunks.len(), 8);
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    for chunk in &chunks[..7] {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert!(chunk.get("usage").unwrap().is_null());
        assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
    }
    assert_eq!(streamed_content(&chunks), "mock reply: hello there world");
    assert_eq!(chunks[6]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[6]["choices"][0]["finish_reason"], "stop");
    let last = &chunks[7];
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10})
    );
    assert_eq!(answer.events().last().unwrap(), "[DONE]");
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_stream_without_include_usage_has_no_usage() {
    let mock = Mock::start().await;
    let answer = mock
        .post(
            "/v1/chat/completions",
            &[],
            chat_body(json!({"stream": true})),
        )
        .await;
    let chunks = answer.chunks();
    assert_eq!(chunks.len(), 7);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert!(!answer.text().contains("usage"));

    // `no_usage` wins even when the client asked for usage.
    let body = chat_body(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let answer = mock
        .post("/v1/chat/completions", &[("x-mock", "no_usage")], body)
        .await;
    assert!(!answer.text().contains("usage"));
    let v = mock
        .post(
            "/v1/chat/completions",
            &[("x-mock", "no_usage")],
            chat_body(json!({})),
        )
        .await
        .json();
    assert!(v.get("usage").is_none());
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_json_and_stream() {
    let mock = Mock::start().await;
    let tools = json!({"tools": [
        {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "other"}}
    ]});
    let v = mock
        .post("/v1/chat/completions", &[], chat_body(tools.clone()))
        .await
        .json();
    let message = &v["choices"][0]["message"];
    assert!(message["content"].is_null());
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &message["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "search");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"query": "hello there world"}));

    let mut streaming = tools.clone();
    streaming["stream"] = json!(true);
    let chunks = mock
        .post("/v1/chat/completions", &[], chat_body(streaming))
        .await
        .chunks();
    let first = &chunks[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(first["index"], 0);
    assert_eq!(first["type"], "function");
    assert_eq!(first["function"]["name"], "search");
    assert_eq!(first["function"]["arguments"], "");
    let fragments: Vec<&str> = chunks[1..]
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(fragments.len() > 1, "arguments arrive in several fragments");
    let args: Value =
        serde_json::from_str(&fragments.concat()).expect("fragments reassemble into json");
    assert_eq!(args, json!({"query": "hello there world"}));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // `tool_choice: "none"` turns tools off.
    let mut none = tools;
    none["tool_choice"] = json!("none");
    let v = mock
        .post("/v1/chat/completions", &[], chat_body(none))
        .await
        .json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "mock reply: hello there world"
    );
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_plain_and_streamed() {
    let mock = Mock::start().await;
    let v = mock
        .post(
            "/v1/completions",
            &[],
            json!({"model": "m", "prompt": ["say this", "ignored"]}),
        )
        .await
        .json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "mock completion: say this");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6})
    );

    let body =
        json!({"prompt": "one two", "stream": true, "stream_options": {"include_usage": true}});
    let answer = mock.post("/v1/completions", &[], body).await;
    let chunks = answer.chunks();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "mock completion: one two");
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["usage"].is_null() && c.get("usage").is_some()));
    assert_eq!(chunks.last().unwrap()["choices"], json!([]));
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 4);
    assert_eq!(answer.events().last().unwrap(), "[DONE]");
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_dims_determinism_and_base64() {
    let mock = Mock::start().await;
    let body = json!({"model": "emb", "input": ["alpha", "beta gamma"], "dimensions": 16});
    let first = mock.post("/v1/embeddings", &[], body.clone()).await.json();
    let second = mock.post("/v1/embeddings", &[], body).await.json();
    assert_eq!(first, second, "embeddings are deterministic");
    assert_eq!(first["object"], "list");
    assert_eq!(first["model"], "emb");
    assert_eq!(
        first["usage"],
        json!({"prompt_tokens": 3, "total_tokens": 3})
    );
    let data = first["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    let vector: Vec<f64> = data[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(vector.len(), 16);
    let norm: f64 = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!(
        (norm - 1.0).abs() < 1e-3,
        "vector is normalized, norm {norm}"
    );
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);

    let v = mock
        .post("/v1/embeddings", &[], json!({"input": "alpha"}))
        .await
        .json();
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 8);
    let b64 = mock
        .post(
            "/v1/embeddings",
            &[],
            json!({"input": "alpha", "encoding_format": "base64"}),
        )
        .await
        .json();
    let encoded = b64["data"][0]["embedding"].as_str().unwrap();
    // Eight little-endian f32 values are 32 bytes, which is 44 base64 characters.
    assert_eq!(encoded.len(), 44);
    assert!(encoded.ends_with('='));
    let floats: Vec<f32> = v["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let first_bytes = floats[0].to_le_bytes();
    let expected_prefix = {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let n = (u32::from(first_bytes[0]) << 16)
            | (u32::from(first_bytes[1]) << 8)
            | u32::from(first_bytes[2]);
        (0..4)
            .map(|i| A[(n >> (18 - 6 * i) & 63) as usize] as char)
            .collect::<String>()
    };
    assert_eq!(&encoded[..4], expected_prefix);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_plain_and_streamed() {
    let mock = Mock::start().await;
    let v = mock
        .post(
            "/v1/responses",
            &[],
            json!({"model": "r", "input": "tell me"}),
        )
        .await
        .json();
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(v["output"][0]["content"][0]["text"], "mock reply: tell me");
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 2, "output_tokens": 4, "total_tokens": 6})
    );

    let input =
        json!([{"role": "user", "content": [{"type": "input_text", "text": "first question"}]}]);
    let answer = mock
        .post(
            "/v1/responses",
            &[],
            json!({"input": input, "stream": true}),
        )
        .await;
    assert_eq!(answer.content_type, "text/event-stream");
    let text = answer.text();
    assert!(!text.contains("[DONE]"));
    let raw_events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    let events = answer.chunks();
    for (seq, (raw, event)) in raw_events.iter().zip(&events).enumerate() {
        let name = raw.lines().next().unwrap().strip_prefix("event: ").unwrap();
        assert_eq!(event["type"], name);
        assert_eq!(event["sequence_number"], seq);
    }
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds[0], "response.created");
    assert!(kinds.contains(&"response.output_item.added"));
    assert!(kinds.contains(&"response.content_part.added"));
    assert!(kinds.contains(&"response.output_text.done"));
    assert!(kinds.contains(&"response.content_part.done"));
    assert!(kinds.contains(&"response.output_item.done"));
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "mock reply: first question");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.completed");
    assert_eq!(last["response"]["status"], "completed");
    assert_eq!(last["response"]["usage"]["output_tokens"], 4);
    assert_eq!(
        last["response"]["output"][0]["content"][0]["text"],
        "mock reply: first question"
    );
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_directive_via_header_and_model() {
    let mock = Mock::start().await;
    let answer = mock
        .post(
            "/v1/chat/completions",
            &[("x-mock", "status=500")],
            chat_body(json!({})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.json()["error"]["type"], "server_error");

    let answer = mock
        .post(
            "/v1/chat/completions",
            &[],
            chat_body(json!({"model": "mock:status=500"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    let v = answer.json();
    assert!(v["error"]["message"].is_string());
    assert!(v["error"]["param"].is_null());

    let answer = mock
        .post(
            "/v1/embeddings",
            &[("x-mock", "status=429")],
            json!({"input": "x"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(answer.json()["error"]["type"], "invalid_request_error");

    // The header wins over the model, so the model is echoed normally here.
    let body = chat_body(json!({"model": "mock:status=503"}));
    let answer = mock
        .post("/v1/chat/completions", &[("x-mock", "reply=fine")], body)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["choices"][0]["message"]["content"], "fine");
    assert_eq!(answer.json()["model"], "mock:status=503");
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_reply_words_and_chunk_count() {
    let mock = Mock::start().await;
    let v = mock
        .post(
            "/v1/chat/completions",
            &[("x-mock", "reply_words=4")],
            chat_body(json!({})),
        )
        .await
        .json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "word1 word2 word3 word4"
    );
    assert_eq!(v["usage"]["completion_tokens"], 4);

    // Twenty chunks from a five-word reply: the reply is padded so every chunk has a word.
    let body = chat_body(json!({"model": "mock:chunks=20", "stream": true}));
    let chunks = mock.post("/v1/chat/completions", &[], body).await.chunks();
    assert_eq!(chunks.len(), 22);
    assert!(chunks[1..21]
        .iter()
        .all(|c| !c["choices"][0]["delta"]["content"]
            .as_str()
            .unwrap()
            .trim()
            .is_empty()));

    // Two chunks from a long reply group the words.
    let body = chat_body(json!({"stream": true}));
    let chunks = mock
        .post(
            "/v1/chat/completions",
            &[("x-mock", "reply_words=9,chunks=2")],
            body,
        )
        .await
        .chunks();
    assert_eq!(chunks.len(), 4);
    assert_eq!(
        streamed_content(&chunks),
        "word1 word2 word3 word4 word5 word6 word7 word8 word9"
    );
    mock.stop().await;
}

/// The usage details an OpenAI chat answer carries, all zero for an answer with no cache,
/// no reasoning, no audio and no predicted output.
fn zero_details() -> (Value, Value) {
    let prompt = json!({"cached_tokens": 0, "audio_tokens": 0});
    let completion = json!({
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0
    });
    (prompt, completion)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prose_reply_of_a_given_size_with_usage_details() {
    let mock = Mock::start().await;
    let header = [("x-mock", "prose=1200,usage_details")];
    let v = mock
        .post("/v1/chat/completions", &header, chat_body(json!({})))
        .await
        .json();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    // Whole words up to the size asked for, and reads like an answer: sentences, numbers,
    // a code block, no filler words and no echo of the question.
    assert!(
        (1100..=1200).contains(&content.len()),
        "{} bytes",
        content.len()
    );
    assert_eq!(content, content.trim());
    assert!(content.contains(". ") && content.contains("```") && content.contains('\n'));
    assert!(content.chars().any(|c| c.is_ascii_digit()));
    assert!(!content.contains("word1") && !content.contains("hello there world"));
    let words = content.split_whitespace().count();
    assert_eq!(v["usage"]["completion_tokens"], words);
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["total_tokens"], words + 5);
    let (prompt, completion) = zero_details();
    assert_eq!(v["usage"]["prompt_tokens_details"], prompt);
    assert_eq!(v["usage"]["completion_tokens_details"], completion);

    // The same answer streamed in forty content chunks; the details ride in the usage chunk.
    let body = chat_body(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let header = [("x-mock", "prose=1200,usage_details,chunks=40")];
    let chunks = mock
        .post("/v1/chat/completions", &header, body)
        .await
        .chunks();
    assert_eq!(chunks.len(), 43, "role, 40 content, finish, usage");
    assert_eq!(streamed_content(&chunks), content);
    let usage = &chunks[42]["usage"];
    assert_eq!(usage["completion_tokens"], words);
    assert_eq!(usage["prompt_tokens_details"], prompt);
    assert_eq!(usage["completion_tokens_details"], completion);

    // Longer than the built-in text: it repeats, still cut at a word.
    let v = mock
        .post(
            "/v1/chat/completions",
            &[("x-mock", "prose=5000")],
            chat_body(json!({})),
        )
        .await
        .json();
    let long = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!((4900..=5000).contains(&long.len()), "{} bytes", long.len());
    assert!(long.starts_with(&content[..200]));

    // Without the directive, usage keeps its plain three fields.
    let v = mock
        .post(
            "/v1/chat/completions",
            &[("x-mock", "prose=1200")],
            chat_body(json!({})),
        )
        .await
        .json();
    assert_eq!(v["choices"][0]["message"]["content"], content);
    let fields = v["usage"].as_object().unwrap();
    assert_eq!(fields.len(), 3, "{fields:?}");

    // Text completions take both directives too.
    let v = mock
        .post(
            "/v1/completions",
            &[("x-mock", "prose=600,usage_details")],
            json!({"prompt": "one two"}),
        )
        .await
        .json();
    let text = v["choices"][0]["text"].as_str().unwrap();
    assert!((500..=600).contains(&text.len()), "{} bytes", text.len());
    assert_eq!(v["usage"]["completion_tokens_details"], completion);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_after_three_chunks_breaks_the_body() {
    let mock = Mock::start().await;
    let body = chat_body(json!({"stream": true}));
    let answer = mock
        .post(
            "/v1/chat/completions",
            &[("x-mock", "disconnect_after=3,reply_words=10")],
            body,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body_error, "the body ends in an error");
    let text = answer.text();
    assert!(!text.contains("[DONE]"));
    let chunks = answer.chunks();
    assert_eq!(chunks.len(), 4, "role chunk plus three content chunks");
    assert_eq!(streamed_content(&chunks), "word1 word2 word3");

    // With zero the connection closes before any response.
    let req = Request::post(format!("http://{}/v1/chat/completions", mock.addr))
        .header("x-mock", "disconnect_after=0")
        .body(Full::new(Bytes::from(chat_body(json!({})).to_string())))
        .unwrap();
    assert!(mock.client.request(req).await.is_err());
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_delay_spaces_frames_over_time() {
    let mock = Mock::start().await;
    let started = Instant::now();
    let body = chat_body(json!({"stream": true}));
    let answer = mock
        .post(
            "/v1/chat/completions",
            &[("x-mock", "chunks=5,chunk_delay_ms=40")],
            body,
        )
        .await;
    let chunks = answer.chunks();
    assert_eq!(chunks.len(), 7);
    // Role and five content chunks arrive as separate frames; the finish
    // chunk and [DONE] follow together, as a real server sends them.
    assert_eq!(answer.frames.len(), 7);
    let spread = answer.frames.last().unwrap().0 - answer.frames[0].0;
    assert!(
        spread >= Duration::from_millis(4 * 40),
        "frames spread over {spread:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(6 * 40));
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_and_hang() {
    let mock = Mock::start().await;
    let started = Instant::now();
    let answer = mock
        .post(
            "/v1/chat/completions",
            &[("x-mock", "delay_ms=150")],
            chat_body(json!({})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));

    let hung = mock.post(
        "/v1/chat/completions",
        &[("x-mock", "hang")],
        chat_body(json!({})),
    );
    assert!(tokio::time::timeout(Duration::from_millis(300), hung)
        .await
        .is_err());
    // Shutdown still completes although a hung request may be in flight.
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_reports_method_path_headers_and_body() {
    let mock = Mock::start().await;
    let headers = [("x-custom", "abc"), ("authorization", "Bearer sk-test")];
    let answer = mock
        .request(
            Method::PUT,
            "/v1/_echo/deep/path?a=1&b=2",
            &headers,
            "raw body",
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let v = answer.json();
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["path"], "/v1/_echo/deep/path");
    assert_eq!(v["query"], "a=1&b=2");
    assert_eq!(v["headers"]["x-custom"], "abc");
    assert_eq!(v["headers"]["authorization"], "Bearer sk-test");
    assert!(v["headers"]["host"].is_string());
    assert_eq!(v["body"], "raw body");

    let v = mock.request(Method::GET, "/v1/_echo", &[], "").await.json();
    assert_eq!(v["method"], "GET");
    assert!(v["query"].is_null());
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_not_found_and_malformed_json() {
    let mock = Mock::start().await;
    let v = mock
        .request(Method::GET, "/v1/models", &[], "")
        .await
        .json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "mock-model");
    assert_eq!(v["data"][0]["owned_by"], "mock");

    let answer = mock.request(Method::GET, "/v1/nothing", &[], "").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let v = answer.json();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["code"], "not_found");
    assert!(v["error"]["param"].is_null());

    for path in [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
    ] {
        let answer = mock
            .request(
                Method::POST,
                path,
                &[("content-type", "application/json")],
                "{not json",
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(answer.json()["error"]["type"], "invalid_request_error");
    }
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_streams() {
    let mock = Mock::start_with(true).await;
    let v = mock
        .post("/v1/chat/completions", &[], chat_body(json!({})))
        .await
        .json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "mock reply: hello there world"
    );
    let answer = mock
        .post(
            "/v1/chat/completions",
            &[],
            chat_body(json!({"stream": true})),
        )
        .await;
    assert_eq!(
        streamed_content(&answer.chunks()),
        "mock reply: hello there world"
    );
    let body = chat_body(json!({"stream": true}));
    let answer = mock
        .post(
            "/v1/chat/completions",
            &[("x-mock", "disconnect_after=2")],
            body,
        )
        .await;
    assert!(answer.body_error);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_keep_alive_requests() {
    let mock = Mock::start().await;
    let mock = std::sync::Arc::new(mock);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let mock = mock.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    let answer = mock
                        .post("/v1/chat/completions", &[], chat_body(json!({})))
                        .await;
                    assert_eq!(answer.status, StatusCode::OK);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    std::sync::Arc::into_inner(mock).unwrap().stop().await;
}
