//! SCRAM against PostgreSQL's own implementation: verifiers it computes checked and
//! recomputed here, and libpq (psql) logging into our server side.

use keepwatch_pg::{
    AuthRequest, BackendMessage, FrameReader, FrontendMessage, SCRAM_SHA_256, ScramServer,
    ScramVerifier, Side, wire,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::postgres::{psql_direct, require_postgres, unique};

#[test]
fn verifier_matches_what_postgres_stores() {
    require_postgres();
    let role = unique("kw_scram");
    let out = psql_direct(&[
        "SET password_encryption = 'scram-sha-256'",
        &format!("CREATE ROLE {role} PASSWORD 'pencil'"),
        &format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'"),
        &format!("DROP ROLE {role}"),
    ]);
    let stored = out.trim();
    let verifier: ScramVerifier = stored.parse().expect("PostgreSQL's verifier parses");
    assert!(verifier.verify_password("pencil"));
    assert!(!verifier.verify_password("Pencil"));
    // The same password, salt and iterations give PostgreSQL's exact text.
    let ours = ScramVerifier::with_salt("pencil", verifier.salt(), verifier.iterations());
    assert_eq!(ours.to_string(), stored);
}

#[test]
fn verifier_of_a_non_ascii_password_matches_postgres_saslprep() {
    require_postgres();
    let role = unique("kw_scram");
    // U+00A0 (no-break space) maps to a plain space under SASLprep.
    let out = psql_direct(&[
        "SET password_encryption = 'scram-sha-256'",
        &format!("CREATE ROLE {role} PASSWORD 'p\u{a0}ss'"),
        &format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'"),
        &format!("DROP ROLE {role}"),
    ]);
    let stored: ScramVerifier = out.trim().parse().unwrap();
    assert!(stored.verify_password("p\u{a0}ss"));
    assert!(stored.verify_password("p ss"), "SASLprep maps U+00A0 to a space");
}

/// Serves one connection as a PostgreSQL server that only knows SCRAM and `verifier`,
/// answering any query with an empty result. Returns whether the proof was accepted.
async fn serve_scram(mut socket: TcpStream, verifier: ScramVerifier) -> bool {
    let mut reader = FrameReader::new(Side::Frontend, 1 << 20);
    let mut server = ScramServer::new(verifier).unwrap();
    let mut buf = [0; 4096];
    let mut step = 0;
    loop {
        let n = socket.read(&mut buf).await.unwrap();
        if n == 0 {
            return false;
        }
        reader.push(&buf[..n]);
        while let Some(frame) = reader.next_frame().unwrap() {
            let reply = match FrontendMessage::decode(&frame).unwrap() {
                FrontendMessage::SslRequest | FrontendMessage::GssEncRequest => b"N".to_vec(),
                FrontendMessage::Startup { .. } => {
                    let offer = AuthRequest::Sasl { mechanisms: vec![SCRAM_SHA_256.into()] };
                    wire::authentication(&offer).unwrap()
                }
                FrontendMessage::Password(body) if step == 0 => {
                    step = 1;
                    let (mechanism, data) = wire::parse_sasl_initial_response(body).unwrap();
                    let first = server.client_first(&mechanism, data).unwrap();
                    wire::authentication(&AuthRequest::SaslContinue(first.into_bytes())).unwrap()
                }
                FrontendMessage::Password(body) => match server.client_final(body) {
                    Ok(last) => {
                        let mut reply =
                            wire::authentication(&AuthRequest::SaslFinal(last.into_bytes()))
                                .unwrap();
                        reply.extend(wire::authentication(&AuthRequest::Ok).unwrap());
                        reply.extend_from_slice(b"Z\0\0\0\x05I");
                        socket.write_all(&reply).await.unwrap();
                        return true;
                    }
                    Err(e) => {
                        let m = format!("password authentication failed: {e}");
                        let reply = wire::error_response("FATAL", "28P01", &m).unwrap();
                        socket.write_all(&reply).await.unwrap();
                        return false;
                    }
                },
                other => panic!("unexpected {other:?}"),
            };
            socket.write_all(&reply).await.unwrap();
        }
    }
}

async fn psql_login(port: u16, password: &str) -> std::process::Output {
    tokio::process::Command::new("psql")
        .args(["-X", "-At", "-c", "\\echo connected"])
        .arg(format!("host=127.0.0.1 port={port} dbname=app user=alice sslmode=disable"))
        .env("PGPASSWORD", password)
        .output()
        .await
        .expect("psql runs (apt-get install postgresql-client)")
}

#[tokio::test]
async fn libpq_logs_into_our_scram_server_only_with_the_password() {
    let verifier = ScramVerifier::new("correct horse").unwrap();
    for (password, accepted) in [("correct horse", true), ("wrong horse", false)] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let verifier = verifier.clone();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            serve_scram(socket, verifier).await
        });
        let out = psql_login(port, password).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(server.await.unwrap(), accepted, "{password:?}: {stderr}");
        if accepted {
            // libpq checked our server signature before printing this.
            assert!(out.status.success(), "{stderr}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), "connected\n");
        } else {
            assert!(!out.status.success());
            assert!(stderr.contains("password authentication failed"), "{stderr}");
        }
    }
}

#[test]
fn backend_message_decodes_what_wire_encodes() {
    let bytes = wire::authentication(&AuthRequest::Md5Password { salt: [1, 2, 3, 4] }).unwrap();
    let mut reader = FrameReader::new(Side::Backend, 1024);
    reader.push(&bytes);
    let frame = reader.next_frame().unwrap().unwrap();
    assert_eq!(
        BackendMessage::decode(&frame).unwrap(),
        BackendMessage::Authentication(AuthRequest::Md5Password { salt: [1, 2, 3, 4] })
    );
}
