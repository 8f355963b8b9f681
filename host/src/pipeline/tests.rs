use super::*;

#[test]
fn spend_belongs_to_the_key_then_the_user() {
    let keyed = Principal {
        key_id: Some("k1".into()),
        user: Some("alice".into()),
        budget_usd: None,
    };
    assert_eq!(keyed.scope(Some("bob")), "key:k1");
    let anon = Principal::default();
    assert_eq!(anon.scope(Some("bob")), "user:bob");
    assert_eq!(anon.scope(None), "anonymous");
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
