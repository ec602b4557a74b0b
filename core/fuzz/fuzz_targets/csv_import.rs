//! Fuzz target `csv_import`: arbitrary bytes as a CRM / spreadsheet export through
//! `import::parse_conversions` and `import::parse_spend` (the bodies of
//! `conversions:import` and `spend:import`), under each decimal and date-order option
//! (the first byte picks them; the rest is the file).
//!
//! Invariants besides "never panics": a file error has a known code; rows come in file
//! order after the header; an accepted conversion has a deal id, an email or a lead id,
//! a three-letter upper-case currency and a normalised email; accepted spend has a
//! currency of the same shape and `first_day <= last_day`; every refused row has a code.
#![no_main]

use closeloop_core::identity::normalize_email;
use closeloop_core::import::{parse_conversions, parse_spend, DateOrder, Decimal, ImportOptions};
use libfuzzer_sys::fuzz_target;

const FILE_CODES: [&str; 5] = [
    "empty_file",
    "invalid_csv",
    "invalid_utf8",
    "missing_column",
    "too_many_rows",
];

fn currency_ok(c: &str) -> bool {
    c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())
}

fn rows_in_order(rows: impl Iterator<Item = u64>) {
    let mut last = 1;
    for r in rows {
        assert!(r > last, "row {r} after row {last}");
        last = r;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, file)) = data.split_first() else {
        return;
    };
    let opts = ImportOptions {
        default_currency: (first & 1 == 1).then(|| "EUR".to_string()),
        decimal: match (first >> 1) & 3 {
            1 => Some(Decimal::Point),
            2 => Some(Decimal::Comma),
            _ => None,
        },
        date_order: match (first >> 3) & 3 {
            1 => Some(DateOrder::DayMonth),
            2 => Some(DateOrder::MonthDay),
            _ => None,
        },
        default_channel: (first & 32 == 32).then(|| "Paid Search".to_string()),
    };
    match parse_conversions(file, &opts) {
        Err(e) => assert!(FILE_CODES.contains(&e.code.as_str()), "{e}"),
        Ok(rows) => {
            rows_in_order(rows.iter().map(|r| r.row));
            for r in &rows {
                match &r.result {
                    Ok(c) => {
                        assert!(!c.deal_id.trim().is_empty(), "{c:?}");
                        assert!(c.email.is_some() || c.lead_id.is_some(), "{c:?}");
                        assert!(currency_ok(&c.currency), "{c:?}");
                        if let Some(e) = &c.email {
                            assert_eq!(normalize_email(e).as_deref(), Some(e.as_str()));
                        }
                    }
                    Err(e) => assert!(!e.code.is_empty()),
                }
            }
        }
    }
    match parse_spend(file, &opts) {
        Err(e) => assert!(FILE_CODES.contains(&e.code.as_str()), "{e}"),
        Ok(rows) => {
            rows_in_order(rows.iter().map(|r| r.row));
            for r in &rows {
                match &r.result {
                    Ok(s) => {
                        assert!(currency_ok(&s.currency), "{s:?}");
                        assert!(s.first_day <= s.last_day, "{s:?}");
                        assert!(!s.channel.is_empty(), "{s:?}");
                    }
                    Err(e) => assert!(!e.code.is_empty()),
                }
            }
        }
    }
});
