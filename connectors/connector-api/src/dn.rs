//! Values put into LDAP distinguished names (placements render school units into OUs).

/// A value escaped for a DN (RFC 4514): the special characters, and a leading `#` or space and
/// a trailing space, with a backslash.
pub fn escape_dn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 4);
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
