//! `--web-config FILE`: TLS and basic auth for the HTTP endpoint, in the
//! format of the Prometheus exporter toolkit's web configuration (as
//! node_exporter reads it), so a Prometheus scrape config with `scheme:
//! https` and `basic_auth` works unchanged:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # paths relative to this file's folder
//!   key_file: server.key
//!   client_ca_file: clients.crt    # optional
//!   client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (default), VerifyClientCertIfGiven
//!   min_version: TLS12             # or TLS13
//! basic_auth_users:
//!   prometheus: $2y$10$...         # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':\n')
//! ```

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use tokio_rustls::rustls::{self, RootCertStore, server::WebPkiClientVerifier};
use yaml_rust2::{Yaml, YamlLoader};

/// The endpoint's protection; the default is none (plain HTTP, no auth).
#[derive(Default)]
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// user -> bcrypt hash; empty: no authentication.
    users: BTreeMap<String, String>,
    /// `user:password` pairs already verified (bcrypt is slow by design; the exporter toolkit caches too).
    verified: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the hashes or verified passwords.
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys())
            .finish_non_exhaustive()
    }
}

const TOP_KEYS: [&str; 3] = ["tls_server_config", "basic_auth_users", "http_server_config"];
const TLS_KEYS: [&str; 5] = ["cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version"];

fn str_of<'a>(y: &'a Yaml, key: &str, within: &str) -> Result<Option<&'a str>, String> {
    match &y[key] {
        Yaml::BadValue | Yaml::Null => Ok(None),
        Yaml::String(s) => Ok(Some(s)),
        other => Err(format!("{within}.{key} must be a string, not {other:?}")),
    }
}

fn keys_in(y: &Yaml, allowed: &[&str], within: &str) -> Result<(), String> {
    let Yaml::Hash(h) = y else { return Err(format!("{within} must be a mapping")) };
    for k in h.keys() {
        let k = k.as_str().unwrap_or_default();
        if !allowed.contains(&k) {
            return Err(format!("unknown key {within}{k:?} (known: {})", allowed.join(", ")));
        }
    }
    Ok(())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

fn tls(y: &Yaml, dir: &Path) -> Result<rustls::ServerConfig, String> {
    const W: &str = "tls_server_config";
    keys_in(y, &TLS_KEYS, "tls_server_config.")?;
    let file = |key| -> Result<Option<PathBuf>, String> { Ok(str_of(y, key, W)?.map(|f| dir.join(f))) };
    let cert = file("cert_file")?.ok_or("tls_server_config.cert_file is missing")?;
    let key = file("key_file")?.ok_or("tls_server_config.key_file is missing")?;
    let chain = certs(&cert)?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| format!("{}: {e}", key.display()))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match str_of(y, "min_version", W)? {
        None | Some("TLS12") => rustls::ALL_VERSIONS,
        Some("TLS13") => &[&rustls::version::TLS13],
        Some(v) => return Err(format!("tls_server_config.min_version {v:?}: use TLS12 or TLS13")),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let auth = str_of(y, "client_auth_type", W)?.unwrap_or("NoClientCert");
    let builder = match auth {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let ca = file("client_ca_file")?
                .ok_or(format!("client_auth_type {auth} needs tls_server_config.client_ca_file"))?;
            let mut roots = RootCertStore::empty();
            for c in certs(&ca)? {
                roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if auth == "VerifyClientCertIfGiven" { v.allow_unauthenticated() } else { v };
            builder.with_client_cert_verifier(v.build().map_err(|e| e.to_string())?)
        }
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type {other:?}: use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ));
        }
    };
    builder.with_single_cert(chain, key).map_err(|e| format!("{}: {e}", cert.display()))
}

impl WebConfig {
    /// Reads and checks `path`: certificates and keys loaded, every hash a bcrypt one.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
        let docs = YamlLoader::load_from_str(&text).map_err(|e| format!("not YAML: {e}"))?;
        let Some(y) = docs.first() else { return Ok(Self::default()) };
        if matches!(y, Yaml::Null) {
            return Ok(Self::default());
        }
        keys_in(y, &TOP_KEYS, "")?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = match &y["tls_server_config"] {
            Yaml::BadValue | Yaml::Null => None,
            t => Some(Arc::new(tls(t, dir)?)),
        };
        let mut users = BTreeMap::new();
        match &y["basic_auth_users"] {
            Yaml::BadValue | Yaml::Null => {}
            Yaml::Hash(h) => {
                for (u, hash) in h {
                    let (Some(u), Some(hash)) = (u.as_str(), hash.as_str()) else {
                        return Err("basic_auth_users: each entry is user: bcrypt-hash".into());
                    };
                    hash.parse::<bcrypt::HashParts>()
                        .map_err(|e| format!("basic_auth_users.{u}: not a bcrypt hash ({e})"))?;
                    users.insert(u.to_string(), hash.to_string());
                }
            }
            _ => return Err("basic_auth_users must be a mapping of user: bcrypt-hash".into()),
        }
        Ok(Self { tls, users, verified: Mutex::new(HashSet::new()) })
    }

    /// Whether requests must carry a user and password.
    #[must_use]
    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether an `Authorization` header value names a user and the password its hash was made from.
    #[must_use]
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some(encoded) = authorization.and_then(|a| a.strip_prefix("Basic ")) else { return false };
        let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded.trim()).ok();
        let Some(pair) = decoded.and_then(|b| String::from_utf8(b).ok()) else { return false };
        let Some((user, password)) = pair.split_once(':') else { return false };
        let Some(hash) = self.users.get(user) else { return false };
        let mut verified = self.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.contains(&pair) {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok && verified.len() < 64 {
            verified.insert(pair.clone());
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rstw-webcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn basic_auth_checks_bcrypt_hashes_and_caches() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let c = WebConfig::load(&write("auth.yml", &format!("basic_auth_users:\n  prom: {hash}\n"))).unwrap();
        assert!(c.requires_auth() && c.tls.is_none());
        // "prom:s3cret", "prom:wrong"
        assert!(c.allows(Some("Basic cHJvbTpzM2NyZXQ=")));
        assert!(c.allows(Some("Basic cHJvbTpzM2NyZXQ=")), "cached");
        assert!(!c.allows(Some("Basic cHJvbTp3cm9uZw==")));
        assert!(!c.allows(None));
        assert!(!c.allows(Some("Bearer x")));
        assert!(WebConfig::default().allows(None));
    }

    #[test]
    fn a_bad_file_says_what_is_wrong() {
        let err = |text: &str| WebConfig::load(&write("bad.yml", text)).unwrap_err();
        assert!(err("tls_server_config:\n  cert_file: x.crt\n").contains("key_file is missing"));
        assert!(err("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n").contains("nope.crt"));
        assert!(err("basic_auth_users:\n  prom: plaintext\n").contains("not a bcrypt hash"));
        assert!(err("tls_config:\n  cert_file: a\n").contains("unknown key \"tls_config\""));
        assert!(err("[1, 2").contains("not YAML"));
        assert!(WebConfig::load(Path::new("/nonexistent/web.yml")).unwrap_err().contains("cannot read"));
        assert!(WebConfig::load(&write("empty.yml", "")).unwrap().tls.is_none());
    }
}
