//! Renewing the MQTT server certificate while the core runs: checked every
//! hour, reissued before it expires (or when the addresses it must name
//! change), and swapped into the TLS configuration without dropping devices.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::broker::tls;
use crate::certs;
use crate::layout::Layout;

/// Renews the server certificate before it expires, without dropping devices.
pub async fn renew_server_cert(layout: Layout, names: Vec<String>, resolver: Arc<tls::ServerCertResolver>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.cancelled() => return,
        }
        let layout2 = layout.clone();
        let names2 = names.clone();
        let renewed = tokio::task::spawn_blocking(move || -> Result<Option<&'static str>, certs::CertError> {
            let cas = certs::ensure_cas(&layout2)?;
            certs::ensure_server_cert(&layout2, &cas.group, &names2)
        })
        .await;
        match renewed {
            Ok(Ok(Some(why))) => match tls::load_certified_key(&layout.server_cert(), &layout.server_key()) {
                Ok(k) => {
                    resolver.replace(k);
                    tracing::info!(reason = why, "renewed the MQTT server certificate; connected devices stay connected");
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot load the renewed server certificate")
                }
            },
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "server certificate renewal failed; will retry")
            }
            Err(e) => tracing::error!(error = %e, "server certificate renewal task failed"),
        }
    }
}
