//! What an RST's payload says. RFC 9293 §3.5.3 lets a reset carry data
//! "that encodes and explains the cause of the RST"; the IETF draft
//! draft-boucadair-tcpm-rst-diagnostic-payload gives it a format: a CBOR
//! sequence of the magic number 12345 and a map {1: reason code, 2: private
//! enterprise number, 3: reason description}. Anything else is shown as text
//! when printable, else as hex.

use serde::{Deserialize, Serialize};

/// The first bytes of an RST's payload (a sample keeps up to 64).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// Payload length on the wire.
    pub len: u16,
    /// The bytes kept, as hex.
    pub hex: String,
    /// The bytes kept, when they are printable UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The draft's diagnostic payload, when the bytes are one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<Diagnostic>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pen: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The draft's magic number, the first item of the sequence.
const MAGIC: u64 = 12345;

impl Payload {
    /// `len`: payload bytes on the wire; `bytes`: those kept (may be fewer).
    #[must_use]
    pub fn new(len: u16, bytes: &[u8]) -> Self {
        use std::fmt::Write as _;
        let hex = bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        let text = std::str::from_utf8(bytes)
            .ok()
            .filter(|t| !t.is_empty() && t.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'))
            .map(str::to_string);
        Self { len, hex, text, diagnostic: diagnostic(bytes) }
    }

    /// One line for people: the diagnostic, else the text, else the hex.
    #[must_use]
    pub fn summary(&self) -> String {
        if let Some(d) = &self.diagnostic {
            let mut parts = Vec::new();
            if let Some(c) = d.reason_code {
                parts.push(format!("code {c}"));
            }
            if let Some(p) = d.pen {
                parts.push(format!("pen {p}"));
            }
            if let Some(t) = &d.description {
                parts.push(format!("{t:?}"));
            }
            return format!("diagnostic {}", parts.join(" "));
        }
        self.text.as_ref().map_or_else(|| format!("0x{}", self.hex), |t| format!("{t:?}"))
    }
}

/// Decodes the draft's CBOR sequence, or None when the bytes are not one.
fn diagnostic(mut bytes: &[u8]) -> Option<Diagnostic> {
    use ciborium::Value;
    let magic: Value = ciborium::de::from_reader(&mut bytes).ok()?;
    if magic.as_integer().and_then(|i| u64::try_from(i).ok()) != Some(MAGIC) {
        return None;
    }
    let Value::Map(map) = ciborium::de::from_reader::<Value, _>(&mut bytes).ok()? else { return None };
    let mut d = Diagnostic { reason_code: None, pen: None, description: None };
    for (k, v) in map {
        let uint = || v.as_integer().and_then(|i| u64::try_from(i).ok());
        match k.as_integer().and_then(|i| u64::try_from(i).ok()) {
            Some(1) => d.reason_code = uint(),
            Some(2) => d.pen = uint(),
            Some(3) => d.description = v.as_text().map(str::to_string),
            _ => {}
        }
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The draft's example shape: 12345, {1: 2, 2: 32473, 3: "..."} as a CBOR sequence.
    fn draft_bytes(text: &str) -> Vec<u8> {
        let mut out = vec![0x19, 0x30, 0x39, 0xa3, 0x01, 0x02, 0x02, 0x19, 0x7e, 0xd9, 0x03];
        out.push(0x60 + u8::try_from(text.len()).unwrap());
        out.extend_from_slice(text.as_bytes());
        out
    }

    #[test]
    fn decodes_the_drafts_diagnostic_payload() {
        let b = draft_bytes("idle timeout");
        let p = Payload::new(u16::try_from(b.len()).unwrap(), &b);
        let d = p.diagnostic.clone().unwrap();
        assert_eq!(d.reason_code, Some(2));
        assert_eq!(d.pen, Some(32473));
        assert_eq!(d.description.as_deref(), Some("idle timeout"));
        assert_eq!(p.summary(), "diagnostic code 2 pen 32473 \"idle timeout\"");
    }

    #[test]
    fn plain_text_and_binary_payloads() {
        let p = Payload::new(14, b"go away, scan");
        assert!(p.diagnostic.is_none());
        assert_eq!(p.summary(), "\"go away, scan\"");
        let p = Payload::new(3, &[0x00, 0xff, 0x10]);
        assert_eq!(p.text, None);
        assert_eq!(p.summary(), "0x00ff10");
    }

    #[test]
    fn a_cut_or_foreign_cbor_sequence_is_not_a_diagnostic() {
        let b = draft_bytes("idle timeout");
        assert!(diagnostic(&b[..5]).is_none());
        assert!(diagnostic(&[0x19, 0x30, 0x3a, 0xa0]).is_none(), "wrong magic");
        assert!(diagnostic(&[]).is_none());
    }
}
