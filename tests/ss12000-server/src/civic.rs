//! Test civic numbers (personnummer) for the generator: valid dates and check digits, never a
//! real person's number. Every number this crate makes has a birth number (the three digits after
//! the date) in the 900–999 range; the tax agency's published test numbers use that range, and
//! the generated data set documents it so that nobody mistakes a fixture for a real person.

use chrono::{Datelike, NaiveDate};

/// The Luhn check digit over the ten-digit form's first nine digits (`YYMMDDNNN`).
pub fn check_digit(nine: &str) -> Option<u8> {
    let mut sum = 0u32;
    for (i, c) in nine.chars().enumerate() {
        let d = c.to_digit(10)?;
        let p = if i % 2 == 0 { d * 2 } else { d };
        sum += p / 10 + p % 10;
    }
    Some(((10 - sum % 10) % 10) as u8)
}

/// A 12-digit civic number (`YYYYMMDDNNNC`, no separator, as SS 12000 writes it) for `birth`
/// with birth number `900 + serial % 100`; a coordination number (samordningsnummer) has 60
/// added to the day. The third birth-number digit is odd for men, even for women.
pub fn civic_no(birth: NaiveDate, serial: u32, coordination: bool) -> String {
    let day = birth.day() + if coordination { 60 } else { 0 };
    let nine = format!("{:02}{:02}{:02}{:03}", birth.year() % 100, birth.month(), day, 900 + serial % 100);
    // The nine digits are all ASCII digits by construction, so a check digit always exists.
    let check = check_digit(&nine).unwrap_or(0);
    format!("{:04}{:02}{:02}{:03}{}", birth.year(), birth.month(), day, 900 + serial % 100, check)
}

/// Whether a 12-digit civic number has a correct check digit (letters, as in a temporary
/// number, make it invalid).
pub fn is_valid(civic: &str) -> bool {
    civic.len() == 12
        && civic.is_ascii()
        && check_digit(&civic[2..11]).is_some_and(|c| civic[11..].parse::<u8>() == Ok(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits_match_the_published_algorithm() {
        // The worked example of the tax agency's leaflet: 811218-987(6).
        assert_eq!(check_digit("811218987"), Some(6));
        let d = NaiveDate::from_ymd_opt(2012, 3, 4).unwrap();
        let n = civic_no(d, 17, false);
        assert!(n.starts_with("20120304917"), "{n}");
        assert!(is_valid(&n));
        let s = civic_no(d, 17, true);
        assert!(s.starts_with("20120364917"), "{s}");
        assert!(is_valid(&s));
        assert!(!is_valid("20130101TF01"));
    }
}
