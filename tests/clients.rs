//! Clients that are not ours, over TLS: Python paho-mqtt 2.1 and Mosquitto's
//! `mosquitto_pub` / `mosquitto_sub`, talking with rumqttc devices through the
//! table.

use std::process::Command;

use serde_json::json;

use crate::common::external::{mosquitto_args, paho, Background};
use crate::common::{eventually, Env, QoS, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paho_mqtt_python_client_over_tls() {
    let env = Env::start(&["py-sub", "py-pub", "rust"], &[("rust", "py/#", "py-sub"), ("py-pub", "from-py/#", "rust")]);
    let port = env.core.port;
    let mut rust = env.connect("rust").await;
    rust.sub("from-py/#", QoS::AtLeastOnce).await;

    // paho subscribes (one filter granted, one refused) and receives.
    let mut sub = paho(env.creds("py-sub"), port, json!({ "subscribe": [["py/#", 1], ["nope/#", 1]], "expect": 2 }));
    let connack = sub.wait_line("CONNACK").await;
    assert!(connack.starts_with("CONNACK success"), "{connack}");
    assert_eq!(sub.wait_line("SUBACK").await, "SUBACK 1 128");
    rust.publish("py/1", QoS::AtLeastOnce, "one").await;
    rust.publish("py/2", QoS::AtMostOnce, "two").await;
    let done = sub.finish().await;
    assert_eq!(done.code, Some(0), "{done:?}");
    let msgs: Vec<&String> = done.stdout.iter().filter(|l| l.starts_with("MSG ")).collect();
    assert_eq!(msgs, ["MSG py/1 1 one", "MSG py/2 0 two"], "{done:?}");

    // paho publishes at QoS 1, 2 and 0; rumqttc hears them in order, QoS 2
    // routed at QoS 1.
    let mut publisher =
        paho(env.creds("py-pub"), port, json!({ "publish": [["from-py/1", 1, "p1"], ["from-py/2", 2, "p2"], ["from-py/3", 0, "p3"]] }));
    let done = publisher.finish().await;
    assert_eq!(done.code, Some(0), "{done:?}");
    assert_eq!(done.stdout.iter().filter(|l| l.starts_with("PUBLISHED") && l.ends_with("published=True")).count(), 3, "{done:?}");
    for (i, qos) in [(1, QoS::AtLeastOnce), (2, QoS::AtLeastOnce), (3, QoS::AtMostOnce)] {
        let p = rust.expect(&format!("from-py/{i}"), &format!("p{i}")).await;
        assert_eq!(p.qos, qos, "from-py/{i}");
    }
    rust.expect_silence().await;

    // paho with a client id that is not its thing name is refused.
    let mut wrong = paho(env.creds("py-pub"), port, json!({ "client_id": "someone-else" }));
    let done = wrong.finish().await;
    assert_eq!(done.code, Some(2), "{done:?}");
    assert!(done.stdout.iter().any(|l| l.starts_with("CONNACK failure")), "{done:?}");
    env.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mosquitto_pub_and_sub_over_tls() {
    let env =
        Env::start(&["mq-sub", "mq-pub", "rust"], &[("mq-pub", "mq/#", "mq-sub"), ("rust", "mq/#", "mq-sub"), ("mq-pub", "mq/#", "rust")]);
    let port = env.core.port;
    let mut rust = env.connect("rust").await;
    rust.sub("mq/#", QoS::AtLeastOnce).await;

    let mut sub_cmd = Command::new("mosquitto_sub");
    sub_cmd.args(mosquitto_args(env.creds("mq-sub"), port)).args(["-t", "mq/#", "-q", "1", "-v", "-C", "2", "-W", "90"]);
    let mut sub = Background::spawn(sub_cmd);
    eventually("mosquitto_sub to subscribe", DEADLINE, || env.root.has_subscription("mq-sub", "mq/#").then_some(())).await;

    let out = Command::new("mosquitto_pub")
        .args(mosquitto_args(env.creds("mq-pub"), port))
        .args(["-t", "mq/hello", "-m", "hello from mosquitto", "-q", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "mosquitto_pub: {out:?}");
    rust.expect("mq/hello", "hello from mosquitto").await;
    rust.publish("mq/rust", QoS::AtLeastOnce, "hello from rumqttc").await;
    let done = sub.finish().await;
    assert_eq!(done.code, Some(0), "{done:?}");
    assert_eq!(done.stdout, ["mq/hello hello from mosquitto", "mq/rust hello from rumqttc"], "{done:?}");
    rust.expect_silence().await;

    // A client id other than the thing name is refused.
    let out = Command::new("mosquitto_pub")
        .args(mosquitto_args(env.creds("mq-pub"), port))
        .args(["-i", "intruder", "-t", "mq/x", "-m", "x", "-q", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "mosquitto_pub as intruder: {out:?}");
    env.core.wait_log(&["connection refused", "client_id=intruder"]).await;
    env.stop();
}
