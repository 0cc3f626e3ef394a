//! What happens to captured text before it reaches the store: PII redaction of
//! every string in a JSON body (request messages, outputs, tool-call arguments,
//! metadata), and, when raw payloads are kept, their encryption.
//!
//! Redaction fails closed: if it cannot run on a record, the record's text is
//! not written (the row says `redaction: failed`) and the failure is counted.
//! Nothing unredacted is written anywhere except, sealed, in `raw_payloads`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::Value;

use super::assemble::Doc;
use super::redact::{Action, CustomRule, KindActions, RedactError, Redactor, RedactorConfig};
use super::vault::Vault;
use crate::config::{PrivacyConfig, RedactAction};

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

    /// Redacts a parsed body in place; a JSON value that changed is no longer
    /// the body as received.
    pub fn doc(&self, doc: &mut Doc) -> Result<u32, RedactionFailed> {
        match doc {
            Doc::Json { value, received } => {
                let n = self.value(value)?;
                if n > 0 {
                    *received = false;
                }
                Ok(n)
            }
            Doc::Text(t) => {
                let (out, n) = self.text(t)?;
                if n > 0 {
                    *t = out;
                }
                Ok(n)
            }
        }
    }

    /// Redacts every string inside a JSON value in place.
    pub fn value(&self, v: &mut Value) -> Result<u32, RedactionFailed> {
        let Some(r) = &self.redactor else {
            return Ok(0);
        };
        catch_unwind(AssertUnwindSafe(|| redact_value(r, v))).map_err(|_| RedactionFailed)
    }

    /// Redacts one string.
    pub fn text(&self, text: &str) -> Result<(String, u32), RedactionFailed> {
        let Some(r) = &self.redactor else {
            return Ok((text.to_string(), 0));
        };
        catch_unwind(AssertUnwindSafe(|| {
            let out = r.redact(text);
            let n = out.total();
            (out.text.into_owned(), n)
        }))
        .map_err(|_| RedactionFailed)
    }
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

    /// A body redacted the way the writer does it: parsed once, then redacted.
    fn body(p: &Privacy, text: &str) -> (String, u32) {
        let mut doc = Doc::parse(text.as_bytes());
        let n = p.doc(&mut doc).unwrap();
        (doc.into_text(text.as_bytes()), n)
    }

    fn privacy() -> Privacy {
        let cfg = PrivacyConfig {
            redact: true,
            actions: BTreeMap::from([("ip_address".to_string(), RedactAction::Mask)]),
            rules: vec![("ORDER".into(), "ORD-[0-9]{6}".into(), RedactAction::Replace)],
            raw_key: None,
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
    fn off_changes_nothing() {
        let p = Privacy::off();
        assert_eq!(body(&p, "bob@example.com").0, "bob@example.com");
        assert!(!p.redacts());
    }
}
