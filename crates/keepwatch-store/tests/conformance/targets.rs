//! Issue 9: target secrets bound to their whole row, re-sealed from the legacy (name-only)
//! format once, and re-sealed together with a host key pinned on first use.

use keepwatch_core::{AuditAction, RecordingFailure, Role};
use keepwatch_store::{
    AuditFilter, NewAudit, NewTarget, Resealed, Store, TargetSecret, Vault, VaultError,
};

use crate::support::{TestDb, conformance};

fn target(name: &str, host_key: Option<&str>) -> NewTarget {
    NewTarget {
        require_reason: false,
        database: None,
        protocol: keepwatch_core::Protocol::Ssh,
        name: name.into(),
        host: "10.0.0.5".into(),
        port: 22,
        login: "root".into(),
        secret: TargetSecret::Password(Vec::new()),
        host_key: host_key.map(str::to_owned),
        trust_on_first_use: host_key.is_none(),
        on_recording_failure: RecordingFailure::Close,
        algorithms: Default::default(),
    }
}

async fn actions(store: &Store) -> Vec<(AuditAction, String)> {
    let mut rows = store.audit_events(&AuditFilter::default()).await.unwrap();
    rows.reverse();
    rows.into_iter().map(|e| (e.action, e.detail)).collect()
}

async fn legacy_secrets_are_sealed_again_once_bound_to_their_row(db: TestDb) {
    let store = &db.store;
    store.add_person("alice", Role::User, None, &[]).await.unwrap();
    let vault = Vault::new(&[7; 32]).unwrap();
    let mut old = target("web01", Some("ssh-ed25519 AAAAkey"));
    old.secret = TargetSecret::Password(vault.seal_legacy("web01", b"pw1").unwrap());
    store.add_target(&old).await.unwrap();
    let mut bound = target("web02", None);
    bound.seal_secret(&vault, b"pw2").unwrap();
    store.add_target(&bound).await.unwrap();
    let mut broken = target("web03", None);
    broken.secret = TargetSecret::Password(vault.seal_legacy("elsewhere", b"pw3").unwrap());
    store.add_target(&broken).await.unwrap();

    // Before: the legacy secret is not used as it is.
    let row = store.target("web01").await.unwrap().unwrap();
    let e = vault.open(&row.binding(), row.secret.ciphertext()).unwrap_err();
    assert!(matches!(e, VaultError::Legacy { .. }), "{e}");

    let done = store.reseal_legacy_secrets(&vault, "local:root").await.unwrap();
    assert_eq!(done[0], Resealed::Resealed { target: "web01".into() });
    assert!(matches!(&done[1], Resealed::Unreadable { target, .. } if target == "web03"));
    assert_eq!(done.len(), 2, "{done:?}");
    let row = store.target("web01").await.unwrap().unwrap();
    assert_eq!(vault.open(&row.binding(), row.secret.ciphertext()).unwrap().expose(), b"pw1");
    let row2 = store.target("web02").await.unwrap().unwrap();
    assert_eq!(row2.secret, bound.secret, "an already bound secret is left alone");
    let audited = actions(store).await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0].0, AuditAction::TargetSecretResealed);
    assert!(
        audited[0].1.contains("web01")
            && audited[0].1.contains("root@10.0.0.5:22 (password, host key ssh-ed25519 AAAAkey"),
        "{}",
        audited[0].1
    );
    // Once is enough.
    let again = store.reseal_legacy_secrets(&vault, "local:root").await.unwrap();
    assert_eq!(again.len(), 1, "only the unreadable one is reported again: {again:?}");
    assert_eq!(actions(store).await.len(), 1);
    db.close().await;
}

async fn pinning_a_first_seen_key_seals_the_secret_again_in_the_same_step(db: TestDb) {
    let store = &db.store;
    store.add_person("alice", Role::User, None, &[]).await.unwrap();
    let vault = Vault::new(&[7; 32]).unwrap();
    let mut t = target("tofu", None);
    t.seal_secret(&vault, b"pw").unwrap();
    store.add_target(&t).await.unwrap();
    let row = store.target("tofu").await.unwrap().unwrap();
    let secret = vault.open(&row.binding(), row.secret.ciphertext()).unwrap();

    let mut pinned = row.clone();
    pinned.host_key = Some("ssh-ed25519 AAAAseen".into());
    let sealed = vault.seal(&pinned.binding(), secret.expose()).unwrap();
    let audit = || NewAudit {
        actor: "alice".into(),
        action: AuditAction::HostKeyPinned,
        session_id: None,
        client_addr: None,
        detail: "tofu".into(),
    };
    let old = row.secret.ciphertext();
    let key = "ssh-ed25519 AAAAseen";
    assert!(store.pin_host_key("tofu", key, old, &sealed, audit()).await.unwrap());
    let now = store.target("tofu").await.unwrap().unwrap();
    assert_eq!(now.host_key.as_deref(), Some(key));
    assert_eq!(vault.open(&now.binding(), now.secret.ciphertext()).unwrap().expose(), b"pw");
    // Still trust-on-first-use: the old secret does not open for the pinned row.
    assert!(vault.open(&now.binding(), old).is_err());
    // A second pin (another session that saw the first use too) changes and audits nothing.
    let other = vault.seal(&pinned.binding(), b"pw").unwrap();
    let other_key = "ssh-ed25519 AAAAother";
    assert!(!store.pin_host_key("tofu", other_key, old, &other, audit()).await.unwrap());
    let still = store.target("tofu").await.unwrap().unwrap();
    assert_eq!(still.host_key.as_deref(), Some(key));
    assert_eq!(still.secret, now.secret);
    assert_eq!(actions(store).await.len(), 1);
    db.close().await;
}

/// Issue 12: a target and its sessions carry their protocol, and a secret sealed for one
/// protocol does not open for another.
async fn targets_and_sessions_carry_their_protocol(db: TestDb) {
    use keepwatch_core::{Protocol, SessionId, SessionStatus};
    let store = &db.store;
    let vault = Vault::new(&[7; 32]).unwrap();
    let mut pg = target("pgprod", None);
    pg.protocol = Protocol::Postgres;
    pg.database = Some(keepwatch_store::DatabaseTarget {
        name: "app".into(),
        tls: keepwatch_store::TlsMode::VerifyFull,
        ca: Some("-----BEGIN CERTIFICATE-----".into()),
    });
    pg.seal_secret(&vault, b"pw").unwrap();
    store.add_target(&pg).await.unwrap();
    store.add_target(&target("web01", None)).await.unwrap();
    let mut row = store.target("pgprod").await.unwrap().unwrap();
    assert_eq!(row.protocol, Protocol::Postgres);
    assert_eq!(store.target("web01").await.unwrap().unwrap().protocol, Protocol::Ssh);
    assert_eq!(row.database, pg.database);
    assert_eq!(vault.open(&row.binding(), row.secret.ciphertext()).unwrap().expose(), b"pw");
    // A downgraded TLS mode, another CA or another protocol does not open the secret.
    let mut edited = row.clone();
    edited.database.as_mut().unwrap().tls = keepwatch_store::TlsMode::Disable;
    assert!(vault.open(&edited.binding(), row.secret.ciphertext()).is_err());
    let mut edited = row.clone();
    edited.database.as_mut().unwrap().ca = None;
    assert!(vault.open(&edited.binding(), row.secret.ciphertext()).is_err());
    row.protocol = Protocol::Ssh;
    assert!(vault.open(&row.binding(), row.secret.ciphertext()).is_err());

    let id = SessionId::new();
    let session = keepwatch_store::SessionRow {
        stated_reason: None,
        protocol: Protocol::Postgres,
        id,
        person: "alice".into(),
        target: "pgprod".into(),
        target_host: "10.0.0.5:5432".into(),
        target_login: "app".into(),
        client_addr: "192.0.2.1:50000".into(),
        status: SessionStatus::Active,
        reason: None,
        started_at_us: 1,
        ended_at_us: None,
        chain_head: None,
        seal_seq: None,
        seal_signature: None,
        node: None,
    };
    store.insert_session(&session).await.unwrap();
    assert_eq!(store.session(id).await.unwrap().unwrap().protocol, Protocol::Postgres);

    // A person's SCRAM verifier is kept beside the password hash.
    store.add_person("alice", Role::User, Some("$argon2id$x"), &[]).await.unwrap();
    assert_eq!(store.person("alice").await.unwrap().unwrap().scram_verifier, None);
    let verifier = "SCRAM-SHA-256$4096:c2FsdA==$a:b";
    assert!(store.set_password("alice", "$argon2id$y", verifier).await.unwrap());
    assert!(!store.set_password("nobody", "h", "x").await.unwrap());
    let alice = store.person("alice").await.unwrap().unwrap();
    assert_eq!(alice.scram_verifier.as_deref(), Some(verifier));
    assert_eq!(alice.password_hash.as_deref(), Some("$argon2id$y"));
    db.close().await;
}

conformance!(
    targets_and_sessions_carry_their_protocol,
    legacy_secrets_are_sealed_again_once_bound_to_their_row,
    pinning_a_first_seen_key_seals_the_secret_again_in_the_same_step
);
