//! Form submits: which fields are recorded and which values are kept.
//!
//! Rules (the design's privacy contract):
//! - the form's `id`, `name` and `action` attributes (as the page wrote them);
//! - the names of its fields (a field's `name`, else its `id`), buttons excluded,
//!   fields marked `data-closeloop-ignore` excluded entirely;
//! - values only of identity fields (email, name, company, phone: by input type,
//!   `autocomplete` token, or a known field name) and of fields the site marks
//!   (`data-closeloop-capture`, or listed in the tag's `data-capture`);
//! - never the value of a password, a hidden field, or a payment field
//!   (`autocomplete="cc-*"`), whatever the marks say;
//! - identity values are kept under their canonical key (`email`, `name`,
//!   `company`, `phone`; first name and last name joined), marked fields under
//!   their own name; an email value must contain `@`.
//!
//! A form marked `data-closeloop-ignore` is not recorded at all.

use crate::js::{self, s, CFG, NO, ST, V};
use crate::keys::{MAX_FIELDS, MAX_FIELD_LEN, N};
use crate::{profile, send, Tracker};

/// An identity field: the canonical key its value is kept under.
pub fn identity(name: &str, ty: &str, autocomplete: &str) -> Option<&'static str> {
    match ty {
        "email" => return Some("email"),
        "tel" => return Some("phone"),
        _ => {}
    }
    // `autocomplete` may hold several tokens ("section-a shipping email"): the
    // last names the field.
    let ac = js::parts(autocomplete, b' ')
        .filter(|w| !w.is_empty())
        .last()
        .unwrap_or("");
    match ac {
        "email" => return Some("email"),
        "name" | "given-name" | "family-name" | "additional-name" => return Some("name"),
        "organization" => return Some("company"),
        _ if ac.starts_with("tel") => return Some("phone"),
        _ => {}
    }
    // Bytes, not `chars()` (no UTF-8 decoding linked): non-ASCII bytes are never
    // ASCII alphanumerics, so the result is the same.
    let mut buf = [0u8; MAX_FIELD_LEN];
    let mut len = 0;
    for b in name.bytes().filter(u8::is_ascii_alphanumeric) {
        if let Some(x) = buf.get_mut(len) {
            *x = b.to_ascii_lowercase();
            len += 1;
        }
    }
    let n = buf.get(..len).unwrap_or_default();
    let is = |words: &[&str]| words.iter().any(|w| w.as_bytes() == n);
    let has = |word: &str| js::find_bytes(n, word.as_bytes()).is_some();
    if has("email") || n == b"mail" {
        return Some("email");
    }
    const NAMES: [&str; 13] = [
        "name",
        "fullname",
        "firstname",
        "lastname",
        "fname",
        "lname",
        "givenname",
        "familyname",
        "surname",
        "yourname",
        "contactname",
        "first",
        "last",
    ];
    if is(&NAMES) {
        return Some("name");
    }
    const COMPANIES: [&str; 6] = [
        "org",
        "organization",
        "organisation",
        "business",
        "employer",
        "account",
    ];
    if has("company") || is(&COMPANIES) {
        return Some("company");
    }
    const PHONES: [&str; 5] = ["tel", "telephone", "mobile", "cell", "cellphone"];
    if has("phone") || is(&PHONES) {
        return Some("phone");
    }
    None
}

/// Whether a value may never be kept: passwords, hidden fields, payment fields.
pub fn forbidden(ty: &str, autocomplete: &str) -> bool {
    ty == "password"
        || ty == "hidden"
        || js::parts(autocomplete, b' ').any(|tok| tok.starts_with("cc-"))
}

/// Whether a control is not a data field (buttons, fieldsets, outputs).
pub fn not_a_field(ty: &str) -> bool {
    matches!(
        ty,
        "submit" | "button" | "reset" | "image" | "fieldset" | "output" | "file"
    )
}

/// A form is being submitted: record it (once), mark a lead when it carries an
/// email, and send at once (the page is probably about to navigate away).
pub fn submitted(t: &mut Tracker, form: V) {
    if !form.get(N::TagName).is(N::FormTag)
        || form.call(N::HasAttribute, N::IgnoreAttr, NO).truthy()
        || crate::page::ignored()
    {
        return;
    }
    let out = js::obj();
    // Attributes, not `form.id`/`form.name`: a field named "name" shadows those.
    for k in [N::Id, N::Name, N::Action] {
        let v = js::attr(form, k);
        if v.truthy() {
            out.set(k, js::trunc(v, MAX_FIELD_LEN));
        }
    }
    let fields = js::arr();
    let values = js::obj();
    let mut has_email = false;
    let mut n_values = 0;
    let capture = CFG.get(N::Capture);
    let elements = form.get(N::Elements);
    for i in 0..elements.len() {
        let field = elements.at(i);
        let mut name = js::attr(field, N::Name);
        if !name.truthy() {
            name = js::attr(field, N::Id);
        }
        if !name.truthy() {
            continue;
        }
        let name = js::trunc(name, MAX_FIELD_LEN);
        let (mut tb, mut ab, mut nb) = ([0u8; 32], [0u8; 256], [0u8; MAX_FIELD_LEN]);
        let ty = js::read_lower(field.get(N::Type), &mut tb);
        if not_a_field(ty) || field.call(N::HasAttribute, N::IgnoreAttr, NO).truthy() {
            continue;
        }
        if !fields.has(name) && fields.len() < MAX_FIELDS as u32 {
            fields.push(name);
        }
        let ac = js::read_lower(js::attr(field, N::Autocomplete), &mut ab);
        if forbidden(ty, ac) || n_values >= MAX_FIELDS {
            continue;
        }
        if (ty == "checkbox" || ty == "radio") && !field.get(N::Checked).truthy() {
            continue;
        }
        let marked = field.call(N::HasAttribute, N::CaptureAttr, NO).truthy() || capture.has(name);
        let key = match identity(js::read(name, &mut nb).unwrap_or(""), ty, ac) {
            Some(k) => k,
            None if marked => "",
            None => continue,
        };
        let mut vb = [0u8; MAX_FIELD_LEN];
        let value = js::read(field.get(N::Value), &mut vb)
            .unwrap_or("")
            .trim_ascii();
        if value.is_empty() || (key == "email" && !js::has(value, "@")) {
            continue;
        }
        let k = if key.is_empty() { name } else { s(key) };
        let value = s(value);
        let prev = values.get(k);
        let joined = if key == "name" && prev.truthy() {
            prev.cat(s(" "), value)
        } else if prev.truthy() {
            continue;
        } else {
            value
        };
        has_email |= key == "email";
        values.set(k, js::trunc(joined, MAX_FIELD_LEN));
        n_values += 1;
    }
    out.set(N::Fields, fields);
    out.set(N::Values, values);
    // The same submit seen twice (the submit event, then the site's handler calling
    // `form.submit()`) within 2 s is recorded once.
    let print = js::json(out);
    let now = js::now();
    if ST.get(N::Form).is(print) && now - t.last_form < 2_000.0 {
        return;
    }
    ST.set(N::Form, print);
    t.last_form = now;
    let ev = send::event(t, N::FormSubmit);
    ev.set(N::Form, out);
    if has_email {
        profile::mark_lead(t);
    }
    send::enqueue(t, ev, 0.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_by_type_autocomplete_and_name() {
        assert_eq!(identity("contact", "email", ""), Some("email"));
        assert_eq!(
            identity("x", "text", "section-a billing email"),
            Some("email")
        );
        assert_eq!(identity("work_email", "text", ""), Some("email"));
        assert_eq!(identity("first_name", "text", ""), Some("name"));
        assert_eq!(identity("Last-Name", "text", ""), Some("name"));
        assert_eq!(identity("x", "text", "given-name"), Some("name"));
        assert_eq!(identity("username", "text", ""), None);
        assert_eq!(identity("company_name", "text", ""), Some("company"));
        assert_eq!(identity("x", "text", "organization"), Some("company"));
        assert_eq!(identity("phone_number", "text", ""), Some("phone"));
        assert_eq!(identity("x", "tel", ""), Some("phone"));
        assert_eq!(identity("x", "text", "tel-national"), Some("phone"));
        assert_eq!(identity("message", "textarea", ""), None);
        assert_eq!(identity("card", "text", "cc-number"), None);
    }

    #[test]
    fn never_passwords_hidden_or_payment_values() {
        assert!(forbidden("password", ""));
        assert!(forbidden("hidden", ""));
        assert!(forbidden("text", "cc-number"));
        assert!(forbidden("text", "billing cc-exp"));
        assert!(!forbidden("email", "email"));
        assert!(!forbidden("text", ""));
    }

    #[test]
    fn buttons_are_not_fields() {
        assert!(not_a_field("submit"));
        assert!(not_a_field("button"));
        assert!(!not_a_field("text"));
        assert!(!not_a_field("select-one"));
    }
}
