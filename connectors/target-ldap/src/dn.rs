//! DNs as the directory compares them, and group names as it compares them.

/// Normalises a DN for comparison: lowercase, no spaces around separators.
pub fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for part in dn.split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push_str(k.trim());
        out.push('=');
        out.push_str(v.trim());
    }
    out.to_lowercase()
}

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
