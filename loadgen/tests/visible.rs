//! `visible = true` on WhatsApp and email sends: after the POST's answer the
//! generator polls the agent API until the message is readable there, and
//! records it as its own metric (`whatsapp.visible`, `email.visible`);
//! against a real chat core.

use c24_loadgen::report::Report;

mod support;

async fn run(src: &str) -> (c24_loadgen::Exit, Report) {
    support::run_scenario(src, None).await
}

fn entries<'a>(
    r: &'a Report,
    channel: &str,
    metric: &str,
) -> Vec<&'a c24_loadgen::report::LatencyEntry> {
    r.latency
        .iter()
        .filter(|e| e.channel == channel && e.metric == metric)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_to_visible_in_the_conversation() {
    let src = r#"name = "vis"
duration = "1s"
grace = "5s"
[tenants]
provision = 2
[[stages]]
rate = 4
duration = "1s"
[mix]
whatsapp = 1
email = 1
[[script]]
channel = "whatsapp"
steps = [{ send = "Hallo", visible = true }, { send = "Nog iets" }, { send = "Derde", visible = true }]
[[script]]
channel = "email"
steps = [{ send = "Mail", subject = "Vraag", visible = true }, { agent_reply = "ok" }]
[thresholds]
"whatsapp.visible.count" = "== 4"
"email.visible.count" = "== 2"
"#;
    let (exit, r) = run(src).await;
    assert_eq!(exit, c24_loadgen::Exit::Passed, "{r:#?}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let wa_visible = entries(&r, "whatsapp", "visible");
    // Steps 0 and 2 asked for it, step 1 did not.
    let steps: Vec<_> = wa_visible.iter().map(|e| (e.step, e.count)).collect();
    assert_eq!(steps, vec![(Some(0), 2), (Some(2), 2)]);
    assert_eq!(
        entries(&r, "whatsapp", "http")
            .iter()
            .map(|e| e.count)
            .sum::<u64>(),
        6
    );
    // Visible comes after the answer, from the same due time.
    for (ch, step) in [("whatsapp", Some(0)), ("email", Some(0))] {
        let http = entries(&r, ch, "http")
            .into_iter()
            .find(|e| e.step == step)
            .unwrap();
        let vis = entries(&r, ch, "visible")
            .into_iter()
            .find(|e| e.step == step)
            .unwrap();
        assert!(
            vis.corrected.min >= http.corrected.min,
            "{ch}: {vis:?} {http:?}"
        );
        assert!(vis.uncorrected.min >= http.uncorrected.min, "{ch}");
    }
    // The agent reply still found its conversation after the polling.
    assert_eq!(
        entries(&r, "email", "agent")
            .iter()
            .map(|e| e.count)
            .sum::<u64>(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_visible_there_is_no_polling() {
    let src = r#"name = "novis"
duration = "1s"
grace = "5s"
[[stages]]
rate = 3
duration = "1s"
[[script]]
channel = "whatsapp"
steps = [{ send = "Hallo" }]
"#;
    let (exit, r) = run(src).await;
    assert_eq!(exit, c24_loadgen::Exit::Passed);
    assert!(entries(&r, "whatsapp", "visible").is_empty());
    assert_eq!(
        entries(&r, "whatsapp", "http")
            .iter()
            .map(|e| e.count)
            .sum::<u64>(),
        3
    );
}
