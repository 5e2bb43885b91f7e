//! Civic numbers inside free text, in every spelling people type: the one detector that sources
//! run over names, groups, school units and e-mail addresses (a row holding one is rejected), and
//! that masking runs over text from outside (a server's error message that quotes a value).
//!
//! The text is read as groups of digits joined by short runs of separators: spaces, tabs, no-break
//! and other Unicode spaces, zero-width characters, hyphens, dashes and minus signs, dots,
//! slashes, `+` and `_`, at most [`MAX_SEPARATOR_CHARS`] of them between two groups. Letters or
//! other characters around the number do not hide it (`anna.19870704-9996@skola.se`). Ten or
//! twelve digits in consecutive groups are a civic number when
//! - the date is possible: month 01–12, a day of that month (plus 60 for a samordningsnummer),
//!   and twelve digits begin with 18, 19 or 20; and
//! - the digits are grouped the way civic numbers are written and end the run of groups: all in
//!   one (`198707049996`, `8707049996`), split between date and birth number (`19870704 9996`,
//!   `870704 - 9996`), or also between year, month and day (`1987-07-04-9996`, `87 07 04 9996`,
//!   `1987 0704 9996`); a wrong check digit does not matter then, since a number with a typo is
//!   still a person's number;
//! - or, grouped any other way or followed by a space and more digits, the check digit holds
//!   (Luhn over `YYMMDDNNN`). Followed by a hyphen, dash, dot or slash and more digits, the
//!   digits are part of a longer number (`2024-08-19–2025-06-15`) and not a civic number.
//!
//! Temporary numbers are found by their date and the letters school systems use, directly after
//! the date or after one hyphen or dash: `20130101TF01`, `20000101-P220`, `130101-TF01`.
//!
//! What this takes for a civic number, by judgement: a phone number written as ten digits in one
//! run whose first six are a possible date (`0701122334`), or grouped as phone numbers are
//! (`070-112 23 34`) when its last digit also passes the check (one in ten of those); and a date
//! followed by four digits and nothing else (`2024-08-19 1430`). Such values reject a row. What
//! it does not: class and group names (`Klass 7A`), dates (`2024-08-19`), date ranges, postcodes
//! (`123 45`), short numbers, organisation numbers (their "month" is 20 or more), digits
//! separated by other characters (`,`, `;`, `|`, `:`, `@`).

use chrono::NaiveDate;
use std::ops::Range;

/// The most separator characters between two digit groups of one number (`870704 \t-\t 9996`
/// has five).
pub const MAX_SEPARATOR_CHARS: usize = 5;

/// A civic number found in text. Never holds the number itself: only where it is and its masked
/// form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CivicMatch {
    /// Byte range of the number in the text, from its first digit to its last character.
    pub range: Range<usize>,
    /// What to show instead: the date digits as written (`YYYYMMDD` or `YYMMDD`) and `-****`,
    /// no more than [`super::mask_raw`] shows.
    pub masked: String,
}

/// The first civic number in `text`, in any spelling (see the module's documentation).
pub fn find_civic_in_text(text: &str) -> Option<CivicMatch> {
    civic_numbers_in_text(text).into_iter().next()
}

/// Whether `text` holds a civic number in any spelling: what a source checks every free-text
/// value with.
pub fn contains_civic(text: &str) -> bool {
    find_civic_in_text(text).is_some()
}

/// Every civic number in `text`, in order, none overlapping.
pub fn civic_numbers_in_text(text: &str) -> Vec<CivicMatch> {
    // Every civic number has a date of six digits or more: a text with fewer digits holds none
    // (nearly every name, class and school a source checks), and is not taken apart.
    if text.chars().filter(|c| digit(*c).is_some()).nth(5).is_none() {
        return Vec::new();
    }
    let groups = digit_groups(text);
    let mut found = Vec::new();
    let mut i = 0;
    while i < groups.len() {
        match match_at(text, &groups, i) {
            Some(m) => {
                let end = m.range.end;
                found.push(m);
                // Go on after the number: a temporary number's last digits are a group too.
                while i < groups.len() && groups[i].start < end {
                    i += 1;
                }
            }
            None => i += 1,
        }
    }
    found
}

/// `text` with every civic number [`civic_numbers_in_text`] finds replaced by its masked form.
pub fn mask_civic_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for m in civic_numbers_in_text(text) {
        out.push_str(&text[at..m.range.start]);
        out.push_str(&m.masked);
        at = m.range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// A maximal run of digits.
#[derive(Debug)]
struct Group {
    start: usize,
    end: usize,
    digits: Vec<u8>,
    /// Whether only a short run of separators stands between this group and the one before.
    joined: bool,
    /// Whether that run is all whitespace.
    by_space: bool,
}

/// The digit's value, for ASCII and fullwidth digits.
fn digit(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '\u{ff10}'..='\u{ff19}' => u8::try_from(u32::from(c) - 0xff10).ok(),
        _ => None,
    }
}

/// The characters people put between the parts of a civic number, or that a copy and paste
/// brings along.
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '+' | '.' | '/' | '_'
                // hyphen, non-breaking hyphen, figure dash, en dash, em dash, horizontal bar
                | '\u{2010}'..='\u{2015}'
                // minus sign, small and fullwidth hyphen-minus, small em dash, fullwidth
                // full stop and solidus, soft hyphen
                | '\u{2212}' | '\u{fe58}' | '\u{fe63}' | '\u{ff0d}' | '\u{ff0e}' | '\u{ff0f}' | '\u{00ad}'
                // zero-width space, non-joiner, joiner, word joiner, byte order mark
                | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}'
        )
}

fn digit_groups(text: &str) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut current: Option<Group> = None;
    // Separator characters since the last group ended; `None` once anything else came between.
    let mut since: Option<usize> = None;
    let mut all_space = true;
    for (i, c) in text.char_indices() {
        let end = i + c.len_utf8();
        if let Some(d) = digit(c) {
            match current.as_mut() {
                Some(g) => {
                    g.digits.push(d);
                    g.end = end;
                }
                None => {
                    let joined = since.is_some_and(|n| (1..=MAX_SEPARATOR_CHARS).contains(&n));
                    current = Some(Group { start: i, end, digits: vec![d], joined, by_space: joined && all_space });
                }
            }
            continue;
        }
        if let Some(g) = current.take() {
            groups.push(g);
            since = Some(0);
            all_space = true;
        }
        all_space &= c.is_whitespace();
        since = if is_separator(c) { since.map(|n| n + 1) } else { None };
    }
    groups.extend(current);
    groups
}

/// A civic number that starts with group `i`, if any.
fn match_at(text: &str, groups: &[Group], i: usize) -> Option<CivicMatch> {
    let chain_end = (i + 1..groups.len()).take_while(|&j| groups[j].joined).last().unwrap_or(i);
    let mut digits: Vec<u8> = Vec::with_capacity(12);
    // Where the groups meet, counted in digits from the start.
    let mut bounds: Vec<usize> = Vec::new();
    for (j, g) in groups.iter().enumerate().take(chain_end + 1).skip(i) {
        digits.extend_from_slice(&g.digits);
        if digits.len() > 12 {
            break;
        }
        // Digits after a hyphen, dash, dot or slash make a longer number (a date range, an
        // identifier): only after a space can a civic number be followed by other digits.
        let ends_run = j == chain_end;
        let may_end = ends_run || groups[j + 1].by_space;
        if (digits.len() == 10 || digits.len() == 12)
            && may_end
            && let Some(masked) = judge(&digits, &bounds, ends_run)
        {
            return Some(CivicMatch { range: groups[i].start..g.end, masked });
        }
        bounds.push(digits.len());
    }
    temporary_at(text, &groups[i], i == chain_end)
}

/// Whether ten or twelve digits, grouped as `bounds` says, are a civic number; its masked form.
fn judge(digits: &[u8], bounds: &[usize], ends_run: bool) -> Option<String> {
    let date_len = digits.len() - 4;
    let date = &digits[..date_len];
    if !possible_date(date) {
        return None;
    }
    let as_written = ends_run
        && match digits.len() {
            12 => matches!(bounds, [] | [8] | [4, 8] | [4, 6, 8]),
            _ => matches!(bounds, [] | [6] | [2, 4, 6]),
        };
    let short = &digits[digits.len() - 10..];
    (as_written || luhn_holds(short)).then(|| masked(date))
}

/// A temporary number: a date group (eight digits, or six) followed, directly or after one
/// hyphen or dash, by the letters school systems use (`TF`, or one of `TRSUWXJKLMNP`) and digits,
/// four characters in all. `last_of_run`: no digit group is joined to the date.
fn temporary_at(text: &str, g: &Group, last_of_run: bool) -> Option<CivicMatch> {
    if !last_of_run || !(g.digits.len() == 8 || g.digits.len() == 6) || !possible_date(&g.digits) {
        return None;
    }
    let rest = &text[g.end..];
    let sep = rest.chars().next().filter(|c| *c == '-' || ('\u{2010}'..='\u{2015}').contains(c) || *c == '\u{2212}');
    let sep_bytes = sep.map_or(0, char::len_utf8);
    let tail = &rest.as_bytes()[sep_bytes..];
    let letters = match tail {
        [a, b, ..] if a.eq_ignore_ascii_case(&b'T') && b.eq_ignore_ascii_case(&b'F') => 2,
        [a, ..] if b"TRSUWXJKLMNP".contains(&a.to_ascii_uppercase()) => 1,
        _ => return None,
    };
    let numbers = tail.iter().skip(letters).take_while(|b| b.is_ascii_digit()).count();
    let after = rest[sep_bytes + letters + numbers..].chars().next();
    if letters + numbers != 4 || after.is_some_and(char::is_alphanumeric) {
        return None;
    }
    Some(CivicMatch { range: g.start..g.end + sep_bytes + 4, masked: masked(&g.digits) })
}

/// Whether `date` (`YYYYMMDD` or `YYMMDD`) can be a date of birth as a civic number writes it.
fn possible_date(date: &[u8]) -> bool {
    let two = |k: usize| u32::from(date[k]) * 10 + u32::from(date[k + 1]);
    let (year, at) = match date.len() {
        8 if (18..=20).contains(&two(0)) => (two(0) * 100 + two(2), 4),
        // Without the century, 2000 lets 29 February through.
        6 => (2000, 2),
        _ => return false,
    };
    let (month, day) = (two(at), two(at + 2));
    let day = if day > 60 { day - 60 } else { day };
    i32::try_from(year).ok().and_then(|y| NaiveDate::from_ymd_opt(y, month, day)).is_some()
}

/// The Luhn check over the last ten digits `YYMMDDNNNC`, as [`super::CivicNo::parse`] runs it.
fn luhn_holds(short: &[u8]) -> bool {
    let sum: u32 = short[..9]
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let p = u32::from(*d) * if i % 2 == 0 { 2 } else { 1 };
            if p > 9 { p - 9 } else { p }
        })
        .sum();
    (10 - sum % 10) % 10 == u32::from(short[9])
}

fn masked(date: &[u8]) -> String {
    let mut s: String = date.iter().map(|d| char::from(b'0' + d)).collect();
    s.push_str("-****");
    s
}

#[cfg(test)]
mod tests;
