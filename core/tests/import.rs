//! CSV imports of conversions and spend: CRM header spellings, decimal commas, currency symbols,
//! date forms, per-row errors, and no panic on any input (proptest over random bytes).

use closeloop_core::import::{
    parse_amount, parse_conversions, parse_spend, parse_when, ConversionRecord, DateOrder, Decimal,
    ImportOptions, RowResult, SpendRecord,
};
use proptest::prelude::*;

/// 2026-10-11T00:00:00Z
const OCT11: i64 = 1_791_676_800_000;
const DAY: i64 = 86_400_000;
/// Days since the epoch of 2026-10-11.
const OCT11_DAY: i64 = OCT11 / DAY;

fn usd() -> ImportOptions {
    ImportOptions {
        default_currency: Some("USD".into()),
        ..ImportOptions::default()
    }
}

fn ok<T: std::fmt::Debug>(r: &RowResult<T>) -> &T {
    r.result
        .as_ref()
        .unwrap_or_else(|e| panic!("row {} refused: {e:?}", r.row))
}

fn err<T: std::fmt::Debug>(r: &RowResult<T>) -> (u64, &str) {
    match &r.result {
        Err(e) => {
            assert_eq!(e.row, r.row);
            (e.row, e.code.as_str())
        }
        Ok(v) => panic!("row {} accepted: {v:?}", r.row),
    }
}

fn conv(
    deal: &str,
    email: &str,
    revenue: i64,
    currency: &str,
    at: i64,
    stage: Option<&str>,
) -> ConversionRecord {
    ConversionRecord {
        deal_id: deal.into(),
        email: Some(email.into()),
        lead_id: None,
        revenue,
        currency: currency.into(),
        closed_at: at,
        stage: stage.map(str::to_owned),
        exchange_rate: None,
    }
}

#[test]
fn hubspot_deal_export() {
    let csv = "\u{feff}Record ID,Deal Name,Deal Stage,Close Date,Amount,Deal currency code,Associated Contact,Pipeline\n\
               9001,Acme,closedwon,2026-10-11 14:30,\"1,200.50\",USD,Ann Lee (Ann@Example.com),Sales\n\
               9002,Beta,Proposal Sent,2026-10-12,900,EUR,bob@example.com,Sales\n\
               9003,Gamma,closedlost,2026-10-12,100,USD,carl@example.com,Sales\n";
    let rows = parse_conversions(csv.as_bytes(), &ImportOptions::default()).expect("file");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].row, 2);
    assert_eq!(
        ok(&rows[0]),
        &conv(
            "9001",
            "ann@example.com",
            120_050,
            "USD",
            OCT11 + 14 * 3_600_000 + 30 * 60_000,
            None
        )
    );
    assert_eq!(
        ok(&rows[1]),
        &conv(
            "9002",
            "bob@example.com",
            90_000,
            "EUR",
            OCT11 + DAY,
            Some("proposal_sent")
        )
    );
    assert_eq!(err(&rows[2]), (4, "deal_lost"));
}

#[test]
fn salesforce_opportunity_export() {
    let csv = "Opportunity ID,Opportunity Name,Stage,Close Date,Amount,Opportunity Currency,Contact: Email\n\
               006A,Acme,Closed Won,10/11/2026,\"$2,000.00\",USD,ann@example.com\n\
               006B,Beta,Negotiation/Review,10/13/2026,$500.00,USD,bob@example.com\n";
    let rows = parse_conversions(csv.as_bytes(), &ImportOptions::default()).expect("file");
    // 10/13/2026 shows month-first, so 10/11/2026 is 11 October
    assert_eq!(
        ok(&rows[0]),
        &conv("006A", "ann@example.com", 200_000, "USD", OCT11, None)
    );
    assert_eq!(
        ok(&rows[1]),
        &conv(
            "006B",
            "bob@example.com",
            50_000,
            "USD",
            OCT11 + 2 * DAY,
            Some("negotiation_review")
        )
    );
}

#[test]
fn plain_columns_any_spelling() {
    let csv = "DEAL_ID ; lead id ; Revenue ; currency ; closed_at ; stage\n\
               d-1;lead-42;1.234,56;EUR;2026-10-11T09:00:00+02:00;\n";
    let rows = parse_conversions(csv.as_bytes(), &ImportOptions::default()).expect("file");
    let r = ok(&rows[0]);
    assert_eq!(r.lead_id.as_deref(), Some("lead-42"));
    assert_eq!(r.email, None);
    assert_eq!((r.revenue, r.currency.as_str()), (123_456, "EUR"));
    assert_eq!(r.closed_at, OCT11 + 7 * 3_600_000);
    assert_eq!(r.stage, None);
}

#[test]
fn decimal_commas_and_symbols() {
    let cases: &[(&str, i64, &str)] = &[
        ("$1,200.00", 120_000, "USD"),
        ("1.234,56 €", 123_456, "EUR"),
        ("€1.234,56", 123_456, "EUR"),
        ("£99", 9_900, "GBP"),
        ("USD 1,200.00", 120_000, "USD"),
        ("1 234,5 EUR", 123_450, "EUR"),
        ("1'234.56 CHF", 123_456, "CHF"),
        ("¥1200", 1_200, "JPY"),
        ("12,5", 1_250, "USD"),
        ("0.5", 50, "USD"),
        ("(12.00)", -1_200, "USD"),
        ("-12.00", -1_200, "USD"),
        ("1,234,567.89", 123_456_789, "USD"),
        ("1.234.567,89 EUR", 123_456_789, "EUR"),
        // "1.250" alone is ambiguous; the caller says the file uses decimal points
        ("KWD 1.250", 1_250, "KWD"),
    ];
    for (cell, minor, cur) in cases {
        let default = if *cur == "EUR" || *cur == "KWD" {
            None
        } else {
            Some("USD")
        };
        let decimal = (*cur == "KWD").then_some(Decimal::Point);
        let got = parse_amount(cell, default, decimal);
        assert_eq!(got, Ok((*minor, cur.to_string())), "{cell}");
    }
}

#[test]
fn amounts_refused_clearly() {
    for (cell, code) in [
        ("1,234", "ambiguous_amount"),
        ("1.234", "ambiguous_amount"),
        ("12.345", "ambiguous_amount"),
        ("1,23,456", "invalid_amount"),
        ("12.345,6.7", "invalid_amount"),
        ("abc", "invalid_amount"),
        ("", "invalid_amount"),
        ("$", "invalid_amount"),
        ("12.345.67", "invalid_amount"),
        ("1.005", "ambiguous_amount"),
        ("1.0055,", "invalid_amount"),
        ("99999999999999999999", "invalid_amount"),
        ("$€12", "invalid_amount"),
    ] {
        let got = parse_amount(cell, Some("USD"), None);
        assert_eq!(
            got.as_ref().map_err(|e| e.0.as_str()),
            Err(code),
            "{cell}: {got:?}"
        );
    }
    // too many decimals for the currency: refused, not rounded
    assert_eq!(
        parse_amount("1.005", Some("USD"), Some(Decimal::Point))
            .unwrap_err()
            .0,
        "amount_precision"
    );
    assert_eq!(
        parse_amount("¥12.5", None, None).unwrap_err().0,
        "amount_precision"
    );
    // trailing zeros beyond the currency's decimals are fine
    assert_eq!(
        parse_amount("1.2300", Some("USD"), None),
        Ok((123, "USD".into()))
    );
    assert_eq!(
        parse_amount("12", None, None).unwrap_err().0,
        "missing_currency"
    );
}

#[test]
fn ambiguous_amounts_are_resolved_by_the_rest_of_the_file() {
    // decimal commas shown by "12,50": "1.234" is one thousand two hundred and thirty-four
    let csv = "deal_id,email,revenue,currency,closed_at\n\
               a,a@example.com,\"12,50\",EUR,2026-10-11\n\
               b,b@example.com,1.234,EUR,2026-10-11\n";
    let rows = parse_conversions(csv.as_bytes(), &ImportOptions::default()).expect("file");
    assert_eq!(ok(&rows[0]).revenue, 1_250);
    assert_eq!(ok(&rows[1]).revenue, 123_400);
    // the same ambiguous cell in a file that shows decimal points
    let csv = "deal_id,email,revenue,currency,closed_at\n\
               a,a@example.com,12.50,USD,2026-10-11\n\
               b,b@example.com,\"1,234\",USD,2026-10-11\n";
    let rows = parse_conversions(csv.as_bytes(), &ImportOptions::default()).expect("file");
    assert_eq!(ok(&rows[1]).revenue, 123_400);
    // a file that shows both styles decides nothing: the ambiguous row is refused, others kept
    let csv = "deal_id,email,revenue,currency,closed_at\n\
               a,a@example.com,12.50,USD,2026-10-11\n\
               b,b@example.com,\"12,50\",USD,2026-10-11\n\
               c,c@example.com,\"1,234\",USD,2026-10-11\n";
    let rows = parse_conversions(csv.as_bytes(), &ImportOptions::default()).expect("file");
    assert_eq!(ok(&rows[0]).revenue, 1_250);
    assert_eq!(ok(&rows[1]).revenue, 1_250);
    assert_eq!(err(&rows[2]), (4, "ambiguous_amount"));
}

#[test]
fn dates() {
    assert_eq!(parse_when("2026-10-11", None), Ok(OCT11));
    assert_eq!(parse_when("2026/10/11", None), Ok(OCT11));
    assert_eq!(parse_when("2026-10-11T00:00:00Z", None), Ok(OCT11));
    assert_eq!(parse_when("2026-10-11T02:00:00+02:00", None), Ok(OCT11));
    assert_eq!(parse_when("2026-10-11 00:01", None), Ok(OCT11 + 60_000));
    assert_eq!(parse_when("13.10.2026", None), Ok(OCT11 + 2 * DAY));
    assert_eq!(parse_when("10/13/2026", None), Ok(OCT11 + 2 * DAY));
    assert_eq!(parse_when("11/11/2026", None), Ok(OCT11 + 31 * DAY));
    assert_eq!(
        parse_when("11/10/2026", Some(DateOrder::DayMonth)),
        Ok(OCT11)
    );
    assert_eq!(
        parse_when("11/10/2026 23:59:59", Some(DateOrder::DayMonth)),
        Ok(OCT11 + DAY - 1_000)
    );
    for (cell, code) in [
        ("11/10/2026", "ambiguous_date"),
        ("11/10/26", "invalid_date"),
        ("2026-02-30", "invalid_date"),
        ("31/02/2026", "invalid_date"),
        ("45000", "invalid_date"),
        ("yesterday", "invalid_date"),
        ("2026-10-11 25:00", "invalid_date"),
        ("", "invalid_date"),
    ] {
        assert_eq!(
            parse_when(cell, None).map_err(|e| e.0),
            Err(code.to_owned()),
            "{cell}"
        );
    }
}

#[test]
fn ambiguous_dates_are_resolved_by_the_rest_of_the_file() {
    let csv = "deal_id,email,revenue,currency,closed_at\n\
               a,a@example.com,10,USD,11/10/2026\n\
               b,b@example.com,10,USD,25/10/2026\n";
    let rows = parse_conversions(csv.as_bytes(), &ImportOptions::default()).expect("file");
    assert_eq!(ok(&rows[0]).closed_at, OCT11, "25/10 shows day-first");
    let csv = "deal_id,email,revenue,currency,closed_at\na,a@example.com,10,USD,11/10/2026\n";
    let rows = parse_conversions(csv.as_bytes(), &ImportOptions::default()).expect("file");
    assert_eq!(err(&rows[0]), (2, "ambiguous_date"));
}

#[test]
fn row_errors_keep_the_good_rows() {
    let csv = "deal_id,email,revenue,currency,closed_at,exchange_rate\n\
               ok-1,ann@example.com,10.00,USD,2026-10-11,\n\
               ,ann@example.com,10.00,USD,2026-10-11,\n\
               bad-email,not-an-email,10.00,USD,2026-10-11,\n\
               neg,ann@example.com,-10.00,USD,2026-10-11,\n\
               mismatch,ann@example.com,€10.00,USD,2026-10-11,\n\
               badcur,ann@example.com,10.00,dollars,2026-10-11,\n\
               nodate,ann@example.com,10.00,USD,,\n\
               rate,ann@example.com,10.00,EUR,2026-10-11,\"1,08\"\n\
               badrate,ann@example.com,10.00,EUR,2026-10-11,-1\n\
               short,ann@example.com\n";
    let rows = parse_conversions(csv.as_bytes(), &ImportOptions::default()).expect("file");
    let codes: Vec<(u64, &str)> = rows.iter().filter(|r| r.result.is_err()).map(err).collect();
    assert_eq!(
        codes,
        [
            (3, "missing_value"),
            (4, "invalid_email"),
            (5, "negative_amount"),
            (6, "currency_mismatch"),
            (7, "invalid_currency"),
            (8, "missing_value"),
            (10, "invalid_rate"),
            (11, "missing_value"),
        ]
    );
    assert_eq!(ok(&rows[0]).revenue, 1_000);
    assert_eq!(ok(&rows[7]).exchange_rate, Some(1.08));
    // messages name the column
    let msg = &rows[2].result.as_ref().unwrap_err().message;
    assert!(msg.contains("email"), "{msg}");
}

#[test]
fn file_errors() {
    let e = parse_conversions(b"", &usd()).unwrap_err();
    assert_eq!(e.code, "empty_file");
    let e = parse_conversions(
        b"deal_id,email,closed_at\nx,a@example.com,2026-10-11\n",
        &usd(),
    )
    .unwrap_err();
    assert_eq!(e.code, "missing_column");
    assert!(e.message.contains("revenue"), "{}", e.message);
    let e = parse_conversions(b"deal_id,revenue,closed_at\n", &usd()).unwrap_err();
    assert!(e.message.contains("email or lead_id"), "{}", e.message);
    let e = parse_conversions(b"deal\xff_id,email\n", &usd()).unwrap_err();
    assert_eq!(e.code, "invalid_utf8");
    let e = parse_spend(b"amount,date\n1,2026-10-11\n", &usd()).unwrap_err();
    assert!(e.message.contains("channel"), "{}", e.message);
    // a header only is fine: no rows
    assert!(
        parse_conversions(b"deal_id,email,revenue,closed_at\n", &usd())
            .expect("file")
            .is_empty()
    );
}

#[test]
fn non_utf8_row_is_a_row_error() {
    let csv = b"deal_id,email,revenue,closed_at\nd1,a@example.com,1,2026-10-11\nd2,\xff@example.com,1,2026-10-11\n";
    let rows = parse_conversions(csv, &usd()).expect("file");
    assert_eq!(ok(&rows[0]).currency, "USD");
    assert_eq!(err(&rows[1]), (3, "invalid_utf8"));
}

#[test]
fn spend_rows() {
    let csv = "Campaign name,Reporting starts,Reporting ends,Amount spent (EUR),channel,source\n\
               brand,2026-10-11,2026-10-20,\"1.000,00\",Paid Social,facebook\n\
               retarget,2026-10-11,2026-10-11,\"(5,00)\",Paid Social,facebook\n\
               bad,2026-10-12,2026-10-11,\"5,00\",Paid Social,facebook\n";
    let rows = parse_spend(csv.as_bytes(), &ImportOptions::default()).expect("file");
    assert_eq!(
        ok(&rows[0]),
        &SpendRecord {
            amount: 100_000,
            currency: "EUR".into(),
            first_day: OCT11_DAY,
            last_day: OCT11_DAY + 9,
            channel: "Paid Social".into(),
            source: Some("facebook".into()),
            campaign: Some("brand".into()),
            exchange_rate: None,
        }
    );
    assert_eq!(ok(&rows[1]).amount, -500, "a correction may be negative");
    assert_eq!(err(&rows[2]), (4, "invalid_period"));

    let csv = "Day\tCampaign\tCost\tCurrency code\n2026-10-11\tsearch-brand\t12.34\tUSD\n";
    let opts = ImportOptions {
        default_channel: Some("Paid Search".into()),
        ..ImportOptions::default()
    };
    let rows = parse_spend(csv.as_bytes(), &opts).expect("tab-separated Google Ads export");
    let r = ok(&rows[0]);
    assert_eq!(
        (r.amount, r.channel.as_str(), r.first_day, r.last_day),
        (1_234, "Paid Search", OCT11_DAY, OCT11_DAY)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn conversions_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_conversions(&bytes, &ImportOptions::default());
        let _ = parse_spend(&bytes, &usd());
    }

    #[test]
    fn csv_like_input_never_panics(
        cells in proptest::collection::vec("[-0-9a-zA-Z.,;$€£¥()' /:@\"\n]{0,12}", 0..40)
    ) {
        let body = format!("deal_id,email,revenue,currency,closed_at,stage\n{}", cells.join(","));
        let _ = parse_conversions(body.as_bytes(), &ImportOptions::default());
        let body = format!("date,start,end,channel,amount,currency\n{}", cells.join(";"));
        let _ = parse_spend(body.as_bytes(), &ImportOptions::default());
    }

    #[test]
    fn cells_never_panic(cell in "\\PC{0,30}") {
        let _ = parse_amount(&cell, Some("USD"), None);
        let _ = parse_amount(&cell, None, Some(Decimal::Comma));
        let _ = parse_when(&cell, None);
        let _ = parse_when(&cell, Some(DateOrder::MonthDay));
    }

    #[test]
    fn written_amounts_read_back(units in 0i64..10_000_000_000, comma in any::<bool>()) {
        // write an amount with two decimals and grouping, as a spreadsheet would
        let int = (units / 100).to_string();
        let mut grouped = String::new();
        for (i, c) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                grouped.push(if comma { '.' } else { ',' });
            }
            grouped.push(c);
        }
        let text = format!("{grouped}{}{:02}", if comma { ',' } else { '.' }, units % 100);
        prop_assert_eq!(parse_amount(&text, Some("USD"), None), Ok((units, "USD".to_string())));
    }
}

#[test]
fn rows_are_numbered_by_their_line() {
    let csv = "deal_id,email,revenue,closed_at\n\nd1,a@example.com,1,2026-10-11\n,,,\nd2,\"multi\nline\",1,2026-10-11\nd3,,1,2026-10-11\n";
    let rows = parse_conversions(csv.as_bytes(), &usd()).expect("file");
    let numbers: Vec<u64> = rows.iter().map(|r| r.row).collect();
    assert_eq!(numbers, [3, 5, 7]);
    assert_eq!(ok(&rows[0]).deal_id, "d1");
    assert_eq!(err(&rows[1]), (5, "invalid_email"));
    assert_eq!(err(&rows[2]), (7, "missing_value"));
}

/// Found by the `csv_import` fuzz target: the CSV reader splits rows at a lone `\r`
/// (old Mac spreadsheet exports) but numbers lines by `\n` only, so every row of such a
/// file had the same number. Scenario: a header and three rows ended by `\r`, a blank
/// `\r` line before the third, then one row ended by `\r\n`. Expected by hand: rows 2, 3,
/// 5 and 6.
#[test]
fn rows_after_lone_carriage_returns_are_numbered_by_their_line() {
    let csv = "deal_id,email,revenue,closed_at\rd1,a@example.com,1,2026-10-11\rd2,b@example.com,2,2026-10-11\r\rd3,c@example.com,3,2026-10-11\r\nd4,,4,2026-10-11\r\n";
    let rows = parse_conversions(csv.as_bytes(), &usd()).expect("file");
    let numbers: Vec<u64> = rows.iter().map(|r| r.row).collect();
    assert_eq!(numbers, [2, 3, 5, 6]);
    assert_eq!(ok(&rows[2]).deal_id, "d3");
    assert_eq!(err(&rows[3]), (6, "missing_value"));
}

#[test]
fn json_bodies_follow_the_csv_rules() {
    use closeloop_core::import::{conversion_from_json, spend_from_json};
    use serde_json::json;
    let o = ImportOptions::default();
    let rec = conversion_from_json(
        &json!({"deal_id": "d1", "email": "bob@example.com", "revenue": "1.234,50 €",
                "closed_at": "2026-10-11", "stage": "Opportunity", "extra": [1, 2]}),
        &o,
    )
    .expect("record");
    assert_eq!(
        rec,
        conv(
            "d1",
            "bob@example.com",
            123_450,
            "EUR",
            OCT11,
            Some("opportunity")
        )
    );
    let rec = conversion_from_json(
        &json!({"deal_id": "d2", "lead_id": "L7", "revenue": 3000, "currency": "JPY",
                "closed_at": "2026-10-11T09:00:00+09:00", "exchange_rate": 0.0067}),
        &o,
    )
    .expect("record");
    assert_eq!(
        (rec.revenue, rec.closed_at, rec.exchange_rate),
        (3_000, OCT11, Some(0.0067))
    );
    for (body, code) in [
        (json!([1]), "invalid_body"),
        (
            json!({"deal_id": "d", "email": "a@example.com", "revenue": true, "currency": "USD", "closed_at": "2026-10-11"}),
            "invalid_value",
        ),
        (
            json!({"deal_id": "d", "email": "a@example.com", "revenue": 1.005, "currency": "USD", "closed_at": "2026-10-11"}),
            "amount_precision",
        ),
        (
            json!({"deal_id": "d", "email": "a@example.com", "revenue": -5, "currency": "USD", "closed_at": "2026-10-11"}),
            "negative_amount",
        ),
        (
            json!({"deal_id": "d", "email": "a@example.com", "revenue": 5, "currency": "USD", "closed_at": "11/10/2026"}),
            "ambiguous_date",
        ),
        (
            json!({"deal_id": "d", "email": "a@example.com", "revenue": 5, "closed_at": "2026-10-11"}),
            "missing_currency",
        ),
        (
            json!({"deal_id": "d", "revenue": 5, "currency": "USD", "closed_at": "2026-10-11"}),
            "missing_value",
        ),
        (
            json!({"deal_id": "d", "email": "a@example.com", "revenue": 5, "currency": "USD", "closed_at": "2026-10-11", "stage": "Closed Lost"}),
            "deal_lost",
        ),
    ] {
        let e = conversion_from_json(&body, &o).expect_err(code);
        assert_eq!((e.row, e.code.as_str()), (0, code), "{body}: {}", e.message);
    }
    let rec = spend_from_json(
        &json!({"channel": "Referral", "amount": "200.00", "currency": "USD", "date": "2026-10-11", "source": "partner.example.org"}),
        &o,
    )
    .expect("spend");
    assert_eq!(
        (
            rec.amount,
            rec.first_day,
            rec.last_day,
            rec.source.as_deref()
        ),
        (20_000, OCT11_DAY, OCT11_DAY, Some("partner.example.org"))
    );
    let e = spend_from_json(&json!({"channel": "x", "amount": 1, "currency": "USD", "start": "2026-10-12", "end": "2026-10-11"}), &o)
        .expect_err("period");
    assert_eq!(e.code, "invalid_period");
}
