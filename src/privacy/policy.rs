//! What happens to captured text before it reaches the store: PII redaction of
//! every string in a JSON body (request messages, outputs, tool-call arguments,
//! metadata), and, when raw payloads are kept, their encryption.
//!
//! Redaction fails closed: if it cannot run on a record, the record's text is
//! not written (the row says `redaction: failed`) and the failure is counted.
//! Nothing unredacted is written anywhere except, sealed, in `raw_payloads`.
//!
//! The policy works on text and JSON values. It knows nothing of capture's
//! records: capture calls it, and walks its own documents (`Doc::redact`).

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::Value;

use super::redact::{Action, CustomRule, KindActions, RedactError, Redactor, RedactorConfig};
use crate::config::{PrivacyConfig, RedactAction};
use crate::crypto::vault::Vault;
use crate::json;

/// The redactor and vault the capture writer and feedback path share.
pub struct Privacy {
    redactor: Option<Redactor>,
    pub vault: Option<Vault>,
}

/// Redaction could not run (a bug, never bad input): the text must not be stored.
#[derive(Debug, thiserror::Error)]
#[error("redaction failed")]
pub struct RedactionFailed;

fn action(a: RedactAction) -> Action {
    match a {
        RedactAction::Replace => Action::Replace,
        RedactAction::Mask => Action::Mask,
        RedactAction::Hash => Action::Hash,
    }
}

impl Privacy {
    /// Builds the redactor from config. `hash_key` keys the `hash` action.
    pub fn new(config: &PrivacyConfig, hash_key: &[u8]) -> Result<Privacy, RedactError> {
        let redactor = if config.redact {
            let mut actions = KindActions::default();
            for (kind, a) in &config.actions {
                let slot = match kind.as_str() {
                    "email" => &mut actions.email,
                    "phone" => &mut actions.phone,
                    "credit_card" => &mut actions.credit_card,
                    "iban" => &mut actions.iban,
                    "ssn" => &mut actions.ssn,
                    "ip_address" => &mut actions.ip_address,
                    "mac_address" => &mut actions.mac_address,
                    _ => &mut actions.secret,
                };
                *slot = action(*a);
            }
            let custom = config
                .rules
                .iter()
                .map(|(name, pattern, a)| CustomRule {
                    name: name.clone(),
                    pattern: pattern.clone(),
                    action: action(*a),
                })
                .collect();
            Some(Redactor::new(&RedactorConfig {
                actions,
                custom,
                hash_key: hash_key.to_vec(),
            })?)
        } else {
            None
        };
        let vault = config.raw_key.as_ref().map(|(key, id)| Vault::new(key, id));
        Ok(Privacy { redactor, vault })
    }

    /// No redaction, no vault: for tests of other parts.
    pub fn off() -> Privacy {
        Privacy {
            redactor: None,
            vault: None,
        }
    }

    pub fn redacts(&self) -> bool {
        self.redactor.is_some()
    }

    /// Redacts in place a body the caller has checked to be JSON (as
    /// `serde_json::Value` would parse it): every string value, while keys and
    /// the rest of its bytes stay as they are.
    pub fn json_in_place(&self, text: &mut String) -> Result<u32, RedactionFailed> {
        self.in_place(text, true)
    }

    /// Redacts in place a body that is not JSON, as one text.
    pub fn text_in_place(&self, text: &mut String) -> Result<u32, RedactionFailed> {
        self.in_place(text, false)
    }

    fn in_place(&self, text: &mut String, json: bool) -> Result<u32, RedactionFailed> {
        let Some(r) = &self.redactor else {
            return Ok(0);
        };
        let (out, n) = if json {
            // Checked JSON by the caller.
            guarded(|| redact_json(r, text))?.ok_or(RedactionFailed)?
        } else {
            guarded(|| redact_text(r, text))?
        };
        if let Some(out) = out {
            *text = out;
        }
        Ok(n)
    }

    /// Redacts a body as received (a JSON body string by string, anything
    /// else as text) and returns the text to store. The request path's own
    /// parse is no substitute for the check here: it skips the fields it does
    /// not read without checking their strings as `Value` would (a lone
    /// surrogate passes it), and such a body must be redacted as text.
    ///
    /// The body is taken by value: text that needs no change is returned in
    /// the body's own buffer, without a copy.
    pub fn body(&self, bytes: Vec<u8>) -> Result<(String, u32), RedactionFailed> {
        let (text, utf8) = match String::from_utf8(bytes) {
            Ok(text) => (text, true),
            Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), false),
        };
        let Some(r) = &self.redactor else {
            return Ok((text, 0));
        };
        let (out, n) = if utf8 && json::is_json_str(&text) {
            guarded(|| redact_json(r, &text))?.ok_or(RedactionFailed)?
        } else {
            guarded(|| redact_text(r, &text))?
        };
        Ok((out.unwrap_or(text), n))
    }

    /// Redacts every string inside a JSON value in place.
    pub fn value(&self, v: &mut Value) -> Result<u32, RedactionFailed> {
        let Some(r) = &self.redactor else {
            return Ok(0);
        };
        guarded(|| redact_value(r, v))
    }

    /// Redacts one string.
    pub fn text(&self, text: &str) -> Result<(String, u32), RedactionFailed> {
        let Some(r) = &self.redactor else {
            return Ok((text.to_string(), 0));
        };
        guarded(|| {
            let (out, n) = redact_text(r, text);
            (out.unwrap_or_else(|| text.to_string()), n)
        })
    }
}

/// Runs redaction so that a bug in it (a panic) fails the record closed
/// rather than the writer thread.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, RedactionFailed> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| RedactionFailed)
}

/// The redacted text, if anything was found, and the count.
fn redact_text(r: &Redactor, text: &str) -> (Option<String>, u32) {
    let out = r.redact(text);
    let n = out.total();
    (out.changed().then(|| out.text.into_owned()), n)
}

/// Redacts every string value of the JSON document `text` without building
/// its tree: keys and everything between strings keep their bytes, and a
/// changed string is re-encoded as serde_json writes strings. The text is
/// `None` when nothing was found; `None` overall means `text` was not JSON.
fn redact_json(r: &Redactor, text: &str) -> Option<(Option<String>, u32)> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut n = 0;
    // Without escapes every string's content is its bytes in the document, so
    // one search of the whole document can rule out secrets in all of them.
    let secrets = text.contains('\\') || r.may_hold_secrets(text);
    for (token, content) in json::string_values(text) {
        let content = content?;
        let found = r.redact_with(&content, secrets);
        if !found.changed() {
            continue;
        }
        n += found.total();
        let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
        out.push_str(&text[copied..token.start]);
        // A `str` always serializes.
        out.push_str(&serde_json::to_string(&*found.text).unwrap_or_default());
        copied = token.end;
    }
    if let Some(out) = out.as_mut() {
        out.push_str(&text[copied..]);
    }
    Some((out, n))
}

fn redact_value(r: &Redactor, v: &mut Value) -> u32 {
    match v {
        Value::String(s) => {
            let out = r.redact(s);
            let n = out.total();
            if n > 0 {
                *s = out.text.into_owned();
            }
            n
        }
        Value::Array(items) => items.iter_mut().map(|i| redact_value(r, i)).sum(),
        Value::Object(map) => map.values_mut().map(|i| redact_value(r, i)).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A body redacted both ways the writer does it, which must agree: checked
    /// once and then redacted in place (a response), and as received (a request).
    fn body(p: &Privacy, text: &str) -> (String, u32) {
        let mut out = text.to_string();
        let n = if json::is_json(text.as_bytes()) {
            p.json_in_place(&mut out)
        } else {
            p.text_in_place(&mut out)
        }
        .unwrap();
        assert_eq!(p.body(text.as_bytes().to_vec()).unwrap(), (out.clone(), n));
        (out, n)
    }

    fn privacy() -> Privacy {
        let cfg = PrivacyConfig {
            redact: true,
            actions: BTreeMap::from([("ip_address".to_string(), RedactAction::Mask)]),
            rules: vec![("ORDER".into(), "ORD-[0-9]{6}".into(), RedactAction::Replace)],
            raw_key: None,
            store_key: None,
        };
        Privacy::new(&cfg, b"k").unwrap()
    }

    #[test]
    fn redacts_strings_inside_json_including_tool_arguments() {
        let p = privacy();
        let text = r#"{"messages":[{"role":"user","content":"mail bob@example.com about ORD-123456"}],
            "tools":[],"x":{"arguments":"{\"email\":\"carol@example.org\"}"}}"#;
        let (out, n) = body(&p, text);
        assert_eq!(n, 3, "{out}");
        assert!(
            !out.contains("bob@example.com")
                && !out.contains("carol@example.org")
                && !out.contains("ORD-123456")
        );
        assert!(out.contains("<EMAIL>") && out.contains("<ORDER>"));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["messages"][0]["role"], "user");
    }

    #[test]
    fn clean_json_keeps_its_bytes_and_plain_text_works() {
        let p = privacy();
        let text = "{\"a\":  \"nothing here\"}";
        assert_eq!(body(&p, text), (text.to_string(), 0));
        let (out, n) = p.text("call me at +44 20 7946 0958").unwrap();
        assert_eq!(n, 1);
        assert!(out.contains("<PHONE>"), "{out}");
    }

    #[test]
    fn secrets_are_found_in_documents_with_and_without_escapes() {
        let p = privacy();
        let token = "abcdefghijklmnopqrstuvwxyz0123456789";
        // The whole-document search sees this one as it is stored.
        let plain = format!(r#"{{"messages":[{{"role":"user","content":"use Bearer {token}"}}]}}"#);
        // Only the decoded string reads "Bearer <token>": the document has
        // `\u0020` where the space is, so it must be searched string by string.
        let escaped =
            format!(r#"{{"messages":[{{"role":"user","content":"use Bearer\u0020{token}"}}]}}"#);
        for text in [plain, escaped] {
            let (out, n) = p.body(text.as_bytes().to_vec()).unwrap();
            assert_eq!(n, 1, "{text} -> {out}");
            assert!(!out.contains(token), "{out}");
        }
    }

    #[test]
    fn a_body_the_request_path_accepts_but_value_refuses_is_redacted_as_text() {
        // A lone surrogate (a string cut inside an emoji) passes the request
        // path's parse, which skips unread fields (its own tests show it), but
        // is not JSON to `Value`.
        let p = privacy();
        let text =
            r#"{"model":"m","messages":[{"role":"user","content":"mail bob@example.com \ud83d"}]}"#;
        assert!(!json::is_json(text.as_bytes()));
        let (out, n) = p.body(text.as_bytes().to_vec()).unwrap();
        assert_eq!(n, 1, "{out}");
        assert!(
            !out.contains("bob@example.com") && out.contains("<EMAIL>"),
            "{out}"
        );
    }

    #[test]
    fn off_changes_nothing() {
        let p = Privacy::off();
        assert_eq!(body(&p, "bob@example.com").0, "bob@example.com");
        assert!(!p.redacts());
    }

    /// Redacting a JSON body string by string in its bytes gives the same
    /// JSON, and the same count, as redacting every string of its parsed
    /// tree: checked on every line of the labelled PII corpus, placed in
    /// request and response shapes (with escapes, tool arguments, keys that
    /// look like PII, and whitespace).
    #[test]
    fn bytes_and_tree_redaction_agree_on_the_corpus() {
        let p = privacy();
        let r = p.redactor.as_ref().unwrap();
        let mut lines = 0;
        let corpora = [
            super::super::redact::TEST_CORPUS,
            super::super::redact::HELDOUT_CORPUS,
        ];
        for line in corpora.iter().flat_map(|c| c.lines()) {
            let v: Value = serde_json::from_str(line).unwrap();
            let text = v["text"].as_str().unwrap();
            let bodies = [
                serde_json::json!({"model": "m", "messages": [{"role": "user", "content": text}]})
                    .to_string(),
                serde_json::to_string_pretty(&serde_json::json!({
                    "choices": [{"message": {"content": text, "tool_calls": [
                        {"function": {"arguments": serde_json::json!({"q": text}).to_string()}}
                    ]}}],
                    text: [text, 1, null],
                }))
                .unwrap(),
                serde_json::to_string(text).unwrap(),
            ];
            for body in bodies {
                let mut tree: Value = serde_json::from_str(&body).unwrap();
                let n_tree = redact_value(r, &mut tree);
                let (out, n) = p.body(body.as_bytes().to_vec()).unwrap();
                let from_bytes: Value = serde_json::from_str(&out).unwrap();
                assert_eq!(from_bytes, tree, "{body}");
                assert_eq!(n, n_tree, "{body}");
                if n == 0 {
                    assert_eq!(out, body, "clean bodies keep their bytes");
                }
            }
            lines += 1;
        }
        assert!(lines > 1000, "both corpora were read");
    }
}
