//! Addresses in the one form their blind index is computed from, so that `Ada@Example.com `
//! and `ada@example.com` are one address, and `+33 6 12-34-56-78` and `+33612345678` too.

/// An email address: trimmed, in lower case, one `@` between a non-empty local part and a
/// domain with a dot, at most 254 characters, no spaces or control characters.
pub fn normalise_email(address: &str) -> Option<String> {
    let address = address.trim().to_lowercase();
    let (local, domain) = address.split_once('@')?;
    let valid = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && address.chars().count() <= 254
        && !address.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then_some(address)
}

/// A phone number in international form: `+`, then 8 to 15 digits once spaces, dots, dashes
/// and parentheses are removed (E.164).
pub fn normalise_phone(number: &str) -> Option<String> {
    let digits = number.trim().strip_prefix('+')?;
    let mut normal = String::from("+");
    for c in digits.chars() {
        match c {
            '0'..='9' => normal.push(c),
            ' ' | '.' | '-' | '(' | ')' => {}
            _ => return None,
        }
    }
    let count = normal.len() - 1;
    ((8..=15).contains(&count) && !normal.starts_with("+0")).then_some(normal)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased_and_junk_refused() {
        assert_eq!(
            normalise_email("  Ada.Lovelace@Example.COM "),
            Some("ada.lovelace@example.com".to_owned())
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@.com",
            "ada@x@y.com",
        ] {
            assert_eq!(normalise_email(bad), None, "{bad}");
        }
    }

    #[test]
    fn phone_numbers_keep_only_their_digits() {
        assert_eq!(
            normalise_phone("+33 6 12-34.56 (78)"),
            Some("+33612345678".to_owned())
        );
        for bad in [
            "0612345678",
            "+33 6 12 34 56 7x",
            "+123",
            "+0123456789",
            "+1234567890123456",
        ] {
            assert_eq!(normalise_phone(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent(input in "[ A-Za-z0-9@.+()-]{0,30}") {
            if let Some(email) = normalise_email(&input) {
                prop_assert_eq!(normalise_email(&email), Some(email.clone()));
            }
            if let Some(phone) = normalise_phone(&input) {
                prop_assert_eq!(normalise_phone(&phone), Some(phone.clone()));
            }
        }
    }
}
