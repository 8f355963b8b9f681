//! The review queue on both backends.

use serde_json::json;

use super::*;
use crate::state::review::{
    FlagEntry, OnFlag, ReviewError, ReviewItem, ReviewQueue, Status, Verdict,
};

fn item(created_ms: u64, request_id: &str) -> ReviewItem {
    ReviewItem {
        id: ReviewItem::id_for(created_ms, request_id),
        created_ms,
        request_id: request_id.into(),
        model: "demo".into(),
        key_id: Some("k1".into()),
        action: OnFlag::Serve,
        stream: false,
        flags: vec![FlagEntry {
            plugin: "probe".into(),
            code: "possible_injection".into(),
            reason: "unsure".into(),
            score: 0.5,
            choice: 0,
            part: "content".into(),
        }],
        messages: json!([{"role": "user", "content": "hi"}]),
        answer: json!({"choices": [{"index": 0, "message": {"content": "hello"}}]}),
    }
}

on_both!(
    items_are_listed_newest_first_and_decided_once,
    two_reviewers_race_and_one_wins
);

async fn items_are_listed_newest_first_and_decided_once(b: BackendKind) {
    let f = Fixture::new(b, config()).await;
    let q = ReviewQueue::new(f.state.store().clone());
    let (a, c) = (item(1_000, "req-a"), item(2_000, "req-b"));
    q.enqueue(&a).await.unwrap();
    q.enqueue(&c).await.unwrap();
    // A repeated enqueue of the same id leaves the first.
    let mut again = a.clone();
    again.model = "other".into();
    q.enqueue(&again).await.unwrap();

    let all = q.list(None, 10).await.unwrap();
    let ids: Vec<_> = all.iter().map(|e| e.item.id.as_str()).collect();
    assert_eq!(ids, [c.id.as_str(), a.id.as_str()]);
    assert!(
        all.iter()
            .all(|e| e.status == Status::Pending && e.decision.is_none())
    );
    assert_eq!(q.get(&a.id).await.unwrap().item, a);
    assert_eq!(q.list(None, 1).await.unwrap().len(), 1);

    let decided = q
        .decide(&a.id, Verdict::Approved, " alice ", Some("fine".into()))
        .await
        .unwrap();
    assert_eq!(decided.status, Status::Approved);
    let d = decided.decision.unwrap();
    assert_eq!(
        (d.reviewer.as_str(), d.note.as_deref()),
        ("alice", Some("fine"))
    );
    assert!(d.at_ms > 1_600_000_000_000, "a real timestamp: {}", d.at_ms);

    match q.decide(&a.id, Verdict::Rejected, "bob", None).await {
        Err(ReviewError::AlreadyDecided { by, .. }) => assert_eq!(by.reviewer, "alice"),
        other => panic!("expected AlreadyDecided, got {other:?}"),
    }
    assert!(matches!(
        q.decide("nope", Verdict::Rejected, "bob", None).await,
        Err(ReviewError::NotFound(_))
    ));
    assert!(matches!(
        q.decide(&c.id, Verdict::Rejected, "  ", None).await,
        Err(ReviewError::NoReviewer)
    ));
    q.decide(&c.id, Verdict::Rejected, "bob", None)
        .await
        .unwrap();

    let pending = q.list(Some(Status::Pending), 10).await.unwrap();
    assert!(pending.is_empty());
    let rejected = q.list(Some(Status::Rejected), 10).await.unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].item.id, c.id);
    assert_eq!(rejected[0].decision.as_ref().unwrap().reviewer, "bob");
}

async fn two_reviewers_race_and_one_wins(b: BackendKind) {
    let f = Fixture::new(b, config()).await;
    // On Redis each reviewer has its own connection (two gateways).
    let other = match b {
        BackendKind::Redis => f.second_gateway().await,
        BackendKind::Sled => f.state.clone(),
    };
    let q1 = ReviewQueue::new(f.state.store().clone());
    let q2 = ReviewQueue::new(other.store().clone());
    for n in 0..20u64 {
        let it = item(10_000 + n, &format!("race-{n}"));
        q1.enqueue(&it).await.unwrap();
        let (r1, r2) = tokio::join!(
            q1.decide(&it.id, Verdict::Approved, "alice", None),
            q2.decide(&it.id, Verdict::Rejected, "bob", None),
        );
        assert!(r1.is_ok() != r2.is_ok(), "exactly one wins: {r1:?} {r2:?}");
        let winner = if r1.is_ok() { "alice" } else { "bob" };
        let seen = q2.get(&it.id).await.unwrap().decision.unwrap();
        assert_eq!(seen.reviewer, winner);
    }
}
