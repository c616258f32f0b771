//! Email addresses and phone numbers as customers type them: normalising never panics, and
//! a normalised identifier normalises to itself (the blind index finds it again).
#![no_main]

use ecrm_profiles::fuzzing::{normalise_email, normalise_phone};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(email) = normalise_email(raw) {
        assert_eq!(
            normalise_email(&email).ok().as_deref(),
            Some(email.as_str())
        );
    }
    if let Ok(phone) = normalise_phone(raw) {
        assert_eq!(
            normalise_phone(&phone).ok().as_deref(),
            Some(phone.as_str())
        );
    }
});
