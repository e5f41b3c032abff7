//! Session tags: put on and taken off with their audit event, idempotent, bounded, and
//! filtered on by listings and search, the same on every backend.

use keepwatch_core::{AuditAction, MAX_TAGS_PER_SESSION, SessionId, Tag, parse_tags};
use keepwatch_store::{AuditFilter, SearchQuery, SessionFilter, Store, StoreError, TagChange};

use crate::search::{HOUR_US, T0, check, session, text};
use crate::support::{TestDb, conformance};

fn tags(names: &[&str]) -> Vec<Tag> {
    parse_tags(names).unwrap()
}

fn change<'a>(session: SessionId, tags: &'a [Tag]) -> TagChange<'a> {
    TagChange { session, tags, actor: "local:root", client_addr: Some("192.0.2.9") }
}

async fn add(s: &Store, id: SessionId, names: &[&str]) -> Vec<String> {
    let t = tags(names);
    let added = s.add_session_tags(&change(id, &t)).await.unwrap();
    added.iter().map(|t| t.to_string()).collect()
}

async fn remove(s: &Store, id: SessionId, names: &[&str]) -> Vec<String> {
    let t = tags(names);
    let removed = s.remove_session_tags(&change(id, &t)).await.unwrap();
    removed.iter().map(|t| t.to_string()).collect()
}

async fn tag_events(s: &Store) -> Vec<String> {
    let f = AuditFilter::default();
    let mut events: Vec<String> = s
        .audit_events(&f)
        .await
        .unwrap()
        .iter()
        .filter(|e| matches!(e.action, AuditAction::SessionTagged | AuditAction::SessionUntagged))
        .map(|e| format!("{} {} {}", e.action, e.actor, e.detail))
        .collect();
    events.reverse();
    events
}

async fn tags_are_added_removed_and_audited(db: TestDb) {
    let s = &db.store;
    let id = session(s, "alice", "web", T0, &[]).await;
    assert_eq!(add(s, id, &["Incident-42", "ticket:ops-7"]).await, ["incident-42", "ticket:ops-7"]);
    // Adding again changes nothing and writes no event.
    assert_eq!(add(s, id, &["incident-42"]).await, Vec::<String>::new());
    assert_eq!(add(s, id, &["incident-42", "team/db"]).await, ["team/db"]);
    let listed: Vec<(String, String)> =
        s.session_tags(id).await.unwrap().into_iter().map(|t| (t.tag, t.added_by)).collect();
    assert_eq!(
        listed,
        [
            ("incident-42".into(), "local:root".into()),
            ("team/db".into(), "local:root".into()),
            ("ticket:ops-7".into(), "local:root".into())
        ]
    );
    assert_eq!(remove(s, id, &["team/db", "nope"]).await, ["team/db"]);
    assert_eq!(remove(s, id, &["team/db"]).await, Vec::<String>::new());
    assert_eq!(
        tag_events(s).await,
        [
            "session_tagged local:root tags incident-42, ticket:ops-7",
            "session_tagged local:root tags team/db",
            "session_untagged local:root tags team/db",
        ]
    );
    let events = s.audit_events(&AuditFilter::default()).await.unwrap();
    assert_eq!(events[0].session_id, Some(id));
    assert_eq!(events[0].client_addr.as_deref(), Some("192.0.2.9"));
    db.close().await;
}

async fn unknown_sessions_and_too_many_tags_are_refused(db: TestDb) {
    let s = &db.store;
    let t = tags(&["a"]);
    let unknown = SessionId::new();
    let e = s.add_session_tags(&change(unknown, &t)).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { kind: "session", .. }), "{e}");
    let e = s.remove_session_tags(&change(unknown, &t)).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { kind: "session", .. }), "{e}");

    let id = session(s, "alice", "web", T0, &[]).await;
    let many: Vec<String> = (0..MAX_TAGS_PER_SESSION).map(|i| format!("t{i}")).collect();
    let many = parse_tags(&many).unwrap();
    assert_eq!(s.add_session_tags(&change(id, &many)).await.unwrap().len(), MAX_TAGS_PER_SESSION);
    let e = s.add_session_tags(&change(id, &t)).await.unwrap_err();
    assert!(e.to_string().contains("at most 32"), "{e}");
    assert_eq!(s.session_tags(id).await.unwrap().len(), MAX_TAGS_PER_SESSION, "nothing added");
    assert_eq!(tag_events(s).await.len(), 1, "the refused change wrote no event");
    db.close().await;
}

async fn listings_and_search_filter_by_tag(db: TestDb) {
    let s = &db.store;
    let a = session(s, "alice", "web", T0, &["systemctl restart nginx"]).await;
    let b = session(s, "bob", "db", T0 + HOUR_US, &["systemctl restart pg"]).await;
    let c = session(s, "carol", "web", T0 + 2 * HOUR_US, &["systemctl status"]).await;
    add(s, a, &["incident-42", "night"]).await;
    add(s, b, &["incident-42"]).await;
    let ids = |f: SessionFilter| async move {
        s.session_listings(&f)
            .await
            .unwrap()
            .into_iter()
            .map(|l| (l.session.id, l.tags))
            .collect::<Vec<_>>()
    };
    let all = ids(SessionFilter::default()).await;
    assert_eq!(
        all,
        [
            (c, vec![]),
            (b, vec!["incident-42".to_owned()]),
            (a, vec!["incident-42".to_owned(), "night".to_owned()])
        ]
    );
    let tagged = |t: &str| SessionFilter { tag: Some(t.into()), ..SessionFilter::default() };
    let picked: Vec<SessionId> =
        ids(tagged("incident-42")).await.into_iter().map(|l| l.0).collect();
    assert_eq!(picked, [b, a]);
    let picked: Vec<SessionId> = ids(tagged("NIGHT")).await.into_iter().map(|l| l.0).collect();
    assert_eq!(picked, [a], "the filter is lowercased like the tags");
    assert!(ids(tagged("incident")).await.is_empty(), "a tag matches whole");
    let rows = s.sessions(&tagged("incident-42")).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [b, a]);
    let alice = SessionFilter { person: Some("alice".into()), ..tagged("incident-42") };
    assert_eq!(ids(alice).await.len(), 1);

    let by_tag = |t: &str, q: SearchQuery| SearchQuery { tag: Some(t.into()), ..q };
    check(
        s,
        text("systemctl"),
        &[
            "carol web systemctl status",
            "bob db systemctl restart pg",
            "alice web systemctl restart nginx",
        ],
    )
    .await;
    check(
        s,
        by_tag("incident-42", text("systemctl")),
        &["bob db systemctl restart pg", "alice web systemctl restart nginx"],
    )
    .await;
    check(s, by_tag("night", text("restart")), &["alice web systemctl restart nginx"]).await;
    check(s, by_tag("night", text("st")), &["alice web systemctl restart nginx"]).await;
    check(s, by_tag("none", text("systemctl")), &[]).await;
    db.close().await;
}

/// Output lines are filtered by the session they are in (person, target, session, tag, and
/// any two together) through the index and through the scan of a text under three
/// characters alike.
async fn output_is_filtered_by_its_session(db: TestDb) {
    let s = &db.store;
    let a = session(s, "alice", "web", T0, &["uptime => kw up 3 days"]).await;
    let b = session(s, "bob", "web", T0 + HOUR_US, &["uptime => kw up 9 days"]).await;
    let c = session(s, "alice", "db", T0 + 2 * HOUR_US, &["uptime => kw up 1 day"]).await;
    add(s, b, &["incident-7"]).await;
    add(s, c, &["incident-7"]).await;
    let (a_line, b_line, c_line) = (
        "alice web uptime > kw up 3 days",
        "bob web uptime > kw up 9 days",
        "alice db uptime > kw up 1 day",
    );
    for needle in ["kw up", "kw"] {
        let q = text(needle);
        check(s, q.clone(), &[c_line, b_line, a_line]).await;
        check(s, SearchQuery { person: Some("alice".into()), ..q.clone() }, &[c_line, a_line])
            .await;
        check(s, SearchQuery { target: Some("web".into()), ..q.clone() }, &[b_line, a_line]).await;
        check(s, SearchQuery { session: Some(b), ..q.clone() }, &[b_line]).await;
        check(s, SearchQuery { tag: Some("incident-7".into()), ..q.clone() }, &[c_line, b_line])
            .await;
        let both = SearchQuery {
            person: Some("alice".into()),
            tag: Some("incident-7".into()),
            ..q.clone()
        };
        check(s, both, &[c_line]).await;
        let none = SearchQuery { session: Some(a), target: Some("db".into()), ..q.clone() };
        check(s, none, &[]).await;
    }
    db.close().await;
}

conformance!(
    tags_are_added_removed_and_audited,
    unknown_sessions_and_too_many_tags_are_refused,
    listings_and_search_filter_by_tag,
    output_is_filtered_by_its_session
);
