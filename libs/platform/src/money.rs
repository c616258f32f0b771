//! ISO 4217 currency codes in use, their minor units, and conversion between them.

/// Active ISO 4217 alphabetic codes (list one, 2024 edition), sorted for binary search.
const CODES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW",
    "ZWG",
];

/// Whether `code` is an active ISO 4217 code, in upper case.
pub fn is_currency(code: &str) -> bool {
    CODES.binary_search(&code).is_ok()
}

/// Digits after the decimal point of `code`'s amounts (ISO 4217): 2 unless listed.
pub fn minor_units(code: &str) -> u32 {
    match code {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// `amount_minor` of `from` in minor units of `to`, where one unit of `from` is worth `rate`
/// units of `to`; rounded half away from zero.
pub fn convert(amount_minor: i64, from: &str, rate: f64, to: &str) -> i64 {
    let scale = 10_f64.powi(
        i32::try_from(minor_units(to)).unwrap_or(2) - i32::try_from(minor_units(from)).unwrap_or(2),
    );
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_precision_loss,
        reason = "reporting amounts: far within f64's exact integers, rounded on purpose"
    )]
    let converted = (amount_minor as f64 * rate * scale).round() as i64;
    converted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_knows_common_codes() {
        assert!(CODES.windows(2).all(|w| w[0] < w[1]));
        assert!(is_currency("EUR") && is_currency("JPY") && is_currency("BHD"));
        assert!(!is_currency("eur") && !is_currency("XYZ") && !is_currency(""));
    }

    #[test]
    fn conversion_follows_each_currency_s_minor_units() {
        // 49.90 USD at 0.92 EUR each: 45.91 EUR.
        assert_eq!(convert(4_990, "USD", 0.92, "EUR"), 4_591);
        // 1000 JPY at 0.0061 EUR each: 6.10 EUR.
        assert_eq!(convert(1_000, "JPY", 0.0061, "EUR"), 610);
        // 1.500 KWD at 3.0 EUR each: 4.50 EUR.
        assert_eq!(convert(1_500, "KWD", 3.0, "EUR"), 450);
        assert_eq!(convert(-4_990, "EUR", 1.0, "EUR"), -4_990);
        assert_eq!(minor_units("EUR"), 2);
    }
}
