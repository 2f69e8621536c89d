//! The default wire-name rule: PascalCase of the Rust name.

/// `send_message` → `SendMessage`; `r#type` → `Type`.
pub(crate) fn pascal_case(ident: &str) -> String {
    let ident = ident.strip_prefix("r#").unwrap_or(ident);
    let mut out = String::with_capacity(ident.len());
    for part in ident.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pascal_case;

    #[test]
    fn pascal() {
        assert_eq!(pascal_case("send_message"), "SendMessage");
        assert_eq!(pascal_case("echo"), "Echo");
        assert_eq!(
            pascal_case("get_caller_connection_id"),
            "GetCallerConnectionId"
        );
        assert_eq!(pascal_case("r#type"), "Type");
        assert_eq!(pascal_case("_private__x"), "PrivateX");
    }
}
