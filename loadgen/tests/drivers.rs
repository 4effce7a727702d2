//! Each channel driver against a real chat core (embedded through
//! `c24_chatcore::start`), checked from both sides: the load generator's
//! counts and the core's own message counts for the same window.

use c24_loadgen::report::Report;

mod support;
use support::count;

/// Runs a scenario text against an embedded core and returns its report.
async fn run(src: &str) -> (c24_loadgen::Exit, Report) {
    support::run_scenario(src, None).await
}

fn server_messages(r: &Report, channel: &str) -> u64 {
    r.server
        .as_ref()
        .and_then(|s| s.per_channel.iter().find(|c| c.channel == channel))
        .map(|c| c.messages)
        .unwrap_or(0)
}

const HEAD: &str = r#"
duration = "1s"
grace = "5s"
[tenants]
provision = 2
[[stages]]
rate = 4
duration = "1s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webchat_send_ack_reply_push_reconnect() {
    let src = format!(
        r#"name = "wc"{HEAD}
[[script]]
channel = "webchat"
steps = [
  {{ send = "Hoi {{visitor}}" }},
  {{ send = "nog een", size = "300B" }},
  {{ agent_reply = "antwoord" }},
  {{ expect = "msg.new", timeout = "5s" }},
  {{ reconnect = true }},
  {{ send = "na het herverbinden" }},
]
[thresholds]
"webchat.push.count" = "== 4"
"#
    );
    let (exit, r) = run(&src).await;
    assert_eq!(exit, c24_loadgen::Exit::Passed, "{r:#?}");
    let s = &r.scenarios[0];
    assert_eq!((s.started, s.completed, s.failed), (4, 4, 0), "{s:?}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(count(&r, "webchat", "connect"), 4);
    assert_eq!(count(&r, "webchat", "ack"), 12);
    assert_eq!(count(&r, "webchat", "storage"), 12);
    assert_eq!(count(&r, "webchat", "agent"), 4);
    assert_eq!(count(&r, "webchat", "push"), 4);
    assert_eq!(count(&r, "webchat", "reconnect"), 4);
    // Three visitor messages and one agent reply per conversation, stored.
    assert_eq!(server_messages(&r, "webchat"), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_signed_notifications() {
    let src = format!(
        r#"name = "wa"{HEAD}
[[script]]
channel = "whatsapp"
steps = [
  {{ send = "Hallo" }},
  {{ think = "20ms" }},
  {{ send = "Bestelling {{n}}" }},
  {{ agent_reply = "We kijken het na" }},
]
"#
    );
    let (exit, r) = run(&src).await;
    assert_eq!(exit, c24_loadgen::Exit::Passed, "{r:#?}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(count(&r, "whatsapp", "http"), 8);
    // The agent answers in the conversation the webhook's answer named.
    assert_eq!(count(&r, "whatsapp", "agent"), 4);
    // Two inbound messages and one agent reply per conversation, stored.
    assert_eq!(server_messages(&r, "whatsapp"), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_threaded_messages_and_agent_replies() {
    let src = format!(
        r#"name = "em"{HEAD}
[[script]]
channel = "email"
steps = [
  {{ send = "Eerste bericht", subject = "Vraag {{n}}" }},
  {{ send = "Tweede bericht in dezelfde draad" }},
  {{ agent_reply = "Dank u" }},
]
"#
    );
    let (exit, r) = run(&src).await;
    assert_eq!(exit, c24_loadgen::Exit::Passed, "{r:#?}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(count(&r, "email", "http"), 8);
    // The reply reached the thread the two messages made: 4 conversations × 3.
    assert_eq!(count(&r, "email", "agent"), 4);
    assert_eq!(server_messages(&r, "email"), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_keeps_n_visitors_busy() {
    let src = r#"name = "closed"
duration = "1s"
grace = "5s"
visitors = 3
[[script]]
channel = "webchat"
steps = [{ send = "x" }, { think = "100ms" }]
"#;
    let (exit, r) = run(src).await;
    assert_eq!(exit, c24_loadgen::Exit::Passed, "{r:#?}");
    let s = &r.scenarios[0];
    // Each visitor loops about every 100 ms for 1 s.
    assert!(s.started >= 9 && s.started <= 36, "{s:?}");
    assert_eq!(s.started, s.completed + s.interrupted, "{s:?}");
}
