//! Notify options: what a package tells the user before and after its action.

use crate::harness::*;

/// OCS's notify options: what the user is told before the action, the countdown,
/// whether the user may abort or delay, and the text after a success; shown on the
/// package and signed into the info, which is what agents act on.
#[tokio::test]
async fn a_package_can_tell_the_user_before_and_after_its_action() {
    let c = Central::start().await;
    let pkg = c
        .upload(
            &[
                ("name", "firefox"),
                ("version", "128"),
                ("action", "execute"),
                ("command", "install-firefox"),
                ("notify_text", "Firefox is updated.\nSave your work."),
                ("notify_countdown", "5m"),
                ("notify_can_abort", "true"),
                ("notify_can_delay", "false"),
                ("done_action_text", "Firefox 128 is installed."),
            ],
            None,
        )
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(
        pkg["notify"],
        json!({"text": "Firefox is updated.\nSave your work.", "countdown_s": 300,
               "can_abort": true, "can_delay": false})
    );
    assert_eq!(pkg["done_action_text"], "Firefox 128 is installed.");
    let pid = pkg["id"].as_str().unwrap();
    assert_eq!(c.show_package(pid).await.ok(StatusCode::OK), pkg);
    let info =
        sitecast_common::signing::verify_info(&c.package_info(pid).await.body, &[c.trusted_key()])
            .unwrap();
    let notify = info.notify().unwrap();
    assert_eq!(notify.text, "Firefox is updated.\nSave your work.");
    assert_eq!(notify.countdown_s, 300);
    assert!(notify.can_abort);
    assert!(!notify.can_delay);
    assert_eq!(info.done_action_text(), Some("Firefox 128 is installed."));

    // A text alone: no countdown, nothing but continue; a done text alone.
    let plain = c
        .given_package(
            &[
                ("name", "tool"),
                ("version", "1"),
                ("action", "execute"),
                ("command", "x"),
                ("notify_text", "Installing tool"),
            ],
            None,
        )
        .await;
    assert_eq!(
        plain["notify"],
        json!({"text": "Installing tool", "countdown_s": 0, "can_abort": false, "can_delay": false})
    );
    assert_eq!(plain["done_action_text"], Value::Null);
    let done = c
        .given_package(
            &[
                ("name", "tool"),
                ("version", "2"),
                ("action", "execute"),
                ("command", "x"),
                ("done_action_text", "Tool 2 is here"),
            ],
            None,
        )
        .await;
    assert_eq!(done["notify"], Value::Null);
    assert_eq!(done["done_action_text"], "Tool 2 is here");
    // Without any, both are null.
    let none = c.given_command_package("quiet", "5").await;
    assert_eq!(none["notify"], Value::Null);
    assert_eq!(none["done_action_text"], Value::Null);
}

#[tokio::test]
async fn bad_notify_parameters_name_the_field_or_token() {
    let c = Central::start().await;
    let long = "x".repeat(4097);
    type Params<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Params, Vec<&str>)> = vec![
        (
            vec![("notify_countdown", "5m")],
            vec!["notify_countdown", "notify_text"],
        ),
        (
            vec![("notify_can_abort", "true")],
            vec!["notify_can_abort", "notify_text"],
        ),
        (
            vec![("notify_can_delay", "true")],
            vec!["notify_can_delay", "notify_text"],
        ),
        (
            vec![("notify_text", "hi"), ("notify_countdown", "5 parsecs")],
            vec!["notify_countdown", "5 parsecs"],
        ),
        (
            vec![("notify_text", "hi"), ("notify_countdown", "30")],
            vec!["notify_countdown", "'30'"],
        ),
        (
            vec![("notify_text", "hi"), ("notify_countdown", "2d")],
            vec!["notify_countdown", "2d", "longer than a day"],
        ),
        (
            vec![("notify_text", "hi"), ("notify_can_abort", "yes")],
            vec!["notify_can_abort", "'yes'"],
        ),
        (
            vec![("notify_text", "hi"), ("notify_can_delay", "1")],
            vec!["notify_can_delay", "'1'"],
        ),
        (vec![("notify_text", "  ")], vec!["notify_text", "empty"]),
        (
            vec![("notify_text", "ring\u{7}")],
            vec!["notify_text", "control"],
        ),
        (
            vec![("notify_text", long.as_str())],
            vec!["notify_text", "4096"],
        ),
        (
            vec![("done_action_text", "a\rb")],
            vec!["done_action_text", "control"],
        ),
        (
            vec![("done_action_text", long.as_str())],
            vec!["done_action_text", "4096"],
        ),
        (
            vec![("done_action_text", "")],
            vec!["done_action_text", "empty"],
        ),
    ];
    for (extra, words) in cases {
        let mut params = vec![
            ("name", "tool"),
            ("version", "1"),
            ("action", "execute"),
            ("command", "x"),
        ];
        params.extend(extra.iter().copied());
        c.upload(&params, Some(chunked(&data(10), 5)))
            .await
            .err_naming(StatusCode::BAD_REQUEST, &words);
    }
    assert_eq!(c.list_packages().await.ok(StatusCode::OK), json!([]));
}
