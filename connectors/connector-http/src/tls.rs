//! The TLS configuration of the client: rustls with the ring provider, verifying the server's
//! certificate against a CA file or the system's trust store; verification off only when the
//! settings say so (tests). With `tls_cert_file` and `tls_key_file` the client proves itself with
//! a certificate of its own (mutual TLS: Skolfederation's FedTLS, SS 12000 servers that take no
//! tokens).

use connector_api::TargetError;
use std::path::Path;
use std::sync::Arc;

pub(crate) fn client_config(
    ca_file: Option<&Path>,
    insecure: bool,
    client_cert: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, TargetError> {
    let identity = client_cert.map(|(cert, key)| client_identity(cert, key)).transpose()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TargetError::config("TLS: no protocol version the crypto provider supports").with_source(e))?;
    if insecure {
        let builder = builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider)));
        return with_identity(builder, identity);
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            use rustls_pki_types::CertificateDer;
            use rustls_pki_types::pem::PemObject;
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                TargetError::config(format!("tls_ca_file {}: cannot be read", path.display())).with_source(e)
            })?;
            for cert in certs {
                let bad =
                    || TargetError::config(format!("tls_ca_file {}: not a usable CA certificate", path.display()));
                roots.add(cert.map_err(|e| bad().with_source(e))?).map_err(|e| bad().with_source(e))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A certificate of the system store that rustls cannot use is left out.
                let _ = roots.add(cert);
            }
        }
    }
    with_identity(builder.with_root_certificates(roots), identity)
}

/// A client certificate chain and its private key, read from PEM files.
type Identity = (Vec<rustls_pki_types::CertificateDer<'static>>, rustls_pki_types::PrivateKeyDer<'static>);

fn client_identity(cert: &Path, key: &Path) -> Result<Identity, TargetError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let unreadable = |key: &str, path: &Path| TargetError::config(format!("{key} {}: cannot be read", path.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| unreadable("tls_cert_file", cert).with_source(e))?
        .collect::<Result<_, _>>()
        .map_err(|e| unreadable("tls_cert_file", cert).with_source(e))?;
    if certs.is_empty() {
        return Err(TargetError::config(format!("tls_cert_file {}: holds no PEM certificate", cert.display())));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        TargetError::config(format!("tls_key_file {}: holds no readable PEM private key", key.display())).with_source(e)
    })?;
    Ok((certs, key_der))
}

fn with_identity(
    builder: rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    identity: Option<Identity>,
) -> Result<rustls::ClientConfig, TargetError> {
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((certs, key)) => builder.with_client_auth_cert(certs, key).map_err(|e| {
            TargetError::config(
                "tls_cert_file and tls_key_file: the key does not fit the certificate, or neither is usable",
            )
            .with_source(e)
        }),
    }
}

/// Accepts any certificate (`tls_insecure_skip_verify = true`); signatures are still checked.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
