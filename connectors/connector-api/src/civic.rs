//! Swedish civic numbers: personnummer, samordningsnummer and temporary (TF) numbers.
//!
//! Sources write them in several forms (`YYYYMMDDNNNC`, `YYYYMMDD-NNNC`, `YYMMDD-NNNC`,
//! `YYMMDD+NNNC`); [`CivicNo::parse`] normalises every valid one to 12 characters without a
//! separator, as SS 12000 requires. The Luhn check runs over `YYMMDDNNN` *as written*, so a
//! samordningsnummer keeps its day + 60. A number with a letter in the birth-number part is a
//! temporary number: accepted, but [`CivicNo::is_matchable`] is false, because such numbers are
//! reused and must never join two records into one identity.
//!
//! A `CivicNo` never prints its full value: `Debug` and `Display` mask the last four characters
//! (`20150916-****`). Only [`CivicNo::expose`] gives the full value, for the state database.

use chrono::{Datelike, NaiveDate};
use std::fmt;

/// What kind of civic number a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CivicKind {
    /// A personnummer from folkbokföringen.
    Personnummer,
    /// A samordningsnummer (day of birth + 60).
    Samordningsnummer,
    /// A temporary number made up by a school system (letters in the birth-number part).
    Temporary,
}

/// A validated, normalised civic number.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CivicNo {
    /// Twelve characters, `YYYYMMDDNNNC`, digits except for a temporary number's letters.
    value: String,
    kind: CivicKind,
}

/// Why a value is not a civic number. The message never contains the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CivicNoError {
    #[error("is not in a civic-number form (YYYYMMDD-NNNC, YYYYMMDDNNNC, YYMMDD-NNNC or YYMMDD+NNNC)")]
    Format,
    #[error("has an impossible date of birth")]
    Date,
    #[error("has birth number 000, which is never issued")]
    BirthNumber,
    #[error("fails its check digit")]
    CheckDigit,
}

impl CivicNo {
    /// Parses and validates `input`. `today` picks the century of a 10-digit form: the most recent
    /// date not in the future, minus 100 years when the separator is `+`.
    pub fn parse(input: &str, today: NaiveDate) -> Result<CivicNo, CivicNoError> {
        let s: String = input.trim().chars().filter(|c| !c.is_whitespace()).collect();
        let (digits, plus) = match s.len() {
            12 => (s.clone(), false),
            13 if &s[8..9] == "-" || &s[8..9] == "+" => (format!("{}{}", &s[..8], &s[9..]), &s[8..9] == "+"),
            10 => (s.clone(), false),
            11 if s.is_char_boundary(6) && (&s[6..7] == "-" || &s[6..7] == "+") => {
                (format!("{}{}", &s[..6], &s[7..]), &s[6..7] == "+")
            }
            _ => return Err(CivicNoError::Format),
        };
        if !digits.is_ascii() {
            return Err(CivicNoError::Format);
        }
        let date_len = if digits.len() == 12 { 8 } else { 6 };
        let (date_part, tail) = digits.split_at(date_len);
        if !date_part.bytes().all(|b| b.is_ascii_digit()) || tail.len() != 4 {
            return Err(CivicNoError::Format);
        }
        let tail_upper = tail.to_ascii_uppercase();
        let tb = tail_upper.as_bytes();
        // Temporary numbers: letters in the first one or two birth-number positions, digits after.
        let temporary = tb[0].is_ascii_alphabetic();
        if temporary {
            let letters = tb.iter().take_while(|b| b.is_ascii_alphabetic()).count();
            if letters > 2 || !tb[letters..].iter().all(|b| b.is_ascii_digit()) {
                return Err(CivicNoError::Format);
            }
        } else if !tb.iter().all(|b| b.is_ascii_digit()) {
            return Err(CivicNoError::Format);
        }

        let num = |s: &str| s.parse::<u32>().map_err(|_| CivicNoError::Format);
        let (year, mmdd) = if date_len == 8 {
            (num(&date_part[..4])? as i32, &date_part[4..])
        } else {
            let yy = num(&date_part[..2])? as i32;
            let mut year = today.year() - (today.year() - yy).rem_euclid(100);
            let month = num(&date_part[2..4])?;
            let day = num(&date_part[4..6])?;
            let real_day = if day > 60 { day - 60 } else { day };
            // A birthday later this year still means "this century's year is in the future".
            if let Some(d) = NaiveDate::from_ymd_opt(year, month, real_day)
                && d > today
            {
                year -= 100;
            }
            if plus {
                year -= 100;
            }
            (year, &date_part[2..])
        };
        let month = num(&mmdd[..2])?;
        let day = num(&mmdd[2..])?;
        let (kind, real_day) = match day {
            61..=91 => (CivicKind::Samordningsnummer, day - 60),
            _ => (CivicKind::Personnummer, day),
        };
        if NaiveDate::from_ymd_opt(year, month, real_day).is_none() {
            return Err(CivicNoError::Date);
        }
        let kind = if temporary { CivicKind::Temporary } else { kind };
        if !temporary && &tail_upper[..3] == "000" {
            return Err(CivicNoError::BirthNumber);
        }
        // Luhn over YYMMDDNNN as written; a temporary number's letters count as 1.
        let yy = format!("{:02}", year.rem_euclid(100));
        let luhn_input: Vec<u32> =
            format!("{yy}{mmdd}{}", &tail_upper[..3]).chars().map(|c| c.to_digit(10).unwrap_or(1)).collect();
        let check = tail_upper.chars().last().and_then(|c| c.to_digit(10)).ok_or(CivicNoError::Format)?;
        // Two-letter SS 12000 temporary numbers ("TF01") carry no check digit we can verify.
        let two_letters = temporary && tb[1].is_ascii_alphabetic();
        if !two_letters && luhn(&luhn_input) != check {
            return Err(CivicNoError::CheckDigit);
        }
        Ok(CivicNo { value: format!("{year:04}{mmdd}{tail_upper}"), kind })
    }

    /// The full normalised value. Only the state database may hold it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// What kind of number this is.
    pub fn kind(&self) -> CivicKind {
        self.kind
    }

    /// Whether this number may join records into one identity. Temporary numbers may not.
    pub fn is_matchable(&self) -> bool {
        self.kind != CivicKind::Temporary
    }

    /// The masked form shown everywhere outside the state database: `YYYYMMDD-****`.
    pub fn masked(&self) -> String {
        format!("{}-****", &self.value[..8])
    }
}

/// Masks a raw value that failed to parse, for error messages: keeps at most its first 8 chars.
pub fn mask_raw(input: &str) -> String {
    let head: String = input.trim().chars().take(8).collect();
    format!("{head}-****")
}

fn luhn(digits: &[u32]) -> u32 {
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let p = if i % 2 == 0 { d * 2 } else { *d };
            if p > 9 { p - 9 } else { p }
        })
        .sum();
    (10 - sum % 10) % 10
}

impl fmt::Debug for CivicNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CivicNo({})", self.masked())
    }
}

impl fmt::Display for CivicNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    #[test]
    fn personnummer_meta_vectors() {
        // From personnummer/meta (MIT): (separated_long, valid, kind).
        let vectors = [
            ("20150916-0006", false, CivicKind::Personnummer),
            ("19090527+1474", true, CivicKind::Personnummer),
            ("19870704-9996", false, CivicKind::Personnummer),
            ("19821105-9954", true, CivicKind::Personnummer),
            ("19390182-9913", false, CivicKind::Samordningsnummer),
            ("19570574-9959", true, CivicKind::Samordningsnummer),
            ("20121120-9941", false, CivicKind::Personnummer),
            ("19901211-9948", true, CivicKind::Personnummer),
            ("20121075-9984", false, CivicKind::Samordningsnummer),
            ("19730674-9982", true, CivicKind::Samordningsnummer),
            ("18791221+9990", true, CivicKind::Personnummer),
            ("20001209-9891", true, CivicKind::Personnummer),
        ];
        for (input, valid, kind) in vectors {
            let got = CivicNo::parse(input, today());
            assert_eq!(got.is_ok(), valid, "{input}: {got:?}");
            if let Ok(c) = got {
                assert_eq!(c.kind(), kind, "{input}");
                assert_eq!(c.expose(), input.replace(['-', '+'], ""));
            }
        }
    }

    #[test]
    fn short_forms_pick_the_century() {
        let c = CivicNo::parse("821105-9954", today()).unwrap();
        assert_eq!(c.expose(), "198211059954");
        let c = CivicNo::parse("8211059954", today()).unwrap();
        assert_eq!(c.expose(), "198211059954");
        let c = CivicNo::parse("001209-9891", today()).unwrap();
        assert_eq!(c.expose(), "200012099891");
        let c = CivicNo::parse("790527+1474", today()).unwrap_err();
        assert_eq!(c, CivicNoError::CheckDigit); // 1879 vs the 1909 number: different digits
        let c = CivicNo::parse("090527+1474", today()).unwrap();
        assert_eq!(c.expose(), "190905271474");
    }

    #[test]
    fn temporary_numbers_are_accepted_but_not_matchable() {
        let c = CivicNo::parse("20130101TF01", today()).unwrap();
        assert_eq!(c.kind(), CivicKind::Temporary);
        assert!(!c.is_matchable());
        let c = CivicNo::parse("20000101-P220", today()).unwrap();
        assert_eq!(c.kind(), CivicKind::Temporary);
    }

    #[test]
    fn never_prints_the_full_number() {
        let c = CivicNo::parse("19821105-9954", today()).unwrap();
        assert_eq!(format!("{c} {c:?}"), "19821105-**** CivicNo(19821105-****)");
    }

    #[test]
    fn rejects_garbage_and_impossible_dates() {
        assert_eq!(CivicNo::parse("abc", today()), Err(CivicNoError::Format));
        assert_eq!(CivicNo::parse("19821305-9954", today()), Err(CivicNoError::Date));
        assert_eq!(CivicNo::parse("", today()), Err(CivicNoError::Format));
    }
}
