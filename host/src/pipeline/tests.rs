use super::*;

#[test]
fn a_key_limits_the_models_anonymous_callers_do_not() {
    let key: VirtualKey = serde_json::from_value(serde_json::json!({
        "id": "k1", "user": "alice", "models": ["small"], "created-at": 0
    }))
    .unwrap();
    let keyed = Principal::new(key, Tier::Batch);
    assert_eq!(keyed.key_id.as_deref(), Some("k1"));
    assert_eq!(keyed.user.as_deref(), Some("alice"));
    assert!(keyed.allows_model("small"));
    assert!(!keyed.allows_model("large"));
    assert!(Principal::default().allows_model("large"));
}

#[test]
fn input_transforms_rewrite_the_last_user_message_only() {
    let mut req: ChatRequest = serde_json::from_value(serde_json::json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "reply"},
            {"role": "user", "content": [{"type": "text", "text": "a@b.co"}]},
            {"role": "tool", "content": "result", "tool_call_id": "t1"}
        ]
    }))
    .unwrap();
    guard::apply_input(&mut req, "[EMAIL]".into());
    let texts: Vec<String> = req.messages.iter().map(|m| m.content_text()).collect();
    assert_eq!(texts, ["first", "reply", "[EMAIL]", "result"]);
}

#[test]
fn gateway_side_validation_names_the_parameter() {
    let req = |v: serde_json::Value| -> ChatRequest { serde_json::from_value(v).unwrap() };
    let msgs = serde_json::json!([{"role": "user", "content": "x"}]);
    let param = |r: ChatRequest| match validate(&r, 8) {
        Err(Error::InvalidRequest { param, .. }) => param,
        other => panic!("expected invalid request, got {other:?}"),
    };
    assert_eq!(
        param(req(serde_json::json!({"model": "m", "messages": []}))),
        "messages"
    );
    assert_eq!(
        param(req(
            serde_json::json!({"model": "m", "messages": msgs, "temperature": 2.5})
        )),
        "temperature"
    );
    assert_eq!(
        param(req(
            serde_json::json!({"model": "m", "messages": msgs, "max_tokens": 0})
        )),
        "max_tokens"
    );
    for n in [
        serde_json::json!(0),
        serde_json::json!(9),
        serde_json::json!(1.5),
        serde_json::json!("2"),
    ] {
        assert_eq!(
            param(req(
                serde_json::json!({"model": "m", "messages": msgs, "n": n})
            )),
            "n"
        );
    }
    assert!(
        validate(
            &req(serde_json::json!({"model": "m", "messages": msgs, "temperature": 0.7, "n": 8})),
            8
        )
        .is_ok()
    );
}
