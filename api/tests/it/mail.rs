//! Verification mail over SMTP (lettre) to a loopback SMTP server that speaks RFC 5321.

use std::sync::{Arc, Mutex};

use funmagic_api::config::SettingsLayer;
use funmagic_api::testing::{TestApp, TestBackend};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Accepts mail and keeps each message's DATA.
async fn smtp_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let kept = inbox.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let inbox = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 fake.smtp ESMTP ready\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            inbox.lock().unwrap().push(data.take().unwrap());
                            write.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-fake.smtp\r\n250 8BITMIME\r\n",
                        "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 2.0.0 ok\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 end with <CRLF>.<CRLF>\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
                            break;
                        }
                        _ => b"502 5.5.2 not implemented\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, inbox)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_mail_goes_out_over_smtp() {
    let (port, inbox) = smtp_server().await;
    let mut extra = SettingsLayer::default();
    extra.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}").into());
    extra.mail.from = Some("FunMagic Test <noreply@funmagic.test>".into());
    let app = TestApp::spawn_with(TestBackend::Embedded, extra).await.unwrap();
    let anon = crate::client(&app);
    let body = funmagic_sdk::types::SignUpRequest {
        name: "Ada".parse().unwrap(),
        email: "ada@example.com".parse().unwrap(),
        password: crate::PASSWORD.parse().unwrap(),
    };
    anon.auth_sign_up_email(&body).await.unwrap();
    let message = {
        let mut waited = 0;
        loop {
            if let Some(m) = inbox.lock().unwrap().first().cloned() {
                break m;
            }
            waited += 1;
            assert!(waited < 100, "no mail arrived");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    assert!(message.contains("To: ada@example.com"), "{message}");
    assert!(message.contains("noreply@funmagic.test"), "{message}");
    assert!(app.state().mailer().outbox().is_empty(), "with SMTP nothing is kept in memory");
    // The link in the mail verifies the address (quoted-printable may wrap long lines).
    let unfolded = message.replace("=\n", "").replace("=3D", "=");
    let token = unfolded.split("token=").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let user = anon.auth_email_verify(&token.parse().unwrap()).await.unwrap().into_inner();
    assert!(user.email_verified);
}
