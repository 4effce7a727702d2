//! Each channel end to end: in, durably stored, read back decrypted; and
//! the ways each one refuses bad input without storing anything.

use c24_api::client::webchat::WebchatClient;
use c24_api::webchat::{ClientFrame, ServerFrame};
use c24_e2e::{Core, WAIT, marker, unix_now, whatsapp_text};
use serde_json::Value;

c24_e2e::both! {
async fn webchat_message_is_acked_stored_and_read_back() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("Acme", true).await?;
    let mut v =
        WebchatClient::connect(&core.ws_url(), &t.channels.webchat.widget_key, "visitor-1").await?;

    let (first, _) = v
        .send_message("c1", None, "Hoi, waar is mijn bestelling?", WAIT)
        .await?;
    assert_eq!(first.seq, 1);
    assert!(first.server_commit_ts >= first.server_recv_ts);
    let conv = first.conversation_id.clone();

    // Pipelined: both queued before either ack; acks come back in order.
    for (id, text) in [("c2", "tweede"), ("c3", "derde")] {
        v.send(&ClientFrame::MsgSend {
            client_msg_id: id.into(),
            conversation_id: Some(conv.clone()),
            content: text.into(),
            client_ts: Some(1),
        })
        .await?;
    }
    let mut seqs = Vec::new();
    for _ in 0..2 {
        match v.next(WAIT).await? {
            ServerFrame::Ack(a) => seqs.push((a.client_msg_id, a.seq)),
            other => anyhow::bail!("expected an ack, got {other:?}"),
        }
    }
    assert_eq!(seqs, vec![("c2".into(), 2), ("c3".into(), 3)]);

    let msgs = core.as_tenant(&t).messages(&conv, 100, None).await?;
    let contents: Vec<_> = msgs.items.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        contents,
        ["Hoi, waar is mijn bestelling?", "tweede", "derde"]
    );
    assert!(msgs.items.iter().all(|m| m.direction == "inbound"));

    let convs = core.as_tenant(&t).conversations().await?;
    assert_eq!(convs.items.len(), 1);
    assert_eq!(convs.items[0].channel, "webchat");
    assert_eq!(convs.items[0].message_count, 3);
    Ok(())
}
}

c24_e2e::both! {
async fn webchat_resend_returns_the_same_ack_and_stores_once() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("Acme", true).await?;
    let mut v = WebchatClient::connect(&core.ws_url(), &t.channels.webchat.widget_key, "v").await?;
    let (a1, _) = v.send_message("same", None, "hello", WAIT).await?;
    let (a2, _) = v.send_message("same", None, "hello", WAIT).await?;
    assert_eq!(a1.message_id, a2.message_id);
    assert_eq!(a1.conversation_id, a2.conversation_id);
    assert_eq!(a1.seq, a2.seq);
    let (a3, _) = v
        .send_message("same", Some(&a1.conversation_id), "hello", WAIT)
        .await?;
    assert_eq!(a3.message_id, a1.message_id);
    assert_eq!(core.message_count(&t).await?, 1);
    Ok(())
}
}

c24_e2e::both! {
async fn agent_reply_is_pushed_to_the_visitor_and_resume_replays() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("Acme", true).await?;
    let key = &t.channels.webchat.widget_key;
    let mut v = WebchatClient::connect(&core.ws_url(), key, "v").await?;
    let (ack, _) = v.send_message("c1", None, "vraag", WAIT).await?;

    let reply = core
        .as_tenant(&t)
        .post_message(&ack.conversation_id, "We kijken het na.")
        .await?;
    assert_eq!(reply.direction, "outbound");
    assert_eq!(reply.seq, 2);
    match v.next(WAIT).await? {
        ServerFrame::MsgNew(m) => {
            assert_eq!(m.content, "We kijken het na.");
            assert_eq!(m.conversation_id, ack.conversation_id);
            assert_eq!(m.direction, "outbound");
            assert_eq!(m.seq, 2);
        }
        other => anyhow::bail!("expected msg.new, got {other:?}"),
    }

    // A second socket of the same visitor resumes after seq 1.
    let mut again = WebchatClient::connect(&core.ws_url(), key, "v").await?;
    again
        .send(&ClientFrame::Resume {
            conversation_id: ack.conversation_id.clone(),
            last_seq: 1,
        })
        .await?;
    match again.next(WAIT).await? {
        ServerFrame::MsgNew(m) => assert_eq!((m.seq, m.content.as_str()), (2, "We kijken het na.")),
        other => anyhow::bail!("expected a replayed msg.new, got {other:?}"),
    }

    // Another visitor cannot resume (or post into) someone else's conversation.
    let mut stranger = WebchatClient::connect(&core.ws_url(), key, "someone-else").await?;
    stranger
        .send(&ClientFrame::Resume {
            conversation_id: ack.conversation_id.clone(),
            last_seq: 0,
        })
        .await?;
    match stranger.next(WAIT).await? {
        ServerFrame::Error { code, .. } => assert_eq!(code, "conversation_not_found"),
        other => anyhow::bail!("expected an error, got {other:?}"),
    }
    let err = stranger
        .send_message("x", Some(&ack.conversation_id), "intrusion", WAIT)
        .await
        .err()
        .map(|e| e.code().map(str::to_string));
    assert_eq!(err, Some(Some("conversation_not_found".into())));
    assert_eq!(core.message_count(&t).await?, 2);
    Ok(())
}
}

c24_e2e::both! {
async fn webchat_bad_frames_get_error_frames_and_the_socket_stays_up() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("Acme", true).await?;
    let mut v = WebchatClient::connect(&core.ws_url(), &t.channels.webchat.widget_key, "v").await?;

    let big = format!(
        r#"{{"type":"msg.send","client_msg_id":"big","conversation_id":null,"content":"{}"}}"#,
        "x".repeat(65 * 1024)
    );
    let cases = [
        ("not json".to_string(), "invalid_frame"),
        (
            r#"{"type":"msg.send","client_msg_id":"u","conversation_id":null,"content":"a","extra":1}"#.to_string(),
            "invalid_frame",
        ),
        (r#"{"type":"msg.send","client_msg_id":"e","conversation_id":null,"content":""}"#.to_string(), "invalid_frame"),
        (r#"{"type":"nope"}"#.to_string(), "invalid_frame"),
        (big, "frame_too_large"),
    ];
    for (text, want) in cases {
        v.send_text(text).await?;
        match v.next(WAIT).await? {
            ServerFrame::Error { code, .. } => assert_eq!(code, want),
            other => anyhow::bail!("expected {want}, got {other:?}"),
        }
    }
    v.send(&ClientFrame::Ping { ts: 42 }).await?;
    assert_eq!(v.next(WAIT).await?, ServerFrame::Pong { ts: 42 });
    assert_eq!(core.message_count(&t).await?, 0);
    // Still usable.
    v.send_message("ok", None, "fine", WAIT).await?;
    assert_eq!(core.message_count(&t).await?, 1);
    Ok(())
}
}

c24_e2e::both! {
async fn webchat_handshake_refusals() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("Acme", true).await?;
    let no_dpa = core.tenant("NoDpa", false).await?;
    let cases = [
        (
            core.ws_url(),
            "wrong-key".to_string(),
            "v",
            401,
            "unauthorized",
        ),
        (
            core.ws_url(),
            t.channels.webchat.widget_key.clone(),
            "",
            400,
            "invalid_visitor",
        ),
        (
            core.ws_url(),
            no_dpa.channels.webchat.widget_key.clone(),
            "v",
            403,
            "dpa_required",
        ),
    ];
    for (url, key, visitor, status, code) in cases {
        match WebchatClient::connect(&url, &key, visitor).await {
            Err(c24_api::client::ClientError::WebSocket {
                status: s, code: c, ..
            }) => {
                assert_eq!(s, Some(status));
                assert_eq!(c.as_deref(), Some(code));
            }
            Err(e) => anyhow::bail!("unexpected error {e}"),
            Ok(_) => anyhow::bail!("handshake with {code} case was accepted"),
        }
    }
    Ok(())
}
}

c24_e2e::both! {
async fn whatsapp_verification_handshake() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("Acme", true).await?;
    let base = format!("{}/v1/whatsapp/{}/webhook", core.url(), t.id);
    let ok = core
        .http
        .get(format!(
            "{base}?hub.mode=subscribe&hub.verify_token={}&hub.challenge=1158201444",
            t.channels.whatsapp.verify_token
        ))
        .send()
        .await?;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await?, "1158201444");
    let bad = core
        .http
        .get(format!(
            "{base}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"
        ))
        .send()
        .await?;
    assert_eq!(bad.status(), 403);
    let body: Value = bad.json().await?;
    assert_eq!(body["error"]["code"], "invalid_verify_token");
    Ok(())
}
}

c24_e2e::both! {
async fn whatsapp_message_is_stored_once_and_read_back() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("Acme", true).await?;
    let body = whatsapp_text(
        &t,
        "31612345678",
        "Sanne",
        "wamid.ONE",
        "Is het op voorraad?",
    );
    let resp = core.whatsapp(&t, &body, None).await?;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await?;
    assert_eq!(v["stored"], 1);
    let first_conversation = v["messages"][0]["conversation_id"].clone();
    assert_eq!(v["messages"][0]["duplicate"], false);

    // Meta retries: same id, nothing new.
    let resp = core.whatsapp(&t, &body, None).await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await?["duplicates"], 1);

    // A second message from the same number joins the conversation.
    let body2 = whatsapp_text(&t, "31612345678", "Sanne", "wamid.TWO", "En in het blauw?");
    assert_eq!(core.whatsapp(&t, &body2, None).await?.status(), 200);

    let convs = core.as_tenant(&t).conversations().await?;
    assert_eq!(convs.items.len(), 1);
    assert_eq!(convs.items[0].channel, "whatsapp");
    assert_eq!(first_conversation, convs.items[0].id.as_str());
    let msgs = core
        .as_tenant(&t)
        .messages(&convs.items[0].id, 10, None)
        .await?;
    let contents: Vec<_> = msgs.items.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["Is het op voorraad?", "En in het blauw?"]);
    Ok(())
}
}

c24_e2e::both! {
async fn whatsapp_refusals_store_nothing() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("Acme", true).await?;
    let other = core.tenant("Other", true).await?;
    let body = whatsapp_text(&t, "31600000000", "X", "wamid.A", "hi");

    let cases: Vec<(reqwest::Response, u16, &str)> = vec![
        (
            core.whatsapp(&t, &body, Some("sha256=00".into())).await?,
            401,
            "invalid_signature",
        ),
        (
            core.whatsapp(&t, &body, Some("garbage".into())).await?,
            401,
            "invalid_signature",
        ),
        // Signed with another tenant's secret.
        (
            core.whatsapp(
                &t,
                &body,
                Some(c24_api::whatsapp::signature_header(
                    &other.channels.whatsapp.app_secret,
                    &body,
                )),
            )
            .await?,
            401,
            "invalid_signature",
        ),
        // Correctly signed, but for another tenant's phone number.
        (
            core.whatsapp(
                &t,
                &whatsapp_text(&other, "316", "X", "wamid.B", "hi"),
                None,
            )
            .await?,
            403,
            "phone_number_mismatch",
        ),
        (
            core.whatsapp(&t, b"{not json", None).await?,
            400,
            "invalid_payload",
        ),
        (
            core.whatsapp(&t, br#"{"object":"page","entry":[]}"#, None)
                .await?,
            400,
            "invalid_payload",
        ),
        (
            core.http
                .post(format!("{}/v1/whatsapp/nope/webhook", core.url()))
                .body(body.clone())
                .send()
                .await?,
            404,
            "tenant_not_found",
        ),
        (
            core.whatsapp(&t, &vec![b' '; 2 * 1024 * 1024], None)
                .await?,
            413,
            "payload_too_large",
        ),
    ];
    for (resp, status, code) in cases {
        assert_eq!(resp.status().as_u16(), status, "for {code}");
        let v: Value = resp.json().await?;
        assert_eq!(v["error"]["code"], code);
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    assert_eq!(core.message_count(&t).await?, 0);
    assert_eq!(core.message_count(&other).await?, 0);
    Ok(())
}
}

fn multipart_email(from: &str, msg_id: &str, in_reply_to: Option<&str>) -> Vec<u8> {
    let reply = in_reply_to
        .map(|r| format!("In-Reply-To: {r}\r\nReferences: {r}\r\n"))
        .unwrap_or_default();
    format!(
        "From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <{from}>\r\n\
To: support@acme.example\r\n\
Subject: =?UTF-8?B?QmVzdGVsbGluZyDDvGJlcg==?=\r\n\
Message-ID: {msg_id}\r\n\
{reply}\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Gr=C3=BC=C3=9Fe, wo ist meine Bestellung?\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PHA+R3LDvMOfZTwvcD4=\r\n\
--b1--\r\n"
    )
    .into_bytes()
}

c24_e2e::both! {
async fn email_is_decoded_threaded_and_stored() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("Acme", true).await?;
    let first = core
        .email(
            &t,
            &multipart_email("jurgen@example.de", "<m1@example.de>", None),
            None,
        )
        .await?;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await?;
    let reply = core
        .email(
            &t,
            &multipart_email(
                "jurgen@example.de",
                "<m2@example.de>",
                Some("<m1@example.de>"),
            ),
            None,
        )
        .await?;
    assert_eq!(reply.status(), 201);
    let reply: Value = reply.json().await?;
    assert_eq!(reply["conversation_id"], first["conversation_id"]);
    assert_eq!(reply["seq"], 2);

    let unrelated = core
        .email(
            &t,
            &multipart_email("jurgen@example.de", "<m3@example.de>", None),
            None,
        )
        .await?;
    let unrelated: Value = unrelated.json().await?;
    assert_ne!(unrelated["conversation_id"], first["conversation_id"]);

    let conv = first["conversation_id"].as_str().unwrap_or_default();
    let msgs = core.as_tenant(&t).messages(conv, 10, None).await?;
    assert_eq!(msgs.items.len(), 2);
    assert_eq!(msgs.items[0].content, "Grüße, wo ist meine Bestellung?");
    assert_eq!(msgs.items[0].subject.as_deref(), Some("Bestelling über"));
    Ok(())
}
}

c24_e2e::both! {
async fn email_refusals_store_nothing() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("Acme", true).await?;
    let raw = multipart_email("a@example.org", "<r1@example.org>", None);

    // Accepted once, to have a signature to replay.
    let ts = unix_now().to_string();
    let sig = c24_api::email::signature_header(&t.channels.email.signing_key, &ts, &raw);
    assert_eq!(core.email_signed(&t, &raw, &ts, &sig).await?.status(), 201);
    let replay = core.email_signed(&t, &raw, &ts, &sig).await?;
    let before = core.message_count(&t).await?;

    let other = multipart_email("b@example.org", "<r2@example.org>", None);
    let big = vec![b'a'; 10 * 1024 * 1024 + 1];
    let cases: Vec<(reqwest::Response, u16, &str)> = vec![
        (replay, 401, "signature_replayed"),
        (
            core.email(&t, &other, Some(unix_now() - 301)).await?,
            401,
            "signature_expired",
        ),
        (
            core.email(&t, &other, Some(unix_now() + 301)).await?,
            401,
            "signature_expired",
        ),
        (
            core.email_signed(&t, &other, &unix_now().to_string(), "sha256=abcd")
                .await?,
            401,
            "invalid_signature",
        ),
        (
            core.email(&t, b"no headers, no from", None).await?,
            400,
            "invalid_email",
        ),
        (core.email(&t, &big, None).await?, 413, "payload_too_large"),
        (
            core.http
                .post(format!("{}/v1/email/unknown/inbound", core.url()))
                .body(other.clone())
                .send()
                .await?,
            404,
            "tenant_not_found",
        ),
    ];
    for (resp, status, code) in cases {
        assert_eq!(resp.status().as_u16(), status, "for {code}");
        let v: Value = resp.json().await?;
        assert_eq!(v["error"]["code"], code);
    }
    assert_eq!(core.message_count(&t).await?, before);
    Ok(())
}
}

c24_e2e::both! {
async fn tenant_without_dpa_accepts_no_personal_data() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("NoDpa", false).await?;
    let wa = core
        .whatsapp(&t, &whatsapp_text(&t, "316", "X", "wamid.N", "hi"), None)
        .await?;
    assert_eq!(wa.status(), 403);
    assert_eq!(wa.json::<Value>().await?["error"]["code"], "dpa_required");
    let mail = core
        .email(
            &t,
            b"From: a@example.org\r\nMessage-ID: <x@y>\r\n\r\nhi\r\n",
            None,
        )
        .await?;
    assert_eq!(mail.status(), 403);
    assert_eq!(mail.json::<Value>().await?["error"]["code"], "dpa_required");
    assert_eq!(core.message_count(&t).await?, 0);
    Ok(())
}
}

c24_e2e::both! {
async fn plaintext_and_identifiers_appear_nowhere_at_rest() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("Acme", true).await?;
    let web_text = marker("webchat-secret");
    let visitor = marker("visitor");
    let wa_text = marker("whatsapp-secret");
    let phone = "31687654321";
    let wa_name = marker("Profilename");
    let mail_text = marker("email-secret");
    let mail_addr = format!("{}@example.nl", marker("person"));
    let subject = marker("subject");

    let mut v =
        WebchatClient::connect(&core.ws_url(), &t.channels.webchat.widget_key, &visitor).await?;
    let (ack, _) = v.send_message("c1", None, &web_text, WAIT).await?;
    let wa = whatsapp_text(&t, phone, &wa_name, &marker("wamid"), &wa_text);
    assert_eq!(core.whatsapp(&t, &wa, None).await?.status(), 200);
    let raw = format!(
        "From: <{mail_addr}>\r\nSubject: {subject}\r\nMessage-ID: <{}@x>\r\n\r\n{mail_text}\r\n",
        marker("id")
    );
    assert_eq!(core.email(&t, raw.as_bytes(), None).await?.status(), 201);
    let reply = marker("agent-reply");
    core.as_tenant(&t)
        .post_message(&ack.conversation_id, &reply)
        .await?;

    // Readable through the API...
    let api = core.as_tenant(&t);
    let mut seen = Vec::new();
    for c in api.conversations().await?.items {
        for m in api.messages(&c.id, 100, None).await?.items {
            seen.push(m.content);
        }
    }
    for text in [&web_text, &wa_text, &mail_text, &reply] {
        assert!(seen.iter().any(|s| s == text), "{text} not readable back");
    }
    v.close().await;

    // ...and in no file of the data dir, while running and after a clean stop.
    let needles = [
        &web_text, &visitor, &wa_text, &wa_name, &mail_text, &mail_addr, &subject, &reply,
    ];
    let phone_s = phone.to_string();
    let check = async |core: &Core| -> anyhow::Result<()> {
        for n in needles.iter().copied().chain([&phone_s]) {
            let hits = core.stored(n.as_bytes()).await?;
            assert!(hits.is_empty(), "{n} found in {hits:?}");
        }
        Ok(())
    };
    check(&core).await?;
    // After a clean stop (and on the restart that follows).
    let dir = core.stop().await;
    let core = Core::start_in(dir, |_| {}).await?;
    check(&core).await?;
    Ok(())
}
}
