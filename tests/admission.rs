//! Who may connect (docs/mqtt.md, "Connecting"): a certificate chaining to the device CA whose
//! fingerprint (or CN, for entries without CertificateArn) is a device of the
//! group, and the thing name as client id. Everyone else is refused at
//! connect, with the reason logged.

use rumqttc::ConnectReturnCode;

use crate::common::mqtt::{tls_config, tls_config_without_cert, try_connect_tls};
use crate::common::{raw, ConnectError, Group, Opts, QoS, Root};

fn refused(r: Result<crate::common::Device, ConnectError>, what: &str) -> ConnectError {
    match r {
        Ok(_) => panic!("{what}: the core accepted the connection"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_are_refused() {
    let root = Root::new();
    let member = root.device("member");
    let listener = root.device("cn-listener");
    // Same device CA, but not in the group.
    let stranger = root.device("stranger");
    // Same device CA and CN as `member`, but not the fingerprint the group pins.
    let impostor = root.device("member");
    assert_ne!(impostor.cert_arn, member.cert_arn);
    // Another root's device CA; same thing names as the group's devices.
    let elsewhere = Root::new();
    let foreign_member = elsewhere.device("member").with_ca(&member.ca);
    let foreign_listener = elsewhere.device("cn-listener").with_ca(&member.ca);

    let group = Group::new("admission").device(&member).device_by_cn("cn-listener").route("member", "t/#", "cn-listener");
    let mut core = root.start();
    root.deploy_ok(&group);
    let port = core.port;

    // Not a device of the group: CONNACK 5 (not authorized).
    match refused(crate::common::try_connect(port, &stranger, Opts::default()).await, "stranger") {
        ConnectError::Refused(code) => assert_eq!(code, ConnectReturnCode::NotAuthorized),
        e => panic!("stranger: expected CONNACK not authorized, got {e:?}"),
    }
    core.wait_log(&["connection refused", "client_id=stranger", "is not a device of the group"]).await;

    // Right CA and CN, wrong fingerprint: refused as well.
    match refused(crate::common::try_connect(port, &impostor, Opts::default()).await, "impostor") {
        ConnectError::Refused(code) => assert_eq!(code, ConnectReturnCode::NotAuthorized),
        e => panic!("impostor: expected CONNACK not authorized, got {e:?}"),
    }
    core.wait_log(&["connection refused", "client_id=member", &impostor.cert_arn[impostor.cert_arn.len() - 64..]]).await;

    // Certificates from another root's CA fail the TLS handshake, whether the
    // group pins a fingerprint or matches the CN.
    for (creds, what) in [(&foreign_member, "foreign member"), (&foreign_listener, "foreign cn")] {
        match refused(crate::common::try_connect(port, creds, Opts::default()).await, what) {
            ConnectError::Failed(_) => {}
            e => panic!("{what}: expected a TLS failure, got {e:?}"),
        }
    }
    core.wait_log_count(&["TLS handshake failed; connection refused"], 2).await;

    // No client certificate at all: the handshake fails too.
    let no_cert = raw::tls_with(port, tls_config_without_cert(&member.ca)).await;
    if let Ok(mut s) = no_cert {
        // TLS 1.3: the client learns of the refusal on its first read.
        raw::expect_closed(&mut s, "a client without certificate").await;
    }
    core.wait_log_count(&["TLS handshake failed; connection refused"], 3).await;

    // The right certificate under another client id: CONNACK 2.
    match refused(
        crate::common::try_connect(port, &member, Opts { client_id: Some("not-member".into()), ..Opts::default() }).await,
        "wrong client id",
    ) {
        ConnectError::Refused(code) => {
            assert_eq!(code, ConnectReturnCode::BadClientId)
        }
        e => panic!("wrong client id: expected CONNACK bad client id, got {e:?}"),
    }
    core.wait_log(&["connection refused", "client_id=not-member", "is not the thing name 'member'"]).await;

    // The group's devices connect (one by fingerprint, one by CN) and talk.
    let mut publisher = crate::common::connect(port, &member).await;
    let tls = tls_config(&listener.ca, &listener.cert, &listener.key);
    let mut cn = match try_connect_tls(port, "cn-listener", tls, Opts::default()).await {
        Ok(d) => d,
        Err(e) => panic!("cn-listener refused: {e:?}"),
    };
    cn.sub("t/#", QoS::AtLeastOnce).await;
    publisher.publish("t/1", QoS::AtLeastOnce, "hello").await;
    cn.expect("t/1", "hello").await;
    cn.expect_silence().await;

    let status = root.status();
    let broker = &status["broker"];
    assert!(broker["connectionsRefused"].as_u64().unwrap() >= 3, "{broker}");
    assert!(broker["tlsFailures"].as_u64().unwrap() >= 3, "{broker}");
    let mut connected = root.connected();
    connected.sort();
    assert_eq!(connected, vec!["cn-listener", "member"]);
    core.stop_ok();
}
