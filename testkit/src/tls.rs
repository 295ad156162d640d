//! Test certificates for TLS clusters: a CA made with `rcgen` and certificates it signs, as PEM
//! files in a directory. [`TestPki::node`] gives a node what its `[tls.raft]` section names.
//! Test use only: the keys are written unencrypted next to the certificates.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A node's mutual-TLS files: the CA that signs every peer, its certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate (PEM) peers are checked against.
    pub ca_file: PathBuf,
    /// This holder's certificate (PEM).
    pub cert_file: PathBuf,
    /// This holder's private key (PEM, PKCS#8).
    pub key_file: PathBuf,
}

/// A CA in a directory.
pub struct TestPki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_file: PathBuf,
}

impl TestPki {
    /// A new CA named `name`, its certificate written to `dir/<name>-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> anyhow::Result<TestPki> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let ca_file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_file, ca.pem())
            .with_context(|| format!("writing {}", ca_file.display()))?;
        Ok(TestPki {
            dir: dir.to_path_buf(),
            ca,
            ca_file,
        })
    }

    /// The CA certificate file.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A certificate for `name` valid for `hosts` (DNS names or IP addresses), usable as a
    /// TLS server and client (a node is both to its peers), signed by this CA.
    pub fn node(&self, name: &str, hosts: &[&str]) -> anyhow::Result<TlsFiles> {
        let mut params =
            CertificateParams::new(hosts.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.ca)?;
        let cert_file = self.dir.join(format!("{name}.pem"));
        let key_file = self.dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert_file, cert.pem())
            .with_context(|| format!("writing {}", cert_file.display()))?;
        std::fs::write(&key_file, key.serialize_pem())
            .with_context(|| format!("writing {}", key_file.display()))?;
        Ok(TlsFiles {
            ca_file: self.ca_file.clone(),
            cert_file,
            key_file,
        })
    }
}
