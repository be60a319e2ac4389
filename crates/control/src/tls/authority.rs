//! A local certificate authority and the control plane's server certificate, for
//! `rampart up` and `rampart tls init`: one CA the edges, the generator and the CLI trust
//! (`--control-ca`, `--ca`), and a server certificate it signs for `localhost`, `127.0.0.1`
//! and `::1` (plus any names an operator adds).

use std::path::{Path, PathBuf};

use rampart_host::clock::now_ms;
use rampart_host::file;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use super::TlsError;

/// The names every server certificate carries: the control plane on this host.
pub const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// How long the local CA is valid.
pub const CA_VALIDITY_DAYS: i64 = 3_650;

/// How long a server certificate is valid (renew by issuing a new one: the control plane
/// reloads it without restart).
pub const SERVER_VALIDITY_DAYS: i64 = 397;

/// Random bytes in the CA's name (hex-encoded).
const CA_NAME_SUFFIX_BYTES: usize = 4;

/// Certificates start this long before now, for clocks a little behind.
const BACKDATE_MINUTES: i64 = 60;

/// The files `rampart tls init` writes, by name in its directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA's private key (mode 0600).
pub const CA_KEY_FILE: &str = "ca.key";
/// The server certificate (`--tls-cert`).
pub const SERVER_CERT_FILE: &str = "server.pem";
/// The server's private key (`--tls-key`, mode 0600).
pub const SERVER_KEY_FILE: &str = "server.key";

/// A CA: its certificate and the key that signs with it.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

/// A certificate issued by an [`Authority`], with its fresh key.
#[derive(Clone)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM, PKCS#8).
    pub key_pem: String,
    /// The certificate (DER), for fingerprints.
    pub cert_der: Vec<u8>,
}

/// Where `init` wrote a CA and a server pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// [`CA_CERT_FILE`].
    pub ca_cert: PathBuf,
    /// [`CA_KEY_FILE`].
    pub ca_key: PathBuf,
    /// [`SERVER_CERT_FILE`].
    pub server_cert: PathBuf,
    /// [`SERVER_KEY_FILE`].
    pub server_key: PathBuf,
}

// === impl Authority ===

impl Authority {
    /// A new CA (ECDSA P-256) named "rampart local CA" and a random suffix, so that two
    /// stacks' CAs are told apart (by people, and by a verifier: a certificate of the other
    /// one is from an unknown issuer).
    pub fn generate() -> Result<Self, TlsError> {
        let key = KeyPair::generate().map_err(generate)?;
        let suffix = rampart_host::secret::random_hex(CA_NAME_SUFFIX_BYTES).map_err(generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("rampart local CA {suffix}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        (params.not_before, params.not_after) = validity(CA_VALIDITY_DAYS)?;
        let cert = params.self_signed(&key).map_err(generate)?;
        let key_pem = key.serialize_pem();
        Ok(Authority {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
            key_pem,
        })
    }

    /// The CA certificate (PEM): what clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for [`LOCAL_NAMES`] and `extra_names` (DNS names or IP
    /// addresses), with a key of its own.
    pub fn issue_server(&self, extra_names: &[String]) -> Result<Issued, TlsError> {
        let mut names: Vec<String> = LOCAL_NAMES.iter().map(|n| (*n).to_owned()).collect();
        names.extend(extra_names.iter().cloned());
        let mut params = CertificateParams::new(names).map_err(generate)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "rampart control plane");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = validity(SERVER_VALIDITY_DAYS)?;
        let key = KeyPair::generate().map_err(generate)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(generate)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        })
    }
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

// === impl TlsFiles ===

impl TlsFiles {
    /// The four files' paths in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        TlsFiles {
            ca_cert: dir.join(CA_CERT_FILE),
            ca_key: dir.join(CA_KEY_FILE),
            server_cert: dir.join(SERVER_CERT_FILE),
            server_key: dir.join(SERVER_KEY_FILE),
        }
    }
}

/// Makes a CA and a server certificate in `dir` (created if missing): certificates world
/// readable, keys 0600. Refuses to overwrite any of the four files.
pub fn init(dir: &Path, extra_names: &[String]) -> Result<TlsFiles, TlsError> {
    let files = TlsFiles::in_dir(dir);
    for f in [
        &files.ca_cert,
        &files.ca_key,
        &files.server_cert,
        &files.server_key,
    ] {
        if f.exists() {
            return Err(TlsError::Generate(format!(
                "{} exists: not overwriting it (remove it, or use another directory)",
                f.display()
            )));
        }
    }
    file::ensure_dir(dir)?;
    let ca = Authority::generate()?;
    let server = ca.issue_server(extra_names)?;
    file::write_private(&files.ca_key, ca.key_pem.as_bytes())?;
    file::write_atomic(&files.ca_cert, ca.cert_pem.as_bytes())?;
    file::write_private(&files.server_key, server.key_pem.as_bytes())?;
    file::write_atomic(&files.server_cert, server.cert_pem.as_bytes())?;
    Ok(files)
}

fn validity(days: i64) -> Result<(OffsetDateTime, OffsetDateTime), TlsError> {
    let secs = i64::try_from(now_ms() / 1_000).unwrap_or(i64::MAX);
    let now = OffsetDateTime::from_unix_timestamp(secs).map_err(|e| generate(e.to_string()))?;
    Ok((
        now - Duration::minutes(BACKDATE_MINUTES),
        now + Duration::days(days),
    ))
}

fn generate(e: impl std::fmt::Display) -> TlsError {
    TlsError::Generate(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::CertReloader;

    #[test]
    fn init_writes_a_pair_the_reloader_takes_and_keys_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let files = init(&dir.path().join("tls"), &["control.internal".into()]).unwrap();
        let r = CertReloader::open(&files.server_cert, &files.server_key).unwrap();
        assert!(r.report().fingerprint.starts_with("sha256:"));
        for key in [&files.ca_key, &files.server_key] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        }
        let e = init(&dir.path().join("tls"), &[]).unwrap_err();
        assert!(e.to_string().contains("not overwriting"), "{e}");
    }
}
