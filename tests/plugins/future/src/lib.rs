//! Exports `sluice:plugin/guardrail@0.3.0`, a contract version this host
//! does not speak: the loader must refuse it with a message naming 0.3.0
//! and the versions it speaks (0.2.x, 0.1.x).

wit_bindgen::generate!({
    inline: r#"
        package sluice:plugin@0.3.0;

        interface guardrail {
            check: func(text: string) -> bool;
        }

        world future-guardrail {
            export guardrail;
        }
    "#,
});

#[allow(dead_code)] // only exported on wasm32
struct Future;

impl exports::sluice::plugin::guardrail::Guest for Future {
    fn check(text: String) -> bool {
        text.is_empty()
    }
}

// Export names like `sluice:plugin/guardrail@0.3.0#check` are only valid
// on wasm; a native `cargo test --workspace` build of this crate skips them.
#[cfg(target_arch = "wasm32")]
export!(Future);
