//! Identities: a self-signed certificate and its key per tracker and per peer, made with
//! rcgen on first start and kept (the key readable by its owner only), and their
//! fingerprints. A damaged or mismatched pair is an error that says how to recover; nothing
//! is ever overwritten.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::tls::{SERVER_NAME, provider};
use crate::protocol::Fingerprint;

/// A certificate and its private key, with the certificate's fingerprint.
pub struct Identity {
    /// The certificate (DER).
    pub cert: CertificateDer<'static>,
    /// The private key (DER).
    pub key: PrivateKeyDer<'static>,
    /// BLAKE3 of the certificate.
    pub fingerprint: Fingerprint,
}

impl Identity {
    /// Loads `DIR/NAME.crt` and `DIR/NAME.key`, creating both on first use. A damaged file,
    /// a key that does not belong to its certificate, or one file without the other is an
    /// error naming the files and how to recover; nothing is ever overwritten.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Identity> {
        let (cert_path, key_path) = paths(dir, name);
        match (cert_path.exists(), key_path.exists()) {
            (false, false) => create(dir, &cert_path, &key_path, name)?,
            (true, true) => {}
            (has_cert, _) => {
                let (found, missing) = if has_cert { (&cert_path, &key_path) } else { (&key_path, &cert_path) };
                bail!("found {} but not {}: restore it, or {}", found.display(), missing.display(), recovery(&cert_path, &key_path, name));
            }
        }
        let damaged = |what: &Path, err: &dyn std::fmt::Display| {
            anyhow!("{} is damaged ({err}): {}", what.display(), recovery(&cert_path, &key_path, name))
        };
        let cert = CertificateDer::from_pem_file(&cert_path).map_err(|e| damaged(&cert_path, &e))?;
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| damaged(&key_path, &e))?;
        let signing = provider().key_provider.load_private_key(key.clone_key()).map_err(|e| damaged(&key_path, &e))?;
        match rustls::sign::CertifiedKey::new(vec![cert.clone()], signing).keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(_)) => bail!(
                "{} does not belong to {} (one of them was replaced): put the matching pair back, or {}",
                key_path.display(),
                cert_path.display(),
                recovery(&cert_path, &key_path, name)
            ),
            Err(err) => return Err(damaged(&cert_path, &err)),
        }
        let fingerprint = fingerprint(&cert);
        Ok(Identity { cert, key, fingerprint })
    }

    /// A new identity kept in memory only, never written anywhere: for simulated peers (the
    /// tracker's load bench) and tests that need many certificates.
    pub fn ephemeral(name: &str) -> Result<Identity> {
        let (key, cert) = new_pair(name)?;
        let cert = cert.der().clone();
        let key = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| anyhow!("cannot keep the key: {e}"))?;
        let fingerprint = fingerprint(&cert);
        Ok(Identity { cert, key, fingerprint })
    }

    pub(super) fn clone_key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

/// How to get going again when an identity's files are unusable: a new pair, and what that
/// costs (others pinned the old fingerprint).
fn recovery(cert: &Path, key: &Path, name: &str) -> String {
    let cost = if name == "tracker" {
        "peers pin the old fingerprint, so give them the new tracker.crt or a new ticket"
    } else {
        "the tracker and other peers will see a new fingerprint"
    };
    format!("move {} and {} away and start again to make a new identity ({cost})", cert.display(), key.display())
}

/// Paths of the certificate and key named `name` in `dir`.
pub fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")))
}

/// The fingerprint of a certificate.
pub fn fingerprint(cert: &CertificateDer<'_>) -> Fingerprint {
    blake3::hash(cert.as_ref()).into()
}

/// Reads a PEM certificate file and returns its fingerprint (to pin the tracker).
pub fn pinned_fingerprint(path: &Path) -> Result<Fingerprint> {
    let cert = CertificateDer::from_pem_file(path).with_context(|| {
        format!(
            "cannot read the tracker certificate {} (start the tracker once, pass --tracker-cert FILE, or use a ticket: --tracker TICKET)",
            path.display()
        )
    })?;
    Ok(fingerprint(&cert))
}

/// Makes a new self-signed certificate and key, the key readable by its owner only.
fn create(dir: &Path, cert_path: &Path, key_path: &Path, name: &str) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (key, cert) = new_pair(name)?;
    write_private(key_path, key.serialize_pem().as_bytes())?;
    write_atomic(cert_path, cert.pem().as_bytes())
}

/// A new key and a self-signed certificate for it, named `p2pq NAME`.
fn new_pair(name: &str) -> Result<(rcgen::KeyPair, rcgen::Certificate)> {
    let key = rcgen::KeyPair::generate().context("cannot generate a key")?;
    let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()]).context("bad certificate name")?;
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("p2pq {name}"));
    let cert = params.self_signed(&key).context("cannot sign the certificate")?;
    Ok((key, cert))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("key.tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let written = written.and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.with_context(|| format!("cannot write {}", path.display()))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("crt.tmp");
    let written = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.with_context(|| format!("cannot write {}", path.display()))
}
