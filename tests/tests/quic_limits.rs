//! Central's QUIC endpoint bounds what one authenticated relay can make it hold:
//! a request stream announcing a huge request is refused unread, no more than a
//! few request streams are open at once, and the link keeps serving normal
//! requests meanwhile. A relay of another site gets nothing of this site's package.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;
use sitecast_common::protocol::{self, CentralMessage, RelayMessage, Request, Response};
use sitecast_tests::{payload, Central};

/// One frame's body.
async fn read_frame(recv: &mut quinn::RecvStream) -> Vec<u8> {
    let mut header = [0u8; 4];
    recv.read_exact(&mut header).await.unwrap();
    let mut body = vec![0u8; protocol::body_len(header).unwrap()];
    recv.read_exact(&mut body).await.unwrap();
    body
}

/// A QUIC connection to central as relay `id`, past its hello.
async fn connect(c: &Central, id: &str, token: &str) -> quinn::Connection {
    let config = sitecast_relay::link::client_config(&c.layout.ca_cert()).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let conn = endpoint
        .connect(c.quic, "127.0.0.1")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let hello = RelayMessage::Hello {
        version: protocol::VERSION,
        relay_id: id.parse().unwrap(),
        token: token.to_owned(),
        software: "a test".into(),
    };
    send.write_all(&protocol::encode(&hello)).await.unwrap();
    let welcome: CentralMessage = protocol::decode(&read_frame(&mut recv).await).unwrap();
    assert!(
        matches!(welcome, CentralMessage::Welcome { .. }),
        "{welcome:?}"
    );
    // The control stream stays open for the life of the link.
    std::mem::forget((send, recv));
    conn
}

/// Asks for `package`'s info; what central answers.
async fn ask_info(conn: &quinn::Connection, package: &str) -> Response {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let request = Request::Info {
        package_id: package.parse().unwrap(),
    };
    send.write_all(&protocol::encode(&request)).await.unwrap();
    let _ = send.finish();
    protocol::decode(&read_frame(&mut recv).await).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_relay_cannot_make_central_hold_more_than_a_few_small_requests() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    c.add_site("lyon", &["127.2.0.0/16"]).await;
    let relay = |site: &str, subnet: &str, url: &str| {
        let body = json!({"site": site, "subnets": [subnet], "url": url});
        let c = &c;
        async move {
            let r = c.post("/relays", body).await;
            (
                r["id"].as_str().unwrap().to_owned(),
                r["token"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (paris, paris_token) = relay("paris", "127.1.0.0/16", "http://127.1.0.1:1").await;
    let (lyon, lyon_token) = relay("lyon", "127.2.0.0/16", "http://127.2.0.1:1").await;
    let p = c
        .upload(
            "name=app&version=1&action=store&path=/opt/app&archive=none",
            payload(10_000, 1),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.post(
        &format!("/packages/{p}/activations"),
        json!({"sites": ["paris"]}),
    )
    .await;
    let conn = connect(&c, &paris, &paris_token).await;
    assert!(matches!(ask_info(&conn, &p).await, Response::Data { .. }));

    // A request announcing 4 MiB (the largest message) is refused before it is read.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&(4u32 << 20).to_be_bytes()).await.unwrap();
    let mut buf = [0u8; 16];
    let refused = tokio::time::timeout(Duration::from_secs(10), recv.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(refused, Ok(None) | Err(_)),
        "central answered an oversized request: {refused:?}"
    );

    // Streams past the limit wait: of 40 opened and left hanging, central takes 16.
    let mut hanging = Vec::new();
    let mut opened = 0;
    for _ in 0..40 {
        let Ok(Ok((mut send, recv))) =
            tokio::time::timeout(Duration::from_millis(300), conn.open_bi()).await
        else {
            break;
        };
        // A stream exists for the peer once something is sent on it.
        send.write_all(&[0, 0]).await.unwrap();
        hanging.push((send, recv));
        opened += 1;
    }
    assert!(
        opened <= 16,
        "central let {opened} request streams open at once"
    );
    drop(hanging);
    // The link still serves: a normal request is answered.
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(10), ask_info(&conn, &p))
            .await
            .unwrap(),
        Response::Data { .. }
    ));

    // Lyon's relay gets nothing of a package activated for paris alone.
    let other = connect(&c, &lyon, &lyon_token).await;
    match ask_info(&other, &p).await {
        Response::NotFound { reason } => {
            assert!(reason.contains("not activated for site 'lyon'"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_has_one_link_its_newest() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let r = c
        .post(
            "/relays",
            json!({"site": "paris", "subnets": ["127.1.0.0/16"], "url": "http://127.1.0.1:1"}),
        )
        .await;
    let (id, token) = (r["id"].as_str().unwrap(), r["token"].as_str().unwrap());
    let first = connect(&c, id, token).await;
    let second = connect(&c, id, token).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), first.closed())
        .await
        .expect("the older connection stayed open");
    match closed {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(&close.reason[..], b"replaced by a newer connection")
        }
        other => panic!("{other}"),
    }
    // The newer one serves.
    let p = c
        .upload_everywhere(
            "name=app&version=1&action=store&path=/opt/app&archive=none",
            payload(1000, 2),
        )
        .await;
    assert!(matches!(ask_info(&second, &p).await, Response::Data { .. }));
}
