//! `POST /v1/embeddings`: deterministic unit vectors derived from each input's
//! text, as floats or base64.

use std::borrow::Cow;

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::body::{error, json_response, MockBody};
use super::directives::Directives;
use super::text::words;
use super::DEFAULT_MODEL;

#[derive(Deserialize)]
pub(super) struct EmbeddingReq<'a> {
    #[serde(borrow)]
    pub(super) model: Option<Cow<'a, str>>,
    input: Option<Value>,
    dimensions: Option<u64>,
    #[serde(borrow)]
    encoding_format: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

pub(super) fn embeddings(req: &EmbeddingReq<'_>, d: &Directives<'_>) -> Response<MockBody> {
    let model = req.model.as_deref().unwrap_or(DEFAULT_MODEL);
    // A flat number array is one tokenized input; otherwise each array element is one input.
    let inputs: Vec<&Value> = match &req.input {
        Some(Value::Array(list)) if !list.iter().all(Value::is_number) => list.iter().collect(),
        Some(input) if input.as_array().is_none_or(|l| !l.is_empty()) => vec![input],
        _ => Vec::new(),
    };
    if inputs.is_empty() {
        let message = "'input' must be a non-empty string or array";
        return error(StatusCode::BAD_REQUEST, message, None);
    }
    let dims = req.dimensions.unwrap_or(8).clamp(1, 8192) as usize;
    let base64 = req.encoding_format.as_deref() == Some("base64");
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            // Text is hashed as is, token arrays by their JSON form.
            let text = input
                .as_str()
                .map_or_else(|| Cow::Owned(input.to_string()), Cow::Borrowed);
            tokens += input.as_array().map_or_else(|| words(&text), Vec::len);
            let vector = embed(&text, dims);
            let embedding = if base64 {
                let raw: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                Vector::Base64(base64_encode(&raw))
            } else {
                Vector::Floats(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens = tokens.max(1);
    let mut body = json!({"object": "list", "data": data, "model": model});
    if !d.no_usage {
        body["usage"] = json!({"prompt_tokens": tokens, "total_tokens": tokens});
    }
    json_response(StatusCode::OK, &body)
}

/// Deterministic unit vector: FNV-1a of the text seeds a splitmix64 sequence.
fn embed(text: &str, dims: usize) -> Vec<f32> {
    let mut seed = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
