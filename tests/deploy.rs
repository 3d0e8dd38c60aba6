//! Deployments (docs/group.md): live redeploy, staged deploys, resets, and
//! groups refused with every problem named by its JSON path.

use rumqttc::ConnectReturnCode;
use serde_json::json;

use crate::common::{eventually, thing_arn, ConnectError, Group, Opts, QoS, Root, DEADLINE};

/// A redeploy swaps the table while devices stay connected: devices still in
/// the group keep their connection (and hear the new routes); a removed device,
/// or one whose certificate changed, is disconnected and refused afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_redeploy_keeps_untouched_devices_and_cuts_removed_ones() {
    let root = Root::new();
    let src = root.device("src");
    let stays = root.device("stays");
    let removed = root.device("removed");
    let rekeyed_old = root.device("rekeyed");
    let rekeyed_new = root.device("rekeyed");
    let added = root.device("added");

    let v1 = Group::new("redeploy")
        .device(&src)
        .device(&stays)
        .device(&removed)
        .device(&rekeyed_old)
        .route("src", "t/#", "stays")
        .route("src", "t/#", "removed")
        .route("src", "t/#", "rekeyed");
    let mut core = root.start();
    root.deploy_ok(&v1);
    let port = core.port;

    let mut publisher = crate::common::connect(port, &src).await;
    let mut stays_dev = crate::common::connect(port, &stays).await;
    let mut removed_dev = crate::common::connect(port, &removed).await;
    let mut rekeyed_dev = crate::common::connect(port, &rekeyed_old).await;
    for d in [&mut stays_dev, &mut removed_dev, &mut rekeyed_dev] {
        d.sub("t/#", QoS::AtLeastOnce).await;
    }
    publisher.publish("t/1", QoS::AtLeastOnce, "before").await;
    for d in [&mut stays_dev, &mut removed_dev, &mut rekeyed_dev] {
        d.expect("t/1", "before").await;
    }

    // v2: `removed` is gone, `rekeyed` has a new certificate, `added` is new.
    let v2 = Group::new("redeploy")
        .device(&src)
        .device(&stays)
        .device(&rekeyed_new)
        .device(&added)
        .route("src", "t/#", "stays")
        .route("src", "t/#", "rekeyed")
        .route("src", "t/#", "added");
    let id2 = root.deploy_ok(&v2);

    removed_dev.wait_closed().await;
    rekeyed_dev.wait_closed().await;
    core.wait_log(&["device removed from the group or its entry changed", "thing=removed"]).await;
    core.wait_log(&["device removed from the group or its entry changed", "thing=rekeyed"]).await;

    // The untouched devices kept their connections (a Device never
    // reconnects): `stays` hears what `src` publishes after the swap.
    publisher.publish("t/2", QoS::AtLeastOnce, "after").await;
    stays_dev.expect("t/2", "after").await;
    assert!(stays_dev.is_connected() && publisher.is_connected());
    assert_eq!(core.count_log(&["device connected", "thing=stays"]), 1);
    assert_eq!(core.count_log(&["takes over"]), 0);

    // The removed device and the old certificate are refused now; the new
    // certificate and the added device are admitted.
    for (creds, what) in [(&removed, "removed"), (&rekeyed_old, "old certificate")] {
        match crate::common::try_connect(port, creds, Opts::default()).await {
            Err(ConnectError::Refused(c)) => assert_eq!(c, ConnectReturnCode::NotAuthorized),
            Err(e) => panic!("{what}: expected CONNACK not authorized, got {e:?}"),
            Ok(_) => panic!("{what}: admitted after the redeploy"),
        }
    }
    let mut rekeyed_dev = crate::common::connect(port, &rekeyed_new).await;
    let mut added_dev = crate::common::connect(port, &added).await;
    rekeyed_dev.sub("t/#", QoS::AtLeastOnce).await;
    added_dev.sub("t/#", QoS::AtLeastOnce).await;
    publisher.publish("t/3", QoS::AtLeastOnce, "v2").await;
    for d in [&mut stays_dev, &mut rekeyed_dev, &mut added_dev] {
        d.expect("t/3", "v2").await;
    }
    stays_dev.expect_silence().await;

    let status = root.status();
    assert_eq!(status["deployment"]["id"], id2.as_str());
    assert_eq!(status["deployment"]["status"], "Success");
    assert_eq!(status["group"]["devices"], 4);
    let mut connected = root.connected();
    connected.sort();
    assert_eq!(connected, vec!["added", "rekeyed", "src", "stays"]);
    core.stop_ok();
}

/// Grants are re-checked on every redeploy: a subscription the new table no
/// longer grants is removed from the session, and stays removed when a later
/// group routes that topic again (the device must subscribe again).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redeploy_revokes_subscriptions_no_longer_granted() {
    let root = Root::new();
    let src = root.device("src");
    let dst = root.device("dst");
    let both = Group::new("grants").device(&src).device(&dst).route("src", "keep/#", "dst").route("src", "drop/#", "dst");
    let keep_only = Group::new("grants").device(&src).device(&dst).route("src", "keep/#", "dst");
    let mut core = root.start();
    root.deploy_ok(&both);
    let mut publisher = crate::common::connect(core.port, &src).await;
    let mut dst_dev = crate::common::connect(core.port, &dst).await;
    dst_dev.sub("keep/#", QoS::AtLeastOnce).await;
    dst_dev.sub("drop/#", QoS::AtLeastOnce).await;
    publisher.publish("drop/1", QoS::AtLeastOnce, "1").await;
    dst_dev.expect("drop/1", "1").await;

    root.deploy_ok(&keep_only);
    core.wait_log(&["subscriptions no longer granted by the group were removed", "thing=dst"]).await;
    assert!(!root.has_subscription("dst", "drop/#"));
    assert!(root.has_subscription("dst", "keep/#"));

    root.deploy_ok(&both);
    publisher.publish("drop/2", QoS::AtLeastOnce, "2").await;
    publisher.publish("keep/2", QoS::AtLeastOnce, "barrier").await;
    dst_dev.expect("keep/2", "barrier").await;
    dst_dev.expect_silence().await;
    // Subscribing again restores it.
    dst_dev.sub("drop/#", QoS::AtLeastOnce).await;
    publisher.publish("drop/3", QoS::AtLeastOnce, "3").await;
    dst_dev.expect("drop/3", "3").await;
    assert!(dst_dev.is_connected());
    core.stop_ok();
}

/// The problems of the bad group used below, with the JSON path each must be
/// named by.
fn bad_group(root: &Root) -> (serde_json::Value, Vec<(&'static str, &'static str)>) {
    let a = root.device("a");
    let b = root.device("b");
    let group = json!({
        "GroupId": "bad",
        "DeviceDefinition": { "Devices": [
            { "Id": "dev", "ThingArn": thing_arn("a"), "CertificateArn": a.cert_arn },
            { "Id": "dev", "ThingArn": thing_arn("b"), "CertificateArn": b.cert_arn }
        ] },
        "SubscriptionDefinition": { "Subscriptions": [
            { "Id": "s1", "Source": thing_arn("ghost"), "Subject": "t/#", "Target": thing_arn("b") },
            { "Id": "s2", "Source": thing_arn("a"), "Subject": "a/#/b", "Target": thing_arn("b") },
            { "Id": "s2", "Source": thing_arn("a"), "Subject": "ok/+", "Target": thing_arn("b") },
            { "Id": "s4", "Source": thing_arn("a"), "Subject": "ok/+", "Target": thing_arn("nobody") }
        ] }
    });
    let problems = vec![
        ("DeviceDefinition.Devices[1].Id", "duplicate Id 'dev'"),
        ("SubscriptionDefinition.Subscriptions[0].Source", "ghost"),
        ("SubscriptionDefinition.Subscriptions[1].Subject", "a/#/b"),
        ("SubscriptionDefinition.Subscriptions[2].Id", "duplicate Id 's2'"),
        ("SubscriptionDefinition.Subscriptions[3].Target", "nobody"),
    ];
    (group, problems)
}

/// An invalid group is refused whole with exit code 2, every problem named as
/// `FILE: JSON.path: message`; the running group stays in force. With no core
/// running it is refused the same way and nothing is staged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_groups_are_refused_with_every_problem_named() {
    let root = Root::new();
    let src = root.device("src");
    let dst = root.device("dst");
    let good = Group::new("good").device(&src).device(&dst).route("src", "t/#", "dst");
    let (bad, problems) = bad_group(&root);
    let bad_file = root.write_group_json(&bad);
    let bad_path = bad_file.to_str().unwrap();

    let check = |out: &crate::common::Output| {
        out.assert_code(2);
        for (path, detail) in &problems {
            let prefix = format!("{bad_path}: {path}: ");
            let line = out
                .stderr
                .lines()
                .find(|l| l.trim_start().starts_with(&prefix))
                .unwrap_or_else(|| panic!("no `{prefix}...` line in stderr:\n{}", out.stderr));
            assert!(line.contains(detail), "{line:?} does not mention {detail:?}");
        }
        assert!(out.deployment().is_none(), "{out:?}");
    };

    // No core: refused before anything is staged.
    check(&root.run(&["deploy", bad_path]));
    let staged = root.path.join("ggc/deployment/staged");
    let staged_entries = std::fs::read_dir(&staged).map(|d| d.count()).unwrap_or(0);
    assert_eq!(staged_entries, 0, "something was staged in {}", staged.display());

    // Running core: refused; the group in force is untouched.
    let mut core = root.start();
    let good_id = root.deploy_ok(&good);
    check(&root.run(&["deploy", bad_path]));
    // Not JSON at all: exit 2, the file named.
    let not_json = root.scratch().join("broken.json");
    std::fs::write(&not_json, "{ \"GroupId\": ").unwrap();
    let out = root.run(&["deploy", not_json.to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.stderr.contains(not_json.to_str().unwrap()), "{out:?}");

    let status = root.status();
    assert_eq!(status["deployment"]["id"], good_id.as_str());
    assert_eq!(status["deployment"]["status"], "Success");
    assert_eq!(status["group"]["groupId"], "good");
    let mut publisher = crate::common::connect(core.port, &src).await;
    let mut listener = crate::common::connect(core.port, &dst).await;
    listener.sub("t/#", QoS::AtLeastOnce).await;
    publisher.publish("t/1", QoS::AtLeastOnce, "still routed").await;
    listener.expect("t/1", "still routed").await;
    core.stop_ok();
}

/// `ggcore deploy` with no core running stages the group (exit 0, `Staged`);
/// the next `ggcore run` applies it, and it survives a restart. `deploy
/// --reset` while running removes the group (devices are cut); staged with no
/// core, it is applied at the next start too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staged_deploy_is_applied_at_next_start() {
    let root = Root::new();
    let src = root.device("src");
    let dst = root.device("dst");
    let group = Group::new("staged").device(&src).device(&dst).route("src", "t/#", "dst");
    let out = root.deploy(&group);
    out.assert_code(0);
    let (id, status) = out.deployment().expect("deployment line");
    assert_eq!(status, "Staged");
    assert_eq!(root.run(&["status", "--json"]).code, 1);

    let mut core = root.start();
    core.wait_log(&["applying the deployment staged while no core ran", &id]).await;
    let status = root.status();
    assert_eq!(status["deployment"]["id"], id.as_str());
    assert_eq!(status["deployment"]["status"], "Success");
    assert_eq!(status["group"]["groupId"], "staged");
    let mut publisher = crate::common::connect(core.port, &src).await;
    let mut listener = crate::common::connect(core.port, &dst).await;
    listener.sub("t/#", QoS::AtLeastOnce).await;
    publisher.publish("t/1", QoS::AtLeastOnce, "staged").await;
    listener.expect("t/1", "staged").await;
    drop((publisher, listener));
    core.stop_ok();

    // The deployed group outlives the process.
    let mut core = root.start();
    assert_eq!(root.status()["group"]["groupId"], "staged");
    let mut publisher = crate::common::connect(core.port, &src).await;
    let mut listener = crate::common::connect(core.port, &dst).await;
    listener.sub("t/#", QoS::AtLeastOnce).await;
    publisher.publish("t/2", QoS::AtLeastOnce, "restarted").await;
    listener.expect("t/2", "restarted").await;

    // Reset while running: the group is gone and its devices are cut.
    let out = root.run(&["deploy", "--reset"]);
    out.assert_code(0);
    assert_eq!(out.deployment().expect("deployment line").1, "Success");
    listener.wait_closed().await;
    publisher.wait_closed().await;
    assert_eq!(root.status()["group"]["devices"], 0);
    match crate::common::try_connect(core.port, &src, Opts::default()).await {
        Err(ConnectError::Refused(c)) => assert_eq!(c, ConnectReturnCode::NotAuthorized),
        other => panic!("after reset: expected not authorized, got {:?}", other.err()),
    }

    // Deploy again, stop, stage a reset: the next start has no group.
    root.deploy_ok(&group);
    core.stop_ok();
    let out = root.run(&["deploy", "--reset"]);
    out.assert_code(0);
    assert_eq!(out.deployment().expect("deployment line").1, "Staged");
    let mut core = root.start();
    core.wait_log(&["applying the reset staged while no core ran"]).await;
    eventually("the reset to be in force", DEADLINE, || (root.status()["group"]["devices"] == 0).then_some(())).await;
    match crate::common::try_connect(core.port, &src, Opts::default()).await {
        Err(ConnectError::Refused(c)) => assert_eq!(c, ConnectReturnCode::NotAuthorized),
        other => panic!("after staged reset: expected not authorized, got {:?}", other.err()),
    }
    core.stop_ok();
}
