//! CSV imports: conversions (a CRM or spreadsheet export) and spend, parsed into records with a
//! per-row result. Pure: bytes in, values out; never panics on any input.
//!
//! The CSV itself is read by the [`csv`] crate (MIT / Unlicense). This module decides what the
//! cells mean.
//!
//! # The file
//!
//! - UTF-8 (a byte-order mark is skipped); a header row, then one record per row.
//! - The delimiter is guessed from the header line: `;` when it has more `;` than `,`
//!   (spreadsheets in decimal-comma locales write that), a tab when it has tabs and neither,
//!   else `,`. Quoted fields may contain delimiters and newlines.
//! - A row is numbered by the line on which it starts, as a text editor (and, for files
//!   without line breaks inside quoted cells, a spreadsheet) shows it: the header is row 1.
//! - Blank rows, and rows whose cells are all empty, are skipped silently (they keep their line
//!   numbers, so the rows after them do too). At most [`MAX_ROWS`] records.
//! - A file-level problem (not UTF-8 in the header, no header, a required column missing,
//!   too many rows) is a [`FileError`]; everything else is per row, so good rows are kept.
//!
//! # Column names
//!
//! Header names are compared after lower-casing and dropping everything that is not a letter
//! or a digit (`Deal ID`, `deal_id`, `DealId` and `Contact: Email` → `dealid`, `contactemail`).
//! A trailing three-letter code in parentheses (`Amount spent (USD)`) is taken off the name
//! and becomes the column's currency. When several columns map to one field, the alias that
//! comes first in the lists below wins. Unknown columns are ignored.
//!
//! Conversions ([`CONVERSION_COLUMNS`]):
//! - `deal_id` (required): `deal_id`, `Opportunity ID` (Salesforce), `Deal ID`, `Record ID`
//!   (HubSpot), `external_id`, `id`;
//! - `email`: `email`, `Contact: Email` (Salesforce), `Associated Contact` (HubSpot; the
//!   email is taken out of `Ann Lee (ann@example.com)`), `contact_email`, `Email Address`, ...;
//! - `lead_id`: `lead_id` (Closeloop's own lead id). One of `email` / `lead_id` is required;
//! - `revenue` (required): `revenue`, `Amount`, `Deal Amount`, `value`, `Amount in company
//!   currency`;
//! - `currency`: `currency`, `Deal currency code` (HubSpot), `Opportunity Currency`
//!   (Salesforce), `currency_code`, ...;
//! - `closed_at` (required): `closed_at`, `Close Date`, `closedate`, `date`, ...;
//! - `stage`: `stage`, `Deal Stage`, `Stage`, `status`;
//! - `exchange_rate`: `exchange_rate`, `rate`, `fx_rate` (the multiplier from the row's
//!   currency to the site's reporting currency; the edge refuses a foreign currency without one).
//!
//! Spend ([`SPEND_COLUMNS`]): `amount` (`amount`, `spend`, `cost`, `Amount spent`), `currency`
//! (`currency`, `Currency code`), `date` (`date`, `day`), or a range `start` (`start`,
//! `start_date`, `Reporting starts`) and `end` (`end`, `end_date`, `Reporting ends`),
//! `channel`, `source`, `campaign` (`Campaign name`), `exchange_rate`.
//!
//! # Amounts
//!
//! An amount becomes integer **minor units** of its currency (cents; none for JPY, three
//! decimals for BHD, KWD...: [`currency_exponent`]), exactly, with no floating point:
//! - currency symbols and codes around the number are recognised and taken off: `$`, `€`, `£`,
//!   `¥`, `US$`, `C$`, `A$`, and ISO codes (`1200 EUR`, `USD 1,200.00`). `$` means the
//!   default currency when that is a dollar currency (CAD, AUD...), USD otherwise; `¥` means
//!   the default currency when it is JPY or CNY, JPY otherwise. A symbol that disagrees with
//!   the currency column is an error (`currency_mismatch`);
//! - spaces, no-break spaces and apostrophes are digit grouping (`1 234,56`, `1'234.56`);
//! - with both `.` and `,`, the last one is the decimal separator (`1.234,56` and `1,234.56`
//!   are both 1234.56); several of one kind are grouping (`1,234,567`); a single one followed
//!   by 1, 2 or (with two kinds) any digits is the decimal separator;
//! - a single `,` or `.` followed by exactly three digits (`1,234`, `1.234`) is **ambiguous**.
//!   It is resolved by the file: if other amounts of the same file show which separator is
//!   decimal (a `1.234,56`, a `12,5`), that one is used; if the file shows both or neither, the
//!   row is refused with `ambiguous_amount` (set [`ImportOptions::decimal`] to decide);
//! - grouping must be in threes (`1,23,456` is refused); more decimals than the currency has
//!   are refused (`amount_precision`), never rounded;
//! - a leading `-` or accounting parentheses `(12.00)` make it negative: refused for revenue
//!   (`negative_amount`), allowed for spend (a correction).
//!
//! # Dates
//!
//! - RFC 3339 (`2026-10-11T09:30:00Z`, `+02:00` offsets) exactly;
//! - `YYYY-MM-DD` or `YYYY/MM/DD`, optionally followed by ` HH:MM[:SS]` (UTC);
//! - day, month and four-digit year with `/`, `.` or `-` (`11/10/2026`, `11.10.2026`),
//!   optionally with ` HH:MM[:SS]`: when the first number is above 12 it is the day (EU
//!   order), when the second is, the month comes first (US order); when both are ≤ 12 and
//!   differ, the file decides as for amounts (another date of the file with a number above 12
//!   shows the order; dates of one file use one order), else the row is refused with
//!   `ambiguous_date` (set [`ImportOptions::date_order`]). Two-digit years are refused.
//!
//! Dates without a time are the day's start, 00:00 UTC.
//!
//! # Stages
//!
//! An empty stage, or one meaning won (`won`, `closed won`, `closedwon`, `Closed Won`,
//! `customer`), is a customer conversion (`stage = None`). A lost deal (`lost`,
//! `closed lost`, `closedlost`) is not a conversion: the row is refused with `deal_lost` so
//! the answer says why it was not kept. Any other stage is kept as its name, lower-cased with
//! runs of non-alphanumerics turned into `_` (`Proposal Sent` → `proposal_sent`); the
//! reports can select it (`conversion=proposal_sent`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::identity::normalize_email;
use crate::time::{
    days_from_civil, parse_rfc3339, MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_SECOND,
};

/// Most records one import may have.
pub const MAX_ROWS: usize = 50_000;
/// Longest period one spend row may cover, in days (ten years).
pub const MAX_SPEND_DAYS: i64 = 3660;
/// Longest cell kept (longer ones are an error for identifiers and refused).
pub const MAX_CELL_LEN: usize = 512;

/// The aliases of each conversions field, in priority order (normalised spelling).
pub const CONVERSION_COLUMNS: &[(&str, &[&str])] = &[
    (
        "deal_id",
        &[
            "dealid",
            "opportunityid",
            "recordid",
            "externalid",
            "externaldealid",
            "id",
        ],
    ),
    (
        "email",
        &[
            "email",
            "contactemail",
            "emailaddress",
            "associatedcontactemail",
            "primarycontactemail",
            "leademail",
            "customeremail",
            "associatedcontact",
            "contact",
        ],
    ),
    ("lead_id", &["leadid", "closeloopleadid"]),
    (
        "revenue",
        &[
            "revenue",
            "amount",
            "dealamount",
            "value",
            "dealvalue",
            "amountincompanycurrency",
        ],
    ),
    (
        "currency",
        &[
            "currency",
            "currencycode",
            "dealcurrencycode",
            "dealcurrency",
            "opportunitycurrency",
            "amountcurrency",
            "isocurrencycode",
        ],
    ),
    (
        "closed_at",
        &[
            "closedat",
            "closedate",
            "closeddate",
            "dateclosed",
            "wonat",
            "convertedat",
            "date",
        ],
    ),
    (
        "stage",
        &[
            "stage",
            "dealstage",
            "opportunitystage",
            "pipelinestage",
            "status",
        ],
    ),
    (
        "exchange_rate",
        &["exchangerate", "rate", "fxrate", "conversionrate"],
    ),
];

/// The aliases of each spend field, in priority order (normalised spelling).
pub const SPEND_COLUMNS: &[(&str, &[&str])] = &[
    (
        "amount",
        &["amount", "spend", "cost", "amountspent", "spent"],
    ),
    ("currency", &["currency", "currencycode", "isocurrencycode"]),
    ("date", &["date", "day"]),
    (
        "start",
        &[
            "start",
            "startdate",
            "from",
            "periodstart",
            "reportingstarts",
        ],
    ),
    (
        "end",
        &["end", "enddate", "to", "periodend", "reportingends"],
    ),
    (
        "channel",
        &["channel", "channelgroup", "defaultchannelgroup"],
    ),
    ("source", &["source", "utmsource", "network", "platform"]),
    ("campaign", &["campaign", "campaignname", "utmcampaign"]),
    (
        "exchange_rate",
        &["exchangerate", "rate", "fxrate", "conversionrate"],
    ),
];

/// Which character is the decimal separator of a file's amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decimal {
    /// `1,234.56`
    Point,
    /// `1.234,56`
    Comma,
}

/// The order of day and month in `dd/mm/yyyy`-like dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateOrder {
    /// Day first (`11/10/2026` = 11 October).
    DayMonth,
    /// Month first (`10/11/2026` = 11 October).
    MonthDay,
}

/// What the caller knows about the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportOptions {
    /// The currency of rows that name none (usually the site's reporting currency).
    pub default_currency: Option<String>,
    /// The decimal separator, when the caller knows it (else detected per file).
    pub decimal: Option<Decimal>,
    /// The date order, when the caller knows it (else detected per file).
    pub date_order: Option<DateOrder>,
    /// The channel of spend rows that name none.
    pub default_channel: Option<String>,
}

/// A problem with the whole file: nothing of it is imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileError {
    /// `empty_file`, `invalid_csv`, `invalid_utf8`, `missing_column`, `too_many_rows`.
    pub code: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for FileError {}

/// A problem with one row: that row is not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// The line on which the row starts (the header is row 1).
    pub row: u64,
    /// Stable code: `missing_value`, `invalid_amount`, `ambiguous_amount`,
    /// `amount_precision`, `negative_amount`, `invalid_currency`, `currency_mismatch`,
    /// `invalid_date`, `ambiguous_date`, `invalid_email`, `deal_lost`, `invalid_period`,
    /// `invalid_rate`, `value_too_long`, `invalid_utf8`, `invalid_csv`.
    pub code: String,
    /// What is wrong, naming the column and (a bounded part of) the value.
    pub message: String,
}

/// One parsed row: its number and its record or error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowResult<T> {
    /// The line on which the row starts (the header is row 1).
    pub row: u64,
    /// The record, or why the row was refused.
    pub result: Result<T, RowError>,
}

/// One conversion from a CSV row (what `POST /v1/sites/{site}/conversions` takes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversionRecord {
    /// The CRM's deal id (the idempotency key with the stage).
    pub deal_id: String,
    /// The lead's email, normalised ([`normalize_email`]).
    pub email: Option<String>,
    /// Closeloop's lead id.
    pub lead_id: Option<String>,
    /// Revenue in integer minor units of `currency`.
    pub revenue: i64,
    /// ISO 4217 code, upper case.
    pub currency: String,
    /// The close (or stage) time, ms since the epoch.
    pub closed_at: i64,
    /// `None` for a won deal (a customer conversion), else the stage's normalised name.
    pub stage: Option<String>,
    /// The rate from `currency` to the reporting currency, if given.
    pub exchange_rate: Option<f64>,
}

/// One spend row from a CSV row (what `POST /v1/sites/{site}/spend` takes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpendRecord {
    /// Amount in integer minor units of `currency` (may be negative: a correction).
    pub amount: i64,
    /// ISO 4217 code, upper case.
    pub currency: String,
    /// First day of the period (days since 1970-01-01 UTC).
    pub first_day: i64,
    /// Last day of the period (inclusive).
    pub last_day: i64,
    /// The channel group.
    pub channel: String,
    /// Source, if given.
    pub source: Option<String>,
    /// Campaign, if given.
    pub campaign: Option<String>,
    /// The rate from `currency` to the reporting currency, if given.
    pub exchange_rate: Option<f64>,
}

/// Digits after the decimal point of an ISO 4217 currency (2 unless listed).
///
/// ```
/// use closeloop_core::import::currency_exponent;
/// assert_eq!((currency_exponent("USD"), currency_exponent("jpy"), currency_exponent("KWD")), (2, 0, 3));
/// ```
pub fn currency_exponent(code: &str) -> u32 {
    const ZERO: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
        "VUV", "XAF", "XOF", "XPF",
    ];
    const THREE: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    let code = code.to_ascii_uppercase();
    if ZERO.contains(&code.as_str()) {
        0
    } else if THREE.contains(&code.as_str()) {
        3
    } else {
        2
    }
}

/// Whether a string is a plausible ISO 4217 code (three ASCII letters).
fn is_currency_code(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Normalises a header name: lower case, letters and digits only.
fn norm_header(h: &str) -> String {
    h.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A header with an optional `(XXX)` currency suffix split off.
fn split_header(h: &str) -> (String, Option<String>) {
    let t = h.trim();
    if let Some(open) = t.rfind('(') {
        let inner = t.get(open + 1..).unwrap_or("").trim_end_matches(')').trim();
        if t.ends_with(')') && is_currency_code(inner) {
            return (
                norm_header(t.get(..open).unwrap_or("")),
                Some(inner.to_ascii_uppercase()),
            );
        }
    }
    (norm_header(t), None)
}

/// Which column holds each field.
struct Columns {
    by_field: BTreeMap<&'static str, (usize, Option<String>)>,
}

impl Columns {
    fn map(headers: &[String], spec: &[(&'static str, &[&'static str])]) -> Columns {
        let split: Vec<(String, Option<String>)> =
            headers.iter().map(|h| split_header(h)).collect();
        let mut by_field = BTreeMap::new();
        for (field, aliases) in spec {
            'aliases: for alias in *aliases {
                for (i, (name, cur)) in split.iter().enumerate() {
                    if name == alias {
                        by_field.insert(*field, (i, cur.clone()));
                        break 'aliases;
                    }
                }
            }
        }
        Columns { by_field }
    }

    fn has(&self, field: &str) -> bool {
        self.by_field.contains_key(field)
    }

    fn get<'r>(&self, field: &str, row: &'r [String]) -> Option<&'r str> {
        self.by_field
            .get(field)
            .and_then(|(i, _)| row.get(*i))
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    fn currency_hint(&self, field: &str) -> Option<&str> {
        self.by_field.get(field).and_then(|(_, c)| c.as_deref())
    }
}

/// The file read into a header and rows of cells (row number, cells or error).
type Table = (Vec<String>, Vec<(u64, Result<Vec<String>, RowError>)>);

fn read_table(input: &[u8]) -> Result<Table, FileError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let first_line = input.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let count = |c: u8| first_line.iter().filter(|b| **b == c).count();
    let (commas, semis, tabs) = (count(b','), count(b';'), count(b'\t'));
    let delimiter = if semis > commas {
        b';'
    } else if tabs > 0 && commas == 0 && semis == 0 {
        b'\t'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut records = reader.byte_records();
    let header = loop {
        match records.next() {
            None => {
                return Err(FileError {
                    code: "empty_file".into(),
                    message: "the file has no header row".into(),
                })
            }
            Some(Err(e)) => {
                return Err(FileError {
                    code: "invalid_csv".into(),
                    message: format!("the header row is not valid CSV: {e}"),
                })
            }
            Some(Ok(r)) if r.iter().all(|c| c.iter().all(u8::is_ascii_whitespace)) => continue,
            Some(Ok(r)) => break r,
        }
    };
    let header: Vec<String> = header
        .iter()
        .map(|c| {
            std::str::from_utf8(c)
                .map(str::to_owned)
                .map_err(|_| FileError {
                    code: "invalid_utf8".into(),
                    message: "the header row is not UTF-8".into(),
                })
        })
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    let mut last_row = 1u64;
    // Lines are counted here, not taken from the reader: it counts `\n` only, so in a
    // file with lone `\r` line ends (old Mac spreadsheet exports, which the reader does
    // split into rows) every row would get the same number (found by the `csv_import`
    // fuzz target).
    let mut lines = LineCounter::default();
    for rec in records {
        let position = match &rec {
            Ok(r) => r.position().cloned(),
            Err(e) => e.position().cloned(),
        };
        // The reader's position is where it started reading, before any blank lines it
        // skipped; count those so the row is the line on which the record really starts.
        let row = position.map_or_else(
            || last_row.saturating_add(1),
            |p| {
                let start = usize::try_from(p.byte()).unwrap_or(usize::MAX);
                let blank = input.get(start..).map_or(0, |rest| {
                    let n = rest
                        .iter()
                        .take_while(|b| matches!(b, b'\n' | b'\r'))
                        .count();
                    line_ends(input, start, start + n)
                });
                lines.line_at(input, start).saturating_add(blank)
            },
        );
        last_row = row;
        let cells = match rec {
            Err(e) => Err(RowError {
                row,
                code: "invalid_csv".into(),
                message: format!("row {row} is not valid CSV: {e}"),
            }),
            Ok(r) => {
                if r.iter().all(|c| c.iter().all(u8::is_ascii_whitespace)) {
                    continue;
                }
                r.iter()
                    .map(|c| std::str::from_utf8(c).map(str::to_owned))
                    .collect::<Result<Vec<String>, _>>()
                    .map_err(|_| RowError {
                        row,
                        code: "invalid_utf8".into(),
                        message: format!("row {row} is not UTF-8 text"),
                    })
            }
        };
        rows.push((row, cells));
        if rows.len() > MAX_ROWS {
            return Err(FileError {
                code: "too_many_rows".into(),
                message: format!("the file has more than {MAX_ROWS} rows; split it"),
            });
        }
    }
    Ok((header, rows))
}

/// Line ends (`\r\n`, `\n` or a lone `\r`, as the CSV reader splits rows) in
/// `input[from..to]`; a `\r` right before `to` looks at the byte after it.
fn line_ends(input: &[u8], from: usize, to: usize) -> u64 {
    let to = to.min(input.len());
    let from = from.min(to);
    let mut n = 0u64;
    for i in from..to {
        match input[i] {
            b'\n' => n += 1,
            b'\r' if input.get(i + 1) != Some(&b'\n') => n += 1,
            _ => {}
        }
    }
    n
}

/// The line number (1-based) of a byte offset, counted forward from the last offset
/// asked (rows come in file order, so the whole file is scanned once).
#[derive(Default)]
struct LineCounter {
    byte: usize,
    ends: u64,
}

impl LineCounter {
    fn line_at(&mut self, input: &[u8], byte: usize) -> u64 {
        if byte < self.byte {
            *self = LineCounter::default();
        }
        self.ends += line_ends(input, self.byte, byte);
        self.byte = byte.min(input.len()).max(self.byte);
        self.ends + 1
    }
}

fn row_err(row: u64, code: &str, message: String) -> RowError {
    RowError {
        row,
        code: code.to_owned(),
        message,
    }
}

/// A value shown in a message: at most 40 characters.
fn shown(v: &str) -> String {
    let s: String = v.chars().take(40).collect();
    if v.chars().count() > 40 {
        format!("{s}…")
    } else {
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Amounts
// ---------------------------------------------------------------------------------------------

/// An amount as written: sign, the digits of the integer and fraction parts, and which
/// separator reading it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawAmount {
    negative: bool,
    /// Currency named by a symbol or code in the cell.
    currency: Option<String>,
    /// The numeric text, with spaces and apostrophes removed.
    number: String,
}

/// What a number's separators say about the decimal separator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evidence {
    /// No separator at all, or nothing that decides.
    None,
    /// Shows this decimal separator.
    Shows(Decimal),
    /// `1,234` / `1.234`: needs the file's decision.
    Ambiguous,
}

fn split_amount(cell: &str, default_currency: Option<&str>) -> Result<RawAmount, &'static str> {
    let mut s = cell.trim().to_owned();
    let mut negative = false;
    if s.starts_with('(') && s.ends_with(')') {
        negative = true;
        s = s
            .get(1..s.len().saturating_sub(1))
            .unwrap_or("")
            .trim()
            .to_owned();
    }
    let mut currency: Option<String> = None;
    let dollar = || {
        const DOLLARS: &[&str] = &["USD", "CAD", "AUD", "NZD", "SGD", "HKD", "MXN"];
        match default_currency {
            Some(d) if DOLLARS.contains(&d.to_ascii_uppercase().as_str()) => d.to_ascii_uppercase(),
            _ => "USD".to_owned(),
        }
    };
    // peel symbols / codes / signs from both ends until a digit is reached
    loop {
        let t = s.trim();
        if t.is_empty() {
            break;
        }
        let mut changed = false;
        for (prefix, code) in [
            ("US$", "USD"),
            ("C$", "CAD"),
            ("CA$", "CAD"),
            ("A$", "AUD"),
            ("AU$", "AUD"),
            ("NZ$", "NZD"),
        ] {
            if let Some(rest) = t.strip_prefix(prefix).or_else(|| t.strip_suffix(prefix)) {
                set_currency(&mut currency, code)?;
                s = rest.to_owned();
                changed = true;
                break;
            }
        }
        if changed {
            continue;
        }
        let t = s.trim();
        let first = t.chars().next();
        let last = t.chars().last();
        let symbol = |c: char| -> Option<String> {
            match c {
                '$' => Some(dollar()),
                '€' => Some("EUR".into()),
                '£' => Some("GBP".into()),
                '¥' => Some(match default_currency.map(str::to_ascii_uppercase) {
                    Some(d) if d == "CNY" => d,
                    _ => "JPY".into(),
                }),
                _ => None,
            }
        };
        if let Some(c) = first.filter(|c| *c == '-' || *c == '+') {
            if c == '-' {
                if negative {
                    return Err("two minus signs");
                }
                negative = true;
            }
            s = t.get(1..).unwrap_or("").to_owned();
            continue;
        }
        if let Some((c, code)) = first.and_then(|c| symbol(c).map(|code| (c, code))) {
            set_currency(&mut currency, &code)?;
            s = t.get(c.len_utf8()..).unwrap_or("").to_owned();
            continue;
        }
        if let Some((c, code)) = last.and_then(|c| symbol(c).map(|code| (c, code))) {
            set_currency(&mut currency, &code)?;
            s = t
                .get(..t.len().saturating_sub(c.len_utf8()))
                .unwrap_or("")
                .to_owned();
            continue;
        }
        let head: String = t.chars().take_while(char::is_ascii_alphabetic).collect();
        if head.len() == 3 {
            set_currency(&mut currency, &head.to_ascii_uppercase())?;
            s = t.get(3..).unwrap_or("").to_owned();
            continue;
        }
        let tail_len = t
            .chars()
            .rev()
            .take_while(char::is_ascii_alphabetic)
            .count();
        if tail_len == 3 {
            let cut = t.len().saturating_sub(3);
            set_currency(
                &mut currency,
                &t.get(cut..).unwrap_or("").to_ascii_uppercase(),
            )?;
            s = t.get(..cut).unwrap_or("").to_owned();
            continue;
        }
        break;
    }
    let number: String = s
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}' | '\''))
        .collect();
    if number.is_empty() {
        return Err("no number");
    }
    if !number
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
    {
        return Err("not a number");
    }
    if !number.starts_with(|c: char| c.is_ascii_digit()) && !number.starts_with(['.', ',']) {
        return Err("not a number");
    }
    Ok(RawAmount {
        negative,
        currency,
        number,
    })
}

fn set_currency(slot: &mut Option<String>, code: &str) -> Result<(), &'static str> {
    match slot {
        Some(c) if c != code => Err("two different currencies"),
        _ => {
            *slot = Some(code.to_owned());
            Ok(())
        }
    }
}

fn evidence(number: &str) -> Evidence {
    let commas = number.matches(',').count();
    let points = number.matches('.').count();
    match (commas, points) {
        (0, 0) => Evidence::None,
        (c, p) if c > 0 && p > 0 => {
            let last_comma = number.rfind(',').unwrap_or(0);
            let last_point = number.rfind('.').unwrap_or(0);
            if last_point > last_comma {
                Evidence::Shows(Decimal::Point)
            } else {
                Evidence::Shows(Decimal::Comma)
            }
        }
        (c, 0) => one_kind(number, ',', c, Decimal::Comma, Decimal::Point),
        (0, p) => one_kind(number, '.', p, Decimal::Point, Decimal::Comma),
        _ => Evidence::None,
    }
}

/// Evidence from a number with only one kind of separator `sep` (`count` of them): several
/// are grouping (so the other is decimal); one with 3 digits after is ambiguous; one with
/// another count of digits after is the decimal separator.
fn one_kind(
    number: &str,
    sep: char,
    count: usize,
    as_decimal: Decimal,
    as_group: Decimal,
) -> Evidence {
    if count > 1 {
        return Evidence::Shows(as_group);
    }
    let after = number.rsplit(sep).next().map_or(0, str::len);
    if after == 3 && number.starts_with(|c: char| c.is_ascii_digit()) {
        Evidence::Ambiguous
    } else {
        Evidence::Shows(as_decimal)
    }
}

/// Reads the number with this decimal separator into minor units.
fn to_minor(number: &str, decimal: Decimal, exponent: u32) -> Result<i64, (&'static str, String)> {
    let (dec, group) = match decimal {
        Decimal::Point => ('.', ','),
        Decimal::Comma => (',', '.'),
    };
    if number.matches(dec).count() > 1 {
        return Err(("invalid_amount", "has two decimal separators".into()));
    }
    let (int_part, frac) = match number.split_once(dec) {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if frac.contains(group) {
        return Err((
            "invalid_amount",
            "has digit grouping after the decimal separator".into(),
        ));
    }
    let groups: Vec<&str> = int_part.split(group).collect();
    if groups.len() > 1 {
        let first_ok = groups.first().is_some_and(|g| (1..=3).contains(&g.len()));
        let rest_ok = groups.iter().skip(1).all(|g| g.len() == 3);
        if !(first_ok && rest_ok) {
            return Err((
                "invalid_amount",
                "has digit grouping that is not in threes".into(),
            ));
        }
    }
    let digits: String = groups.concat();
    if digits.is_empty() && frac.is_empty() {
        return Err(("invalid_amount", "has no digits".into()));
    }
    if frac.len() > exponent as usize {
        let extra = frac.get(exponent as usize..).unwrap_or("");
        if extra.bytes().any(|b| b != b'0') {
            return Err((
                "amount_precision",
                format!("has more than {exponent} decimals, which this currency does not have"),
            ));
        }
    }
    let mut value: i64 = 0;
    let frac_digits: String = frac
        .chars()
        .chain(std::iter::repeat('0'))
        .take(exponent as usize)
        .collect();
    for b in digits.bytes().chain(frac_digits.bytes()) {
        let d = i64::from(b.wrapping_sub(b'0'));
        if !(0..=9).contains(&d) {
            return Err(("invalid_amount", "is not a number".into()));
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(d))
            .ok_or(("invalid_amount", "is too large".to_owned()))?;
    }
    Ok(value)
}

/// Parses one amount cell on its own into `(minor units, currency)`: the currency is the one
/// the cell names, else `default_currency`. An ambiguous separator (`1,234`) is resolved by
/// `decimal` or refused. Returns a row error code and message on failure.
///
/// ```
/// use closeloop_core::import::{parse_amount, Decimal};
/// assert_eq!(parse_amount("$1,200.00", None, None), Ok((120_000, "USD".to_string())));
/// assert_eq!(parse_amount("1.234,56 €", None, None), Ok((123_456, "EUR".to_string())));
/// assert_eq!(parse_amount("1.234", Some("EUR"), None).unwrap_err().0, "ambiguous_amount");
/// assert_eq!(parse_amount("1.234", Some("EUR"), Some(Decimal::Comma)), Ok((123_400, "EUR".to_string())));
/// ```
pub fn parse_amount(
    cell: &str,
    default_currency: Option<&str>,
    decimal: Option<Decimal>,
) -> Result<(i64, String), (String, String)> {
    let raw = split_amount(cell, default_currency).map_err(|why| {
        (
            "invalid_amount".to_owned(),
            format!("`{}` is not an amount: {why}", shown(cell)),
        )
    })?;
    let currency = raw
        .currency
        .clone()
        .or_else(|| default_currency.map(str::to_ascii_uppercase))
        .ok_or_else(|| {
            (
                "missing_currency".to_owned(),
                format!(
                    "`{}` names no currency and there is no currency column or default",
                    shown(cell)
                ),
            )
        })?;
    let value = amount_value(&raw, &currency, decimal, cell)?;
    Ok((value, currency))
}

fn amount_value(
    raw: &RawAmount,
    currency: &str,
    decimal: Option<Decimal>,
    cell: &str,
) -> Result<i64, (String, String)> {
    let decimal = match (evidence(&raw.number), decimal) {
        (Evidence::Shows(d), _) => d,
        (Evidence::None, d) => d.unwrap_or(Decimal::Point),
        (Evidence::Ambiguous, Some(d)) => d,
        (Evidence::Ambiguous, None) => {
            return Err((
                "ambiguous_amount".to_owned(),
                format!(
                    "`{}` could be read with `.` or `,` as the decimal separator and the file does not show which; write it with decimals (e.g. 1,234.00) or say which separator the file uses",
                    shown(cell)
                ),
            ))
        }
    };
    let exponent = currency_exponent(currency);
    let v = to_minor(&raw.number, decimal, exponent)
        .map_err(|(code, why)| (code.to_owned(), format!("`{}` {why}", shown(cell))))?;
    Ok(if raw.negative { -v } else { v })
}

/// The decimal separator a file's amount cells show, when they show exactly one.
fn detect_decimal<'a>(
    cells: impl Iterator<Item = &'a str>,
    default_currency: Option<&str>,
) -> Option<Decimal> {
    let mut seen: Option<Decimal> = None;
    for cell in cells {
        if let Ok(raw) = split_amount(cell, default_currency) {
            if let Evidence::Shows(d) = evidence(&raw.number) {
                match seen {
                    None => seen = Some(d),
                    Some(s) if s != d => return None,
                    Some(_) => {}
                }
            }
        }
    }
    seen
}

// ---------------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------------

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// A date cell split into its numbers: `(a, b, year, time of day ms, year_first)`.
fn split_date(cell: &str) -> Option<(u32, u32, i64, i64, bool)> {
    let t = cell.trim();
    let (date, time) = match t.split_once([' ', 'T']) {
        Some((d, rest)) => (d, Some(rest.trim())),
        None => (t, None),
    };
    let sep = date.chars().find(|c| matches!(c, '/' | '.' | '-'))?;
    let parts: Vec<&str> = date.split(sep).collect();
    let [p1, p2, p3] = parts.as_slice() else {
        return None;
    };
    let num = |s: &str, max_len: usize| -> Option<i64> {
        (!s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let tod = match time {
        None | Some("") => 0,
        Some(tm) => {
            let tp: Vec<&str> = tm.split(':').collect();
            let (h, mi, s) = match tp.as_slice() {
                [h, m] => (num(h, 2)?, num(m, 2)?, 0),
                [h, m, s] => (num(h, 2)?, num(m, 2)?, num(s, 2)?),
                _ => return None,
            };
            if h > 23 || mi > 59 || s > 59 {
                return None;
            }
            h * MS_PER_HOUR + mi * MS_PER_MINUTE + s * MS_PER_SECOND
        }
    };
    if p1.len() == 4 {
        Some((
            num(p2, 2)? as u32,
            num(p3, 2)? as u32,
            num(p1, 4)?,
            tod,
            true,
        ))
    } else if p3.len() == 4 {
        Some((
            num(p1, 2)? as u32,
            num(p2, 2)? as u32,
            num(p3, 4)?,
            tod,
            false,
        ))
    } else {
        None
    }
}

fn date_evidence(cell: &str) -> Option<DateOrder> {
    let (a, b, _, _, year_first) = split_date(cell)?;
    if year_first {
        return None;
    }
    if a > 12 && b <= 12 {
        Some(DateOrder::DayMonth)
    } else if b > 12 && a <= 12 {
        Some(DateOrder::MonthDay)
    } else {
        None
    }
}

fn detect_date_order<'a>(cells: impl Iterator<Item = &'a str>) -> Option<DateOrder> {
    let mut seen = None;
    for c in cells {
        if let Some(d) = date_evidence(c) {
            match seen {
                None => seen = Some(d),
                Some(s) if s != d => return None,
                Some(_) => {}
            }
        }
    }
    seen
}

/// Parses a date or time cell to ms since the epoch (see the [module docs](self#dates)).
///
/// ```
/// use closeloop_core::import::{parse_when, DateOrder};
/// let oct11 = 1_791_676_800_000; // 2026-10-11T00:00:00Z
/// assert_eq!(parse_when("2026-10-11", None), Ok(oct11));
/// assert_eq!(parse_when("13/10/2026", None), Ok(oct11 + 2 * 86_400_000));
/// assert_eq!(parse_when("10/11/2026", None).unwrap_err().0, "ambiguous_date");
/// assert_eq!(parse_when("10/11/2026", Some(DateOrder::MonthDay)), Ok(oct11));
/// ```
pub fn parse_when(cell: &str, order: Option<DateOrder>) -> Result<i64, (String, String)> {
    let t = cell.trim();
    if let Ok(ms) = parse_rfc3339(t) {
        return Ok(ms);
    }
    let invalid = || {
        (
            "invalid_date".to_owned(),
            format!(
                "`{}` is not a date; use RFC 3339, YYYY-MM-DD, or DD/MM/YYYY / MM/DD/YYYY",
                shown(cell)
            ),
        )
    };
    let (a, b, year, tod, year_first) = split_date(t).ok_or_else(invalid)?;
    let (month, day) = if year_first {
        (a, b)
    } else if a > 12 && b <= 12 {
        (b, a)
    } else if (b > 12 && a <= 12) || a == b {
        // month first, or the same number either way
        (a, b)
    } else {
        match order {
            Some(DateOrder::DayMonth) => (b, a),
            Some(DateOrder::MonthDay) => (a, b),
            None => {
                return Err((
                    "ambiguous_date".to_owned(),
                    format!(
                        "`{}` could be day/month or month/day and the file does not show which; use YYYY-MM-DD",
                        shown(cell)
                    ),
                ))
            }
        }
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(invalid());
    }
    Ok(days_from_civil(year, month, day)
        .saturating_mul(MS_PER_DAY)
        .saturating_add(tod))
}

// ---------------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------------

/// Normalises a stage: `Ok(None)` for won, `Err` for lost, else the stage's snake name.
fn normalise_stage(raw: &str) -> Result<Option<String>, ()> {
    let mut out = String::new();
    for c in raw.trim().chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_').to_owned();
    let squashed: String = out.chars().filter(|c| *c != '_').collect();
    match squashed.as_str() {
        "" | "won" | "closedwon" | "customer" | "dealwon" | "closedwonpaid" => Ok(None),
        "lost" | "closedlost" | "deallost" => Err(()),
        _ => Ok(Some(out)),
    }
}

/// Takes the email out of a cell like `Ann Lee (ann@example.com)` or `<ann@example.com>`.
fn extract_email(cell: &str) -> Option<String> {
    if let Some(e) = normalize_email(cell) {
        return Some(e);
    }
    cell.split(|c: char| {
        c.is_whitespace() || matches!(c, '(' | ')' | '<' | '>' | ';' | ',' | '"' | '\'')
    })
    .find(|tok| tok.contains('@'))
    .and_then(normalize_email)
}

fn text_field(row: u64, column: &str, v: &str) -> Result<String, RowError> {
    if v.len() > MAX_CELL_LEN {
        return Err(row_err(
            row,
            "value_too_long",
            format!("`{column}` is longer than {MAX_CELL_LEN} bytes"),
        ));
    }
    Ok(v.to_owned())
}

fn parse_rate(row: u64, v: Option<&str>) -> Result<Option<f64>, RowError> {
    match v {
        None => Ok(None),
        Some(v) => {
            let r = v
                .replace(',', ".")
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r > 0.0);
            r.map(Some).ok_or_else(|| {
                row_err(
                    row,
                    "invalid_rate",
                    format!("`exchange_rate` `{}` is not a positive number", shown(v)),
                )
            })
        }
    }
}

fn missing_columns(cols: &Columns, required: &[&[&str]]) -> Option<FileError> {
    let missing: Vec<String> = required
        .iter()
        .filter(|alts| !alts.iter().any(|f| cols.has(f)))
        .map(|alts| alts.join(" or "))
        .collect();
    (!missing.is_empty()).then(|| FileError {
        code: "missing_column".into(),
        message: format!(
            "the header has no column for {}; see the documented column names",
            missing.join(", ")
        ),
    })
}

/// Parses a conversions CSV (see the [module docs](self)). Per row: the record or its error,
/// in file order.
///
/// ```
/// use closeloop_core::import::{parse_conversions, ImportOptions};
/// let csv = "Deal ID,Amount,Close Date,Deal Stage,Associated Contact\n\
///            hs-1,\"$1,200.00\",2026-10-11,closedwon,Cara Diaz (cara@example.com)\n\
///            hs-2,12,2026-10-11,closedlost,bob@example.com\n";
/// let rows = parse_conversions(csv.as_bytes(), &ImportOptions::default()).unwrap();
/// let first = rows[0].result.as_ref().unwrap();
/// assert_eq!((first.revenue, first.currency.as_str()), (120_000, "USD"));
/// assert_eq!(first.email.as_deref(), Some("cara@example.com"));
/// assert_eq!(rows[1].result.as_ref().unwrap_err().code, "deal_lost");
/// ```
pub fn parse_conversions(
    input: &[u8],
    opts: &ImportOptions,
) -> Result<Vec<RowResult<ConversionRecord>>, FileError> {
    let (header, rows) = read_table(input)?;
    let cols = Columns::map(&header, CONVERSION_COLUMNS);
    if let Some(e) = missing_columns(
        &cols,
        &[
            &["deal_id"],
            &["email", "lead_id"],
            &["revenue"],
            &["closed_at"],
        ],
    ) {
        return Err(e);
    }
    let default_currency = opts
        .default_currency
        .as_deref()
        .or(cols.currency_hint("revenue"));
    let good: Vec<&Vec<String>> = rows.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
    let decimal = opts.decimal.or_else(|| {
        detect_decimal(
            good.iter().filter_map(|r| cols.get("revenue", r)),
            default_currency,
        )
    });
    let order = opts
        .date_order
        .or_else(|| detect_date_order(good.iter().filter_map(|r| cols.get("closed_at", r))));
    Ok(rows
        .into_iter()
        .map(|(row, cells)| RowResult {
            row,
            result: cells.and_then(|cells| {
                conversion_row(row, &cells, &cols, default_currency, decimal, order)
            }),
        })
        .collect())
}

fn conversion_row(
    row: u64,
    cells: &[String],
    cols: &Columns,
    default_currency: Option<&str>,
    decimal: Option<Decimal>,
    order: Option<DateOrder>,
) -> Result<ConversionRecord, RowError> {
    let required = |field: &str| {
        cols.get(field, cells)
            .ok_or_else(|| row_err(row, "missing_value", format!("`{field}` is empty")))
    };
    let deal_id = text_field(row, "deal_id", required("deal_id")?)?;
    let stage = match cols.get("stage", cells).map(normalise_stage) {
        None => None,
        Some(Ok(s)) => s,
        Some(Err(())) => {
            return Err(row_err(
                row,
                "deal_lost",
                format!(
                    "deal `{}` is lost; a lost deal is not a conversion",
                    shown(&deal_id)
                ),
            ))
        }
    };
    let email = match cols.get("email", cells) {
        None => None,
        Some(v) => Some(extract_email(v).ok_or_else(|| {
            row_err(
                row,
                "invalid_email",
                format!("`email` `{}` holds no email address", shown(v)),
            )
        })?),
    };
    let lead_id = cols
        .get("lead_id", cells)
        .map(|v| text_field(row, "lead_id", v))
        .transpose()?;
    if email.is_none() && lead_id.is_none() {
        return Err(row_err(
            row,
            "missing_value",
            "`email` and `lead_id` are both empty; one is needed".into(),
        ));
    }
    let column_currency = match cols.get("currency", cells) {
        None => None,
        Some(c) if is_currency_code(c) => Some(c.to_ascii_uppercase()),
        Some(c) => {
            return Err(row_err(
                row,
                "invalid_currency",
                format!("`currency` `{}` is not an ISO 4217 code", shown(c)),
            ))
        }
    };
    let amount_cell = match cols.get("revenue", cells) {
        Some(v) => v,
        None if stage.is_some() => "0",
        None => return Err(row_err(row, "missing_value", "`revenue` is empty".into())),
    };
    let (revenue, currency) = amount_and_currency(
        row,
        "revenue",
        amount_cell,
        column_currency.as_deref(),
        default_currency,
        decimal,
    )?;
    if revenue < 0 {
        return Err(row_err(
            row,
            "negative_amount",
            format!(
                "`revenue` `{}` is negative; send refunds as a corrected deal",
                shown(amount_cell)
            ),
        ));
    }
    let closed_cell = required("closed_at")?;
    let closed_at = parse_when(closed_cell, order)
        .map_err(|(code, msg)| row_err(row, &code, format!("`closed_at`: {msg}")))?;
    Ok(ConversionRecord {
        deal_id,
        email,
        lead_id,
        revenue,
        currency,
        closed_at,
        stage,
        exchange_rate: parse_rate(row, cols.get("exchange_rate", cells))?,
    })
}

fn amount_and_currency(
    row: u64,
    column: &str,
    cell: &str,
    column_currency: Option<&str>,
    default_currency: Option<&str>,
    decimal: Option<Decimal>,
) -> Result<(i64, String), RowError> {
    let fallback = column_currency.or(default_currency);
    let raw = split_amount(cell, fallback).map_err(|why| {
        row_err(
            row,
            "invalid_amount",
            format!("`{column}` `{}` is not an amount: {why}", shown(cell)),
        )
    })?;
    let currency = match (&raw.currency, column_currency) {
        (Some(a), Some(b)) if a != b => {
            return Err(row_err(
                row,
                "currency_mismatch",
                format!(
                    "`{column}` `{}` is in {a} but the currency column says {b}",
                    shown(cell)
                ),
            ))
        }
        (Some(a), _) => a.clone(),
        (None, Some(b)) => b.to_owned(),
        (None, None) => default_currency
            .map(str::to_ascii_uppercase)
            .ok_or_else(|| {
                row_err(
                    row,
                    "missing_currency",
                    format!(
                        "`{column}` `{}` names no currency and the file has no currency column",
                        shown(cell)
                    ),
                )
            })?,
    };
    let value = amount_value(&raw, &currency, decimal, cell)
        .map_err(|(code, msg)| row_err(row, &code, format!("`{column}`: {msg}")))?;
    Ok((value, currency))
}

// ---------------------------------------------------------------------------------------------
// Spend
// ---------------------------------------------------------------------------------------------

/// Parses a spend CSV (see the [module docs](self)). Per row: the record or its error.
///
/// ```
/// use closeloop_core::import::{parse_spend, ImportOptions};
/// let csv = "date;channel;campaign;amount;currency\n2026-09-07;Paid Search;brand;1.000,00;EUR\n";
/// let rows = parse_spend(csv.as_bytes(), &ImportOptions::default()).unwrap();
/// let r = rows[0].result.as_ref().unwrap();
/// assert_eq!((r.amount, r.currency.as_str(), r.first_day, r.last_day), (100_000, "EUR", 20_703, 20_703));
/// ```
pub fn parse_spend(
    input: &[u8],
    opts: &ImportOptions,
) -> Result<Vec<RowResult<SpendRecord>>, FileError> {
    let (header, rows) = read_table(input)?;
    let cols = Columns::map(&header, SPEND_COLUMNS);
    let mut required: Vec<&[&str]> = vec![&["amount"], &["date", "start"]];
    if opts.default_channel.is_none() {
        required.push(&["channel"]);
    }
    if let Some(e) = missing_columns(&cols, &required) {
        return Err(e);
    }
    let default_currency = opts
        .default_currency
        .as_deref()
        .or(cols.currency_hint("amount"));
    let good: Vec<&Vec<String>> = rows.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
    let decimal = opts.decimal.or_else(|| {
        detect_decimal(
            good.iter().filter_map(|r| cols.get("amount", r)),
            default_currency,
        )
    });
    let order = opts.date_order.or_else(|| {
        detect_date_order(good.iter().flat_map(|r| {
            ["date", "start", "end"]
                .into_iter()
                .filter_map(|f| cols.get(f, r))
        }))
    });
    Ok(rows
        .into_iter()
        .map(|(row, cells)| RowResult {
            row,
            result: cells.and_then(|cells| {
                spend_row(row, &cells, &cols, opts, default_currency, decimal, order)
            }),
        })
        .collect())
}

fn spend_row(
    row: u64,
    cells: &[String],
    cols: &Columns,
    opts: &ImportOptions,
    default_currency: Option<&str>,
    decimal: Option<Decimal>,
    order: Option<DateOrder>,
) -> Result<SpendRecord, RowError> {
    let amount_cell = cols
        .get("amount", cells)
        .ok_or_else(|| row_err(row, "missing_value", "`amount` is empty".into()))?;
    let column_currency = match cols.get("currency", cells) {
        None => None,
        Some(c) if is_currency_code(c) => Some(c.to_ascii_uppercase()),
        Some(c) => {
            return Err(row_err(
                row,
                "invalid_currency",
                format!("`currency` `{}` is not an ISO 4217 code", shown(c)),
            ))
        }
    };
    let (amount, currency) = amount_and_currency(
        row,
        "amount",
        amount_cell,
        column_currency.as_deref(),
        default_currency,
        decimal,
    )?;
    let day_of = |field: &str, v: &str| -> Result<i64, RowError> {
        parse_when(v, order)
            .map(|ms| ms.div_euclid(MS_PER_DAY))
            .map_err(|(code, msg)| row_err(row, &code, format!("`{field}`: {msg}")))
    };
    let (first_day, last_day) = match (
        cols.get("date", cells),
        cols.get("start", cells),
        cols.get("end", cells),
    ) {
        (Some(d), None, None) => {
            let d = day_of("date", d)?;
            (d, d)
        }
        (None, Some(s), e) => {
            let s = day_of("start", s)?;
            let e = match e {
                Some(e) => day_of("end", e)?,
                None => s,
            };
            (s, e)
        }
        (Some(d), Some(s), e) => {
            // a `date` and a range: the range wins when it is complete, else the date
            match e {
                Some(e) => (day_of("start", s)?, day_of("end", e)?),
                None => {
                    let d = day_of("date", d)?;
                    (d, d)
                }
            }
        }
        (None, None, _) => {
            return Err(row_err(
                row,
                "missing_value",
                "`date` (or `start`) is empty".into(),
            ));
        }
        (Some(d), None, Some(_)) => {
            let d = day_of("date", d)?;
            (d, d)
        }
    };
    if last_day < first_day {
        return Err(row_err(
            row,
            "invalid_period",
            "`end` is before `start`".into(),
        ));
    }
    if last_day - first_day >= MAX_SPEND_DAYS {
        return Err(row_err(
            row,
            "invalid_period",
            format!("the period is longer than {MAX_SPEND_DAYS} days"),
        ));
    }
    let channel = match cols.get("channel", cells) {
        Some(c) => text_field(row, "channel", c)?,
        None => opts
            .default_channel
            .clone()
            .ok_or_else(|| row_err(row, "missing_value", "`channel` is empty".into()))?,
    };
    Ok(SpendRecord {
        amount,
        currency,
        first_day,
        last_day,
        channel,
        source: cols
            .get("source", cells)
            .map(|v| text_field(row, "source", v))
            .transpose()?,
        campaign: cols
            .get("campaign", cells)
            .map(|v| text_field(row, "campaign", v))
            .transpose()?,
        exchange_rate: parse_rate(row, cols.get("exchange_rate", cells))?,
    })
}

// ---------------------------------------------------------------------------------------------
// JSON bodies (POST /conversions, POST /spend)
// ---------------------------------------------------------------------------------------------

/// The fields of a JSON object as the cells of a one-row table: strings as they are, numbers
/// in their JSON spelling (so `1200.5` reads with a decimal point), `null` as empty.
fn json_cells(
    value: &serde_json::Value,
    fields: &[&str],
) -> Result<(Vec<String>, Vec<String>), RowError> {
    let obj = value
        .as_object()
        .ok_or_else(|| row_err(0, "invalid_body", "the body must be a JSON object".into()))?;
    let mut header = Vec::new();
    let mut cells = Vec::new();
    for field in fields {
        let cell = match obj.get(*field) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(_) => {
                return Err(row_err(
                    0,
                    "invalid_value",
                    format!("`{field}` must be a string or a number"),
                ))
            }
        };
        header.push((*field).to_owned());
        cells.push(cell);
    }
    Ok((header, cells))
}

/// Reads the JSON body of `POST /v1/sites/{site}/conversions` with the same rules as a CSV row
/// (amounts, currencies, dates, stages, emails; see the [module docs](self)): `deal_id`,
/// `email` or `lead_id`, `revenue` (a JSON number in major units, or a string such as
/// `"1.200,50 €"`), `currency`, `closed_at`, optional `stage` and `exchange_rate`. Unknown
/// fields are ignored. The error's `row` is 0.
///
/// ```
/// use closeloop_core::import::{conversion_from_json, ImportOptions};
/// let body = serde_json::json!({"deal_id": "d1", "email": "Ann@Example.com", "revenue": 1200.5,
///     "currency": "usd", "closed_at": "2026-10-11T00:00:00Z"});
/// let rec = conversion_from_json(&body, &ImportOptions::default()).unwrap();
/// assert_eq!((rec.revenue, rec.currency.as_str(), rec.email.as_deref()), (120_050, "USD", Some("ann@example.com")));
/// let body = serde_json::json!({"deal_id": "d1", "email": "a@example.com", "revenue": 5, "currency": "EUR"});
/// assert_eq!(conversion_from_json(&body, &ImportOptions::default()).unwrap_err().code, "missing_value");
/// ```
pub fn conversion_from_json(
    value: &serde_json::Value,
    opts: &ImportOptions,
) -> Result<ConversionRecord, RowError> {
    let fields = [
        "deal_id",
        "email",
        "lead_id",
        "revenue",
        "currency",
        "closed_at",
        "stage",
        "exchange_rate",
    ];
    let (header, cells) = json_cells(value, &fields)?;
    let cols = Columns::map(&header, CONVERSION_COLUMNS);
    let default_currency = opts.default_currency.as_deref();
    // a JSON number is always written with a decimal point
    let decimal = if value
        .get("revenue")
        .is_some_and(serde_json::Value::is_number)
    {
        Some(Decimal::Point)
    } else {
        opts.decimal
    };
    conversion_row(0, &cells, &cols, default_currency, decimal, opts.date_order)
}

/// Reads the JSON body of `POST /v1/sites/{site}/spend` with the same rules as a CSV row:
/// `amount`, `currency`, `date` or `start` + `end`, `channel`, optional `source`, `campaign`
/// and `exchange_rate`. The error's `row` is 0.
///
/// ```
/// use closeloop_core::import::{spend_from_json, ImportOptions};
/// let body = serde_json::json!({"channel": "Paid Search", "amount": 600, "currency": "USD",
///     "start": "2026-09-07", "end": "2026-11-05"});
/// let rec = spend_from_json(&body, &ImportOptions::default()).unwrap();
/// assert_eq!((rec.amount, rec.last_day - rec.first_day + 1), (60_000, 60));
/// ```
pub fn spend_from_json(
    value: &serde_json::Value,
    opts: &ImportOptions,
) -> Result<SpendRecord, RowError> {
    let fields = [
        "amount",
        "currency",
        "date",
        "start",
        "end",
        "channel",
        "source",
        "campaign",
        "exchange_rate",
    ];
    let (header, cells) = json_cells(value, &fields)?;
    let cols = Columns::map(&header, SPEND_COLUMNS);
    let decimal = if value
        .get("amount")
        .is_some_and(serde_json::Value::is_number)
    {
        Some(Decimal::Point)
    } else {
        opts.decimal
    };
    let currency = opts.default_currency.as_deref();
    spend_row(0, &cells, &cols, opts, currency, decimal, opts.date_order)
}
