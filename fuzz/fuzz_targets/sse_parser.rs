//! The SSE parser: never panics, and the events do not depend on how the
//! byte stream was cut into chunks (the property upstream TCP reads need).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::sse::SseParser;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // The first two bytes choose the cut points, the rest is the stream.
    let (cuts, input) = data.split_at(2);
    let mut whole = SseParser::new();
    let mut expected = Vec::new();
    let whole_ok = whole.push(input, &mut expected).is_ok();

    let mut split = SseParser::new();
    let mut got = Vec::new();
    let mut split_ok = true;
    let a = (cuts[0] as usize).min(input.len());
    let b = (a + cuts[1] as usize).min(input.len());
    for part in [&input[..a], &input[a..b], &input[b..]] {
        if split.push(part, &mut got).is_err() {
            split_ok = false;
            break;
        }
    }
    assert_eq!(whole_ok, split_ok);
    if whole_ok {
        assert_eq!(expected, got);
        assert_eq!(whole.finish(), split.finish());
        for ev in &expected {
            assert!(!ev.data.contains('\r'));
            assert!(
                ev.event
                    .as_deref()
                    .is_none_or(|e| !e.contains(['\r', '\n']))
            );
        }
    }
});
