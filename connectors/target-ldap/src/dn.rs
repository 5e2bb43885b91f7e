//! DNs as the directory compares them, and group names as it compares them.

/// Normalises a DN for comparison: lowercase, no spaces around separators, and every value's
/// escapes in one form (`\2C` and `\,` are one comma; a comma inside a value is not a
/// separator).
pub fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut rest = dn;
    loop {
        let (rdn, tail) = split_rdn(rest);
        if !out.is_empty() {
            out.push(',');
        }
        let (k, v) = rdn.split_once('=').unwrap_or((rdn, ""));
        out.push_str(&k.trim().to_lowercase());
        out.push('=');
        out.push_str(&canonical_value(v.trim()));
        if tail.is_empty() {
            break;
        }
        rest = tail;
    }
    out
}

/// An attribute value of a DN with its escapes decoded and the special characters escaped again
/// with a backslash, lowercase.
fn canonical_value(v: &str) -> String {
    if !v.contains('\\') {
        return v.to_lowercase(); // the common case: nothing to decode
    }
    let b = v.as_bytes();
    let mut bytes = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            match (hex(b[i + 1]), b.get(i + 2).and_then(|c| hex(*c))) {
                (Some(h), Some(l)) => {
                    bytes.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => {
                    bytes.push(b[i + 1]);
                    i += 2;
                }
            }
        } else {
            bytes.push(b[i]);
            i += 1;
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.extend(c.to_lowercase());
    }
    out
}

pub use connector_api::escape_dn_value;

/// The first RDN of a DN, and the rest.
pub(crate) fn split_rdn(dn: &str) -> (&str, &str) {
    let bytes = dn.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b',' => return (&dn[..i], &dn[i + 1..]),
            _ => i += 1,
        }
    }
    (dn, "")
}

/// A group name as the directory compares it: without case, and with runs of spaces as one
/// (LDAP's insignificant-space handling): `3 A`, `3  A` and `3a` are one group.
pub fn fold_group_name(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Whether `dn` is `base` or under it.
pub(crate) fn under(dn_norm: &str, base: &str) -> bool {
    let b = normalize_dn(base);
    dn_norm == b || dn_norm.ends_with(&format!(",{b}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_commas_stay_in_their_value_and_escapes_compare_as_one() {
        assert_eq!(normalize_dn("CN=Svensson\\, Anna,OU=Norr, DC=x"), "cn=svensson\\, anna,ou=norr,dc=x");
        assert_eq!(normalize_dn("CN=Svensson\\2C Anna,OU=Norr,DC=x"), normalize_dn("cn=svensson\\, anna,ou=norr,dc=x"));
        assert_ne!(normalize_dn("CN=A\\, B,DC=x"), normalize_dn("CN=A,B=,DC=x"));
        assert_eq!(normalize_dn("OU=S\\C3\\B6der,DC=x"), "ou=söder,dc=x");
        assert_eq!(normalize_dn("OU=Söder,DC=x"), "ou=söder,dc=x");
        assert_eq!(escape_dn_value("Ekbacken, F-6"), "Ekbacken\\, F-6");
        assert_eq!(escape_dn_value("#1 "), "\\#1\\ ");
    }
}
