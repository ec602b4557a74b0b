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

use crate::keys::{MAX_FIELDS, MAX_FIELD_LEN};
use crate::{js, keys, profile, send, Tracker};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use js_sys::Array;
use wasm_bindgen::JsValue;

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
    let mut n = String::new();
    for b in name.bytes().filter(u8::is_ascii_alphanumeric) {
        n.push(char::from(b.to_ascii_lowercase()));
    }
    if js::has(&n, "email") || n == "mail" {
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
    if NAMES.contains(&n.as_str()) {
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
    if js::has(&n, "company") || COMPANIES.contains(&n.as_str()) {
        return Some("company");
    }
    const PHONES: [&str; 5] = ["tel", "telephone", "mobile", "cell", "cellphone"];
    if js::has(&n, "phone") || PHONES.contains(&n.as_str()) {
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
pub fn submitted(t: &mut Tracker, el: &JsValue) {
    if js::get_str(el, "tagName") != "FORM" {
        return;
    }
    let form = el;
    if js::has_attr(form, "data-closeloop-ignore") || crate::page::ignored(t) {
        return;
    }
    let out = js::obj();
    // Attributes, not `form.id`/`form.name`: a field named "name" shadows those.
    for (k, a) in [
        (keys::ID, "id"),
        (keys::NAME, "name"),
        (keys::ACTION, "action"),
    ] {
        if let Some(v) = js::attr(form, a) {
            js::set_str(&out, k, &js::truncate(v, MAX_FIELD_LEN));
        }
    }
    let mut fields: Vec<String> = Vec::new();
    let values = js::obj();
    let mut has_email = false;
    let mut n_values = 0;
    let elements = js_sys::Array::from(&js::get(form, "elements"));
    for field in elements.iter() {
        let Some(name) = js::attr(&field, "name").or_else(|| js::attr(&field, "id")) else {
            continue;
        };
        let name = js::truncate(name, MAX_FIELD_LEN);
        let ty = js::get_str(&field, "type").to_ascii_lowercase();
        if not_a_field(&ty) || js::has_attr(&field, "data-closeloop-ignore") {
            continue;
        }
        if !fields.contains(&name) && fields.len() < MAX_FIELDS {
            fields.push(name.clone());
        }
        let ac = js::attr(&field, "autocomplete")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if forbidden(&ty, &ac) || n_values >= MAX_FIELDS {
            continue;
        }
        if (ty == "checkbox" || ty == "radio") && !js::get(&field, "checked").is_truthy() {
            continue;
        }
        let marked =
            js::has_attr(&field, "data-closeloop-capture") || t.cfg.capture.contains(&name);
        let key = match identity(&name, &ty, &ac) {
            Some(k) => k.to_string(),
            None if marked => name.clone(),
            None => continue,
        };
        let value = js::get_str(&field, "value");
        let value = value.trim_ascii();
        if value.is_empty() || (key == "email" && !js::has(value, "@")) {
            continue;
        }
        let prev = js::get_str(&values, &key);
        let joined = if key == "name" && !prev.is_empty() {
            let mut j = prev;
            j.push(' ');
            j.push_str(value);
            j
        } else if !prev.is_empty() {
            continue;
        } else {
            value.to_string()
        };
        has_email |= key == "email";
        js::set_str(&values, &key, &js::truncate(joined, MAX_FIELD_LEN));
        n_values += 1;
    }
    let list: Array = fields.iter().map(|f| JsValue::from_str(f)).collect();
    js::set(&out, keys::FIELDS, &list);
    js::set(&out, keys::VALUES, &values);
    // The same submit seen twice (the submit event, then the site's handler calling
    // `form.submit()`) within 2 s is recorded once.
    let print = js::stringify(&out);
    let now = js::now();
    if t.last_form.0 == print && now - t.last_form.1 < 2_000.0 {
        return;
    }
    t.last_form = (print, now);
    let ev = send::event(t, keys::FORM_SUBMIT);
    js::set(&ev, keys::FORM, &out);
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
