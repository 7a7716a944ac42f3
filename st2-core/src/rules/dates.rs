//! Date parsing for the `timediff_*` operators, after `dateutil.parser.parse` with its defaults
//! (month before day, missing date parts from today, missing time parts zero, fractions cut to
//! microseconds) and StackStorm's `date_utils.parse` (a value without a timezone is UTC; the
//! result is converted to UTC).
//!
//! Covers ISO 8601 (extended and basic, partial times, `Z`/`±hh`/`±hhmm`/`±hh:mm`/`UTC`/`GMT`),
//! RFC 2822 and `ctime()` forms, month and weekday names, `M/D/Y` and `Y/M/D`, AM/PM and
//! time-only strings. Unknown timezone names are ignored, as dateutil does (with a warning).
//! Pure: the caller supplies "now".

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};

/// A token of the date string.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// Digits, with an optional fraction (`00.123` → ("00", "123")).
    Num(String, Option<String>),
    /// Letters, lowercased.
    Word(String),
    /// Any other single character (whitespace dropped).
    Sep(char),
}

fn tokenize(text: &str) -> Vec<Tok> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let int: String = chars[start..i].iter().collect();
            let mut frac = None;
            // A fraction: '.' then digits, not followed by another '.' (dotted dates).
            if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
                if chars.get(j) != Some(&'.') {
                    frac = Some(chars[i + 1..j].iter().collect());
                    i = j;
                }
            }
            toks.push(Tok::Num(int, frac));
        } else if c.is_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_alphabetic() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            toks.push(Tok::Word(word.to_lowercase()));
        } else {
            toks.push(Tok::Sep(c));
            i += 1;
        }
    }
    toks
}

const MONTHS: [&[&str]; 12] = [
    &["jan", "january"],
    &["feb", "february"],
    &["mar", "march"],
    &["apr", "april"],
    &["may"],
    &["jun", "june"],
    &["jul", "july"],
    &["aug", "august"],
    &["sep", "sept", "september"],
    &["oct", "october"],
    &["nov", "november"],
    &["dec", "december"],
];

const WEEKDAYS: [&str; 14] = [
    "mon",
    "monday",
    "tue",
    "tuesday",
    "wed",
    "wednesday",
    "thu",
    "thursday",
    "fri",
    "friday",
    "sat",
    "saturday",
    "sun",
    "sunday",
];

/// dateutil's "jump" words, skipped.
const JUMP: [&str; 10] = ["at", "on", "and", "ad", "m", "t", "of", "st", "nd", "rd"];

fn month_of(word: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|names| names.contains(&word))
        .and_then(|i| u32::try_from(i + 1).ok())
}

#[derive(Debug, Default)]
struct Parts {
    year: Option<(i64, usize)>,
    month: Option<i64>,
    day: Option<i64>,
    hour: Option<i64>,
    minute: Option<i64>,
    second: Option<i64>,
    micro: Option<i64>,
    /// Offset east of UTC, in seconds.
    offset: Option<i64>,
    pm: Option<bool>,
    /// Plain numbers whose role is decided at the end.
    loose: Vec<(i64, usize)>,
}

fn num(s: &str) -> Option<i64> {
    s.parse().ok()
}

fn micros(frac: &str) -> i64 {
    let mut digits: String = frac.chars().take(6).collect();
    while digits.len() < 6 {
        digits.push('0');
    }
    digits.parse().unwrap_or(0)
}

/// Parses `text` like `dateutil.parser.parse` and returns it in UTC (naive values are UTC);
/// `now` supplies the missing date parts. The error is dateutil's message.
pub fn parse_datetime(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let unknown = || format!("Unknown string format: {text}");
    let toks = tokenize(text);
    let mut p = Parts::default();
    let mut i = 0;
    let get = |i: usize| toks.get(i);
    while i < toks.len() {
        match &toks[i] {
            Tok::Num(s, frac) => {
                let n = num(s).ok_or_else(unknown)?;
                // hh:mm[:ss[.f]]
                if get(i + 1) == Some(&Tok::Sep(':')) {
                    if frac.is_some() {
                        return Err(unknown());
                    }
                    let Some(Tok::Num(m, mfrac)) = get(i + 2) else {
                        return Err(unknown());
                    };
                    p.hour = Some(n);
                    p.minute = num(m);
                    i += 3;
                    if mfrac.is_some() {
                        return Err(unknown());
                    }
                    if get(i) == Some(&Tok::Sep(':')) {
                        let Some(Tok::Num(sec, sfrac)) = get(i + 1) else {
                            return Err(unknown());
                        };
                        p.second = num(sec);
                        p.micro = sfrac.as_deref().map(micros);
                        i += 2;
                    }
                    i = parse_offset(&toks, i, &mut p)?;
                    continue;
                }
                // Dates with separators: 2024-01-02, 01/02/2024, 2024.01.02
                if let Some(Tok::Sep(sep @ ('-' | '/' | '.'))) = get(i + 1) {
                    if let Some(Tok::Num(b, None)) = get(i + 2) {
                        if frac.is_some() {
                            return Err(unknown());
                        }
                        let mut nums = vec![(n, s.len()), (num(b).ok_or_else(unknown)?, b.len())];
                        i += 3;
                        if get(i) == Some(&Tok::Sep(*sep)) {
                            if let Some(Tok::Num(c, None)) = get(i + 1) {
                                nums.push((num(c).ok_or_else(unknown)?, c.len()));
                                i += 2;
                            }
                        }
                        assign_date(&mut p, &nums).ok_or_else(unknown)?;
                        continue;
                    }
                    if *sep == '-' {
                        if let Some(Tok::Word(w)) = get(i + 2) {
                            // 02-Jan-2024
                            if let Some(m) = month_of(w) {
                                p.month = Some(i64::from(m));
                                p.loose.push((n, s.len()));
                                i += 3;
                                if get(i) == Some(&Tok::Sep('-')) {
                                    i += 1;
                                }
                                continue;
                            }
                        }
                    }
                }
                if frac.is_some() {
                    // A lone decimal number: dateutil gives odd results; treat as unknown.
                    return Err(unknown());
                }
                let after_t = i > 0 && get(i - 1) == Some(&Tok::Word("t".into()));
                let have_date = p.year.is_some() || p.month.is_some() || p.day.is_some();
                match s.len() {
                    8 if !have_date => {
                        p.year = Some((num(&s[0..4]).unwrap_or(0), 4));
                        p.month = num(&s[4..6]);
                        p.day = num(&s[6..8]);
                    }
                    12 | 14 if !have_date => {
                        p.year = Some((num(&s[0..4]).unwrap_or(0), 4));
                        p.month = num(&s[4..6]);
                        p.day = num(&s[6..8]);
                        p.hour = num(&s[8..10]);
                        p.minute = num(&s[10..12]);
                        if s.len() == 14 {
                            p.second = num(&s[12..14]);
                        }
                    }
                    6 if have_date || after_t => {
                        p.hour = num(&s[0..2]);
                        p.minute = num(&s[2..4]);
                        p.second = num(&s[4..6]);
                        if let Some(Tok::Sep('.')) = get(i + 1) {
                            if let Some(Tok::Num(f, None)) = get(i + 2) {
                                p.micro = Some(micros(f));
                                i += 2;
                            }
                        }
                        i = parse_offset(&toks, i + 1, &mut p)?;
                        continue;
                    }
                    6 => {
                        p.year = Some((num(&s[0..2]).unwrap_or(0), 2));
                        p.month = num(&s[2..4]);
                        p.day = num(&s[4..6]);
                    }
                    4 if after_t => {
                        p.hour = num(&s[0..2]);
                        p.minute = num(&s[2..4]);
                        i = parse_offset(&toks, i + 1, &mut p)?;
                        continue;
                    }
                    1 | 2 if after_t => {
                        p.hour = Some(n);
                        i = parse_offset(&toks, i + 1, &mut p)?;
                        continue;
                    }
                    1 | 2 if matches!(get(i + 1), Some(Tok::Word(w)) if is_ampm(w)) => {
                        p.hour = Some(n);
                    }
                    _ => p.loose.push((n, s.len())),
                }
                i += 1;
            }
            Tok::Word(w) => {
                if let Some(m) = month_of(w) {
                    if p.month.is_some() {
                        return Err(unknown());
                    }
                    p.month = Some(i64::from(m));
                } else if is_ampm(w) {
                    let hour = p.hour.ok_or_else(unknown)?;
                    if !(0..=12).contains(&hour) {
                        return Err(unknown());
                    }
                    p.pm = Some(w.starts_with('p'));
                } else if matches!(w.as_str(), "z" | "utc" | "gmt" | "ut") {
                    p.offset = Some(0);
                    i = parse_offset(&toks, i + 1, &mut p)?;
                    continue;
                } else if WEEKDAYS.contains(&w.as_str()) || JUMP.contains(&w.as_str()) || w == "th"
                {
                    // ignored
                } else if p.hour.is_some()
                    && p.offset.is_none()
                    && (3..=5).contains(&w.len())
                    && text.contains(&w.to_uppercase())
                {
                    // An unknown timezone name (EST, CEST): ignored, the value stays naive.
                } else {
                    return Err(unknown());
                }
                i += 1;
            }
            Tok::Sep(',' | '.' | '-' | '/' | ';' | '\'') => i += 1,
            Tok::Sep(_) => return Err(unknown()),
        }
    }
    build(text, p, now)
}

fn is_ampm(w: &str) -> bool {
    matches!(w, "am" | "pm" | "a" | "p")
}

/// A `+hh[:mm]`/`-hhmm` offset right after a time, if there is one; returns the next index.
fn parse_offset(toks: &[Tok], i: usize, p: &mut Parts) -> Result<usize, String> {
    let sign = match toks.get(i) {
        Some(Tok::Sep('+')) => 1,
        Some(Tok::Sep('-')) => -1,
        _ => return Ok(i),
    };
    let Some(Tok::Num(s, None)) = toks.get(i + 1) else {
        return Ok(i);
    };
    let (hours, mut minutes, mut next) = match s.len() {
        4 => (
            num(&s[0..2]).unwrap_or(0),
            num(&s[2..4]).unwrap_or(0),
            i + 2,
        ),
        1 | 2 => (num(s).unwrap_or(0), 0, i + 2),
        _ => return Ok(i),
    };
    if s.len() <= 2 && toks.get(next) == Some(&Tok::Sep(':')) {
        if let Some(Tok::Num(m, None)) = toks.get(next + 1) {
            minutes = num(m).unwrap_or(0);
            next += 2;
        }
    }
    p.offset = Some(sign * (hours * 3600 + minutes * 60));
    Ok(next)
}

/// Assigns `Y-M-D`, `M/D/Y`, `D/M/Y` (day > 12) or `M/D` numbers.
fn assign_date(p: &mut Parts, nums: &[(i64, usize)]) -> Option<()> {
    if p.year.is_some() || p.month.is_some() || p.day.is_some() {
        return None;
    }
    match nums {
        [(a, la), (b, _), (c, lc)] => {
            if *la >= 3 || *a > 31 {
                p.year = Some((*a, *la));
                p.month = Some(*b);
                p.day = Some(*c);
            } else if *a > 12 {
                p.day = Some(*a);
                p.month = Some(*b);
                p.year = Some((*c, *lc));
            } else {
                p.month = Some(*a);
                p.day = Some(*b);
                p.year = Some((*c, *lc));
            }
        }
        [(a, la), (b, lb)] => {
            if *la >= 3 || *a > 31 {
                p.year = Some((*a, *la));
                p.month = Some(*b);
            } else if *b > 31 || *lb >= 3 {
                p.month = Some(*a);
                p.year = Some((*b, *lb));
            } else {
                p.month = Some(*a);
                p.day = Some(*b);
            }
        }
        _ => return None,
    }
    Some(())
}

fn build(text: &str, mut p: Parts, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    // Loose numbers: day first (if it fits), then year.
    for (n, len) in std::mem::take(&mut p.loose) {
        if p.day.is_none() && len <= 2 && (1..=31).contains(&n) {
            p.day = Some(n);
        } else if p.year.is_none() {
            p.year = Some((n, len));
        } else if p.month.is_none() && (1..=12).contains(&n) {
            p.month = Some(n);
        } else {
            return Err(format!("Unknown string format: {text}"));
        }
    }
    let nothing = p.year.is_none()
        && p.month.is_none()
        && p.day.is_none()
        && p.hour.is_none()
        && p.offset.is_none();
    if nothing {
        return Err(format!("String does not contain a date: {text}"));
    }
    let fail = |what: &str| format!("{what}: {text}");
    let today = now.date_naive();
    let year = match p.year {
        Some((y, len)) if len <= 2 && y < 100 => {
            // dateutil: a two-digit year lands within 50 years of now.
            let current = i64::from(today.year());
            let mut y = y + current / 100 * 100;
            if y >= current + 50 {
                y -= 100;
            } else if y < current - 50 {
                y += 100;
            }
            y
        }
        Some((y, _)) => y,
        None => i64::from(today.year()),
    };
    if !(1..=9999).contains(&year) {
        return Err(fail(&format!("year {year} is out of range")));
    }
    let month = p.month.unwrap_or_else(|| i64::from(today.month()));
    if !(1..=12).contains(&month) {
        return Err(fail("month must be in 1..12"));
    }
    let day = p.day.unwrap_or_else(|| i64::from(today.day()));
    let mut hour = p.hour.unwrap_or(0);
    if let Some(pm) = p.pm {
        if pm && hour < 12 {
            hour += 12;
        } else if !pm && hour == 12 {
            hour = 0;
        }
    }
    let minute = p.minute.unwrap_or(0);
    let second = p.second.unwrap_or(0);
    let micro = p.micro.unwrap_or(0);
    let to_u32 = |v: i64| u32::try_from(v).ok();
    let (Some(y), Some(m), Some(d)) = (i32::try_from(year).ok(), to_u32(month), to_u32(day)) else {
        return Err(fail("day is out of range for month"));
    };
    let date =
        NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| fail("day is out of range for month"))?;
    if !(0..=23).contains(&hour) {
        return Err(fail("hour must be in 0..23"));
    }
    if !(0..=59).contains(&minute) {
        return Err(fail("minute must be in 0..59"));
    }
    if !(0..=59).contains(&second) {
        return Err(fail("second must be in 0..59"));
    }
    let time = NaiveTime::from_hms_micro_opt(
        to_u32(hour).unwrap_or(0),
        to_u32(minute).unwrap_or(0),
        to_u32(second).unwrap_or(0),
        to_u32(micro).unwrap_or(0),
    )
    .ok_or_else(|| fail("second must be in 0..59"))?;
    let naive = NaiveDateTime::new(date, time) - Duration::seconds(p.offset.unwrap_or(0));
    Ok(naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 7, 18, 34)
            .single()
            .expect("valid")
    }

    #[test]
    fn parses_like_dateutil() {
        let cases = [
            ("2024-01-01", "2024-01-01T00:00:00Z"),
            ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
            ("2024-01-01 10:00:00+02:00", "2024-01-01T08:00:00Z"),
            ("2024-01-01T10:00:00-0530", "2024-01-01T15:30:00Z"),
            ("2024-01-01T10:00:00+05", "2024-01-01T05:00:00Z"),
            ("20240101T101010", "2024-01-01T10:10:10Z"),
            ("20240101", "2024-01-01T00:00:00Z"),
            ("Mon, 01 Jan 2024 10:00:00 GMT", "2024-01-01T10:00:00Z"),
            ("Mon, 01 Jan 2024 10:00:00 +0100", "2024-01-01T09:00:00Z"),
            ("Jan 2 2024", "2024-01-02T00:00:00Z"),
            ("2 January 2024 10:00", "2024-01-02T10:00:00Z"),
            ("01/02/2024", "2024-01-02T00:00:00Z"),
            ("13/02/2024", "2024-02-13T00:00:00Z"),
            ("2024/01/02", "2024-01-02T00:00:00Z"),
            ("10:30", "2026-11-22T10:30:00Z"),
            (
                "2024-01-01T10:00:00.1234567Z",
                "2024-01-01T10:00:00.123456Z",
            ),
            ("2024-01-01T10:00:00.5", "2024-01-01T10:00:00.500Z"),
            ("2024-01-01T10:00:00 UTC", "2024-01-01T10:00:00Z"),
            ("2024-01-01T10:00:00 EST", "2024-01-01T10:00:00Z"),
            ("2024-1-2", "2024-01-02T00:00:00Z"),
            ("2024-01-01T10:00", "2024-01-01T10:00:00Z"),
            ("2024-01-01T10", "2024-01-01T10:00:00Z"),
            ("12/31/2024 11:59 PM", "2024-12-31T23:59:00Z"),
            ("12/31/2024 12:05 am", "2024-12-31T00:05:00Z"),
            ("Tue Jan  2 10:00:00 2024", "2024-01-02T10:00:00Z"),
            ("1234", "1234-11-22T00:00:00Z"),
            ("02-Jan-2024", "2024-01-02T00:00:00Z"),
            ("2024-01-01 10:00:00.000000+00:00", "2024-01-01T10:00:00Z"),
        ];
        for (text, want) in cases {
            let got = parse_datetime(text, now()).unwrap_or_else(|e| panic!("{text}: {e}"));
            let want = DateTime::parse_from_rfc3339(want)
                .expect("valid")
                .with_timezone(&Utc);
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn errors_like_dateutil() {
        let cases = [
            ("None", "Unknown string format: None"),
            ("True", "Unknown string format: True"),
            ("", "String does not contain a date: "),
            ("[1, 2]", "Unknown string format: [1, 2]"),
            (
                "2024-01-01T25:00:00",
                "hour must be in 0..23: 2024-01-01T25:00:00",
            ),
            ("2024-02-30", "day is out of range for month: 2024-02-30"),
            ("hello world", "Unknown string format: hello world"),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_datetime(text, now()).expect_err("an error"),
                want,
                "{text:?}"
            );
        }
    }
}
