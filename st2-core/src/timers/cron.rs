//! `core.st2.CronTimer` schedules with APScheduler's `CronTrigger` semantics (pure).
//!
//! StackStorm hands a CronTimer's parameters straight to APScheduler 3's `CronTrigger`, whose
//! rules differ from Unix cron in ways users rely on, so they are implemented here rather than
//! translated to a Unix-cron library:
//!
//! - Fields, most to least significant: `year` (1970–9999), `month` (1–12), `day` (1–31),
//!   `week` (ISO week, 1–53), `day_of_week` (**0 = Monday … 6 = Sunday**, unlike cron's 0 =
//!   Sunday), `hour`, `minute`, `second`. Each is an integer or an expression string.
//! - Expressions (comma lists allowed): `*`, `*/n`, `a`, `a-b`, `a-b/n`, `a/n`; month names
//!   `jan`–`dec` and weekday names `mon`–`sun` (single or `mon-fri` ranges); in `day` also
//!   `last` (last day of the month) and `1st`…`5th`/`last` + weekday (`"2nd tue"`, `"last fri"`).
//! - Omitted fields: those more significant than the least significant given field are `*`;
//!   those below it take their minimum (`hour: 5` means 05:00:00 every day); `week` and
//!   `day_of_week` are always `*` when omitted. No field at all fires every second.
//! - All fields must match (`day` and `day_of_week` are AND-ed, not OR-ed as in Unix cron).
//! - Granularity is one second; times are wall-clock times in the timer's `timezone`.
//!
//! Daylight-saving transitions (where APScheduler's behaviour depends on pytz quirks): a matching
//! wall-clock time that does not exist (spring forward) fires once at the transition instant, as
//! Vixie cron runs skipped jobs right after the jump; a wall-clock time that occurs twice (fall
//! back) fires once, at its first occurrence.

use std::fmt;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;

/// Field names in APScheduler's order (most significant first).
pub const CRON_FIELDS: [&str; 8] = [
    "year",
    "month",
    "day",
    "week",
    "day_of_week",
    "hour",
    "minute",
    "second",
];

const MIN_YEAR: i32 = 1970;
const MAX_YEAR: i32 = 9999;
/// Days examined before a schedule is declared never to fire again (~550 years: every pattern
/// without a year restriction repeats within the 400-year Gregorian cycle).
const MAX_DAYS_SCANNED: u32 = 200_000;

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Why a cron field is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} expression {expr:?}: {reason}")]
pub struct CronFieldError {
    /// The field (`day_of_week`, ...).
    pub field: &'static str,
    /// The expression given.
    pub expr: String,
    /// What is wrong.
    pub reason: String,
}

/// An inclusive range with a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    first: u32,
    last: u32,
    step: u32,
}

impl Range {
    fn contains(&self, v: u32) -> bool {
        v >= self.first && v <= self.last && (v - self.first).checked_rem(self.step) == Some(0)
    }
}

/// One `day` expression: a plain range (clamped to the month's length), `last`, or the n-th /
/// last given weekday of the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DayExpr {
    Range(Range),
    LastDay,
    /// `(1..=5, weekday 0=mon)`; n = 0 means `last`.
    NthWeekday(u32, u32),
}

/// A parsed CronTimer schedule (see the module docs for the semantics).
#[derive(Debug, Clone, PartialEq)]
pub struct CronSpec {
    years: Vec<Range>,
    /// Bits 1..=12.
    months: u16,
    days: Vec<DayExpr>,
    /// Bits 1..=53.
    weeks: u64,
    /// Bits 0..=6, Monday = 0.
    days_of_week: u8,
    hours: u64,
    minutes: u64,
    seconds: u64,
    tz: Tz,
    /// The expression used for each field after defaults, for display.
    exprs: [String; 8],
}

impl fmt::Display for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<String> = CRON_FIELDS
            .iter()
            .zip(&self.exprs)
            .map(|(name, expr)| format!("{name}='{expr}'"))
            .collect();
        write!(
            f,
            "cron[{}, timezone='{}']",
            fields.join(", "),
            self.tz.name()
        )
    }
}

impl CronSpec {
    /// Builds a schedule from field expressions given as `(field name, expression)`, applying
    /// APScheduler's defaults to the omitted fields. Field names must be from [`CRON_FIELDS`].
    pub fn new(fields: &[(&str, String)], tz: Tz) -> Result<Self, CronFieldError> {
        for (name, expr) in fields {
            if !CRON_FIELDS.contains(name) {
                return Err(CronFieldError {
                    field: "cron",
                    expr: expr.clone(),
                    reason: format!("unknown field {name:?}"),
                });
            }
        }
        let given = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, e)| e.clone())
        };
        let last_given = CRON_FIELDS.iter().rposition(|f| given(f).is_some());
        let exprs: [String; 8] = std::array::from_fn(|i| {
            let name = CRON_FIELDS[i];
            match (given(name), last_given) {
                (Some(e), _) => e,
                (None, Some(last)) if i > last => default_expr(name).to_string(),
                _ => "*".to_string(),
            }
        });
        Ok(CronSpec {
            years: numeric_field("year", &exprs[0], MIN_YEAR as u32, MAX_YEAR as u32, None)?,
            months: mask(&numeric_field("month", &exprs[1], 1, 12, Some(&MONTHS))?) as u16,
            days: day_field(&exprs[2])?,
            weeks: mask(&numeric_field("week", &exprs[3], 1, 53, None)?),
            days_of_week: mask(&numeric_field(
                "day_of_week",
                &exprs[4],
                0,
                6,
                Some(&WEEKDAYS),
            )?) as u8,
            hours: mask(&numeric_field("hour", &exprs[5], 0, 23, None)?),
            minutes: mask(&numeric_field("minute", &exprs[6], 0, 59, None)?),
            seconds: mask(&numeric_field("second", &exprs[7], 0, 59, None)?),
            tz,
            exprs,
        })
    }

    /// The timezone wall-clock fields are matched in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first fire time strictly after `after`, or `None` if the schedule never fires again.
    pub fn next_fire(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local_after = after.with_timezone(&self.tz).naive_local();
        // Whole seconds only; any local time up to the one of `after` maps to an instant no later
        // than `after` (local → instant is non-decreasing, see `resolve`).
        let mut start = local_after.with_nanosecond(0)? + Duration::seconds(1);
        // Candidates whose instant is not after `after` happen only around a fall-back (the
        // repeated hour maps to its first pass) or a spring-forward (the gap maps to one instant):
        // at most an hour or so of seconds.
        for _ in 0..100_000 {
            let local = self.next_local(start)?;
            let at = resolve(self.tz, local);
            if at > after {
                return Some(at);
            }
            start = local + Duration::seconds(1);
        }
        None
    }

    /// The first matching wall-clock time at or after `start`.
    fn next_local(&self, start: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut date = start.date();
        let mut from = Some(start.time());
        let mut day_mask_for: Option<((i32, u32), u32)> = None;
        for _ in 0..MAX_DAYS_SCANNED {
            let (y, m) = (date.year(), date.month());
            if y > MAX_YEAR {
                return None;
            }
            if !self.year_ok(y) {
                let ny = self.next_year(y + 1)?;
                date = NaiveDate::from_ymd_opt(ny, 1, 1)?;
                from = None;
                continue;
            }
            if self.months & (1 << m) == 0 {
                date = first_of_next_month(y, m)?;
                from = None;
                continue;
            }
            let day_mask = match day_mask_for {
                Some((ym, dm)) if ym == (y, m) => dm,
                _ => {
                    let dm = self.day_mask(y, m);
                    day_mask_for = Some(((y, m), dm));
                    dm
                }
            };
            let d = date.day();
            if day_mask & (1 << d) == 0 {
                date = match next_bit(u64::from(day_mask), d + 1) {
                    Some(nd) => NaiveDate::from_ymd_opt(y, m, nd)?,
                    None => first_of_next_month(y, m)?,
                };
                from = None;
                continue;
            }
            let week_ok = self.weeks & (1 << date.iso_week().week()) != 0;
            let dow_ok = self.days_of_week & (1 << date.weekday().num_days_from_monday()) != 0;
            if week_ok && dow_ok {
                if let Some(t) = self.next_time(from.unwrap_or(NaiveTime::MIN)) {
                    return Some(date.and_time(t));
                }
            }
            date = date.succ_opt()?;
            from = None;
        }
        None
    }

    /// The first matching time of day at or after `t`.
    fn next_time(&self, t: NaiveTime) -> Option<NaiveTime> {
        let (h0, m0, s0) = (t.hour(), t.minute(), t.second());
        let first_min = next_bit(self.minutes, 0)?;
        let first_sec = next_bit(self.seconds, 0)?;
        let at = |h, m, s| NaiveTime::from_hms_opt(h, m, s);
        if self.hours & (1 << h0) != 0 {
            if self.minutes & (1 << m0) != 0 {
                if let Some(s) = next_bit(self.seconds, s0) {
                    return at(h0, m0, s);
                }
            }
            if let Some(m) = next_bit(self.minutes, m0 + 1) {
                return at(h0, m, first_sec);
            }
        }
        let h = next_bit(self.hours, h0 + 1)?;
        at(h, first_min, first_sec)
    }

    fn year_ok(&self, y: i32) -> bool {
        u32::try_from(y).is_ok_and(|y| self.years.iter().any(|r| r.contains(y)))
    }

    fn next_year(&self, from: i32) -> Option<i32> {
        let from = u32::try_from(from).ok()?;
        self.years
            .iter()
            .filter_map(|r| {
                if from <= r.first {
                    Some(r.first)
                } else if from > r.last {
                    None
                } else {
                    let k = (from - r.first).div_ceil(r.step);
                    let y = r.first + k * r.step;
                    (y <= r.last).then_some(y)
                }
            })
            .min()
            .and_then(|y| i32::try_from(y).ok())
    }

    /// Bits 1..=31 of the days of month `m` of year `y` that the `day` field allows.
    fn day_mask(&self, y: i32, m: u32) -> u32 {
        let len = days_in_month(y, m);
        let mut out = 0u32;
        for expr in &self.days {
            match *expr {
                DayExpr::Range(r) => {
                    for d in r.first..=r.last.min(len) {
                        if r.contains(d) {
                            out |= 1 << d;
                        }
                    }
                }
                DayExpr::LastDay => out |= 1 << len,
                DayExpr::NthWeekday(n, wd) => {
                    let Some(first) = NaiveDate::from_ymd_opt(y, m, 1) else {
                        continue;
                    };
                    let first_wd = first.weekday().num_days_from_monday();
                    let first_match = 1 + (wd + 7 - first_wd) % 7;
                    let day = if n == 0 {
                        first_match + 7 * ((len - first_match) / 7)
                    } else {
                        first_match + 7 * (n - 1)
                    };
                    if day <= len {
                        out |= 1 << day;
                    }
                }
            }
        }
        out
    }
}

/// APScheduler's `DEFAULT_VALUES` for fields below the least significant given one.
fn default_expr(field: &str) -> &'static str {
    match field {
        "month" | "day" => "1",
        "hour" | "minute" | "second" => "0",
        _ => "*",
    }
}

/// The instant a wall-clock time denotes: the first occurrence of a repeated time, the
/// transition instant for a time inside a spring-forward gap. Non-decreasing in `local`.
fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Smallest instant whose wall-clock reading is past `local`: the end of the gap.
            // UTC offsets lie within ±15 h, so the answer is inside this window.
            let base = local.and_utc().timestamp();
            let (mut lo, mut hi) = (base - 15 * 3600, base + 15 * 3600);
            let past = |secs: i64| {
                DateTime::from_timestamp(secs, 0)
                    .map(|t| t.with_timezone(&tz).naive_local() > local)
                    .unwrap_or(true)
            };
            while lo + 1 < hi {
                let mid = lo + (hi - lo) / 2;
                if past(mid) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            DateTime::from_timestamp(hi, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
        }
    }
}

fn days_in_month(y: i32, m: u32) -> u32 {
    first_of_next_month(y, m)
        .and_then(|n| n.pred_opt())
        .map(|d| d.day())
        .unwrap_or(31)
}

fn first_of_next_month(y: i32, m: u32) -> Option<NaiveDate> {
    if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    }
}

/// The lowest set bit at or above `from`.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = mask >> from;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

fn mask(ranges: &[Range]) -> u64 {
    let mut out = 0u64;
    for r in ranges {
        let mut v = r.first;
        while v <= r.last {
            out |= 1 << v;
            v += r.step;
        }
    }
    out
}

/// Parses a numeric field's comma list into ranges; `names` are accepted in place of numbers
/// (`names[0]` is the field's minimum).
fn numeric_field(
    field: &'static str,
    exprs: &str,
    min: u32,
    max: u32,
    names: Option<&[&str]>,
) -> Result<Vec<Range>, CronFieldError> {
    exprs
        .split(',')
        .map(|part| numeric_expr(field, part.trim(), min, max, names))
        .collect()
}

fn numeric_expr(
    field: &'static str,
    expr: &str,
    min: u32,
    max: u32,
    names: Option<&[&str]>,
) -> Result<Range, CronFieldError> {
    let err = |reason: String| CronFieldError {
        field,
        expr: expr.to_string(),
        reason,
    };
    let lower = expr.to_ascii_lowercase();
    // Named values: `mon`, `mon-fri`, `jan`, `jan-mar` (no step, as in APScheduler).
    if let Some(names) = names {
        let name_value = |s: &str| names.iter().position(|n| *n == s).map(|i| min + i as u32);
        let (a, b) = lower.split_once('-').unwrap_or((&lower, &lower));
        if let (Some(first), Some(last)) = (name_value(a), name_value(b)) {
            if first > last {
                return Err(err(
                    "the minimum value in a range must not be higher than the maximum".into(),
                ));
            }
            return Ok(Range {
                first,
                last,
                step: 1,
            });
        }
    }
    let (body, step) = match lower.split_once('/') {
        Some((body, step)) => {
            let step: u32 = step
                .parse()
                .map_err(|_| err(format!("bad step {step:?}")))?;
            if step == 0 {
                return Err(err("the step must be higher than 0".into()));
            }
            (body, Some(step))
        }
        None => (lower.as_str(), None),
    };
    let number = |s: &str| -> Result<u32, CronFieldError> {
        s.parse::<u32>()
            .map_err(|_| err(format!("unrecognised expression {expr:?}")))
    };
    let (first, last) = if body == "*" {
        (min, max)
    } else if let Some((a, b)) = body.split_once('-') {
        (number(a)?, number(b)?)
    } else {
        let a = number(body)?;
        // `a/n` runs to the field's maximum; a plain `a` is the single value.
        (a, if step.is_some() { max } else { a })
    };
    if first > last {
        return Err(err(
            "the minimum value in a range must not be higher than the maximum".into(),
        ));
    }
    if first < min {
        return Err(err(format!(
            "the first value ({first}) is lower than the minimum value ({min})"
        )));
    }
    if last > max {
        return Err(err(format!(
            "the last value ({last}) is higher than the maximum value ({max})"
        )));
    }
    if let Some(step) = step {
        if step > last - first {
            return Err(err(format!(
                "the step value ({step}) is higher than the total range of the expression ({})",
                last - first
            )));
        }
    }
    Ok(Range {
        first,
        last,
        step: step.unwrap_or(1),
    })
}

fn day_field(exprs: &str) -> Result<Vec<DayExpr>, CronFieldError> {
    exprs
        .split(',')
        .map(|part| {
            let part = part.trim();
            let lower = part.to_ascii_lowercase();
            if lower == "last" {
                return Ok(DayExpr::LastDay);
            }
            let mut words = lower.split_whitespace();
            if let (Some(pos), Some(wd), None) = (words.next(), words.next(), words.next()) {
                let n = match pos {
                    "1st" => 1,
                    "2nd" => 2,
                    "3rd" => 3,
                    "4th" => 4,
                    "5th" => 5,
                    "last" => 0,
                    _ => {
                        return Err(CronFieldError {
                            field: "day",
                            expr: part.to_string(),
                            reason: format!(
                                "bad position {pos:?} (1st, 2nd, 3rd, 4th, 5th or last)"
                            ),
                        })
                    }
                };
                let Some(wd) = WEEKDAYS.iter().position(|w| *w == wd) else {
                    return Err(CronFieldError {
                        field: "day",
                        expr: part.to_string(),
                        reason: format!("bad weekday {wd:?} (mon … sun)"),
                    });
                };
                return Ok(DayExpr::NthWeekday(n, wd as u32));
            }
            numeric_expr("day", part, 1, 31, None).map(DayExpr::Range)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn spec(fields: &[(&str, &str)]) -> CronSpec {
        let fields: Vec<(&str, String)> = fields.iter().map(|(k, v)| (*k, v.to_string())).collect();
        CronSpec::new(&fields, Tz::UTC).expect("valid cron")
    }

    #[test]
    fn defaults_follow_apscheduler() {
        // hour given: minute and second default to 0, day/month to '*'.
        let s = spec(&[("hour", "5")]);
        assert_eq!(
            s.exprs,
            ["*", "*", "*", "*", "*", "5", "0", "0"].map(String::from)
        );
        // month given: day defaults to 1, week/day_of_week stay '*', time to 0.
        let s = spec(&[("month", "6")]);
        assert_eq!(
            s.exprs,
            ["*", "6", "1", "*", "*", "0", "0", "0"].map(String::from)
        );
        // second given (least significant): everything else is '*'.
        let s = spec(&[("second", "*/15")]);
        assert_eq!(
            s.exprs[..7],
            ["*", "*", "*", "*", "*", "*", "*"].map(String::from)
        );
    }

    #[test]
    fn table() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<&'a str>);
        let cases: &[Case] = &[
            (
                &[("second", "*/15")],
                "2024-05-01T10:00:00Z",
                Some("2024-05-01T10:00:15Z"),
            ),
            (
                &[("second", "*/15")],
                "2024-05-01T10:00:14.9Z",
                Some("2024-05-01T10:00:15Z"),
            ),
            (
                &[("second", "*/15")],
                "2024-05-01T10:00:45Z",
                Some("2024-05-01T10:01:00Z"),
            ),
            (
                &[("minute", "*/5")],
                "2024-05-01T10:03:10Z",
                Some("2024-05-01T10:05:00Z"),
            ),
            (
                &[("hour", "5")],
                "2024-05-01T10:00:00Z",
                Some("2024-05-02T05:00:00Z"),
            ),
            // 2024-05-01 is a Wednesday; APScheduler's day_of_week 0 is Monday.
            (
                &[("day_of_week", "0"), ("hour", "9")],
                "2024-05-01T00:00:00Z",
                Some("2024-05-06T09:00:00Z"),
            ),
            (
                &[("day_of_week", "6"), ("hour", "9")],
                "2024-05-01T00:00:00Z",
                Some("2024-05-05T09:00:00Z"),
            ),
            (
                &[("day_of_week", "sun"), ("hour", "9")],
                "2024-05-01T00:00:00Z",
                Some("2024-05-05T09:00:00Z"),
            ),
            (
                &[("day_of_week", "mon-fri"), ("hour", "9")],
                "2024-05-03T10:00:00Z",
                Some("2024-05-06T09:00:00Z"),
            ),
            (
                &[("day_of_week", "5-6"), ("hour", "0")],
                "2024-05-01T00:00:00Z",
                Some("2024-05-04T00:00:00Z"),
            ),
            // day AND day_of_week: the 13th that is a Friday (2024-09-13).
            (
                &[("day", "13"), ("day_of_week", "fri")],
                "2024-05-01T00:00:00Z",
                Some("2024-09-13T00:00:00Z"),
            ),
            (
                &[("day", "last")],
                "2024-02-10T00:00:00Z",
                Some("2024-02-29T00:00:00Z"),
            ),
            (
                &[("day", "last fri")],
                "2024-05-01T00:00:00Z",
                Some("2024-05-31T00:00:00Z"),
            ),
            (
                &[("day", "2nd tue")],
                "2024-05-01T00:00:00Z",
                Some("2024-05-14T00:00:00Z"),
            ),
            (
                &[("day", "31")],
                "2024-04-01T00:00:00Z",
                Some("2024-05-31T00:00:00Z"),
            ),
            (
                &[("month", "feb"), ("day", "29")],
                "2024-03-01T00:00:00Z",
                Some("2028-02-29T00:00:00Z"),
            ),
            (
                &[("month", "feb"), ("day", "30")],
                "2024-03-01T00:00:00Z",
                None,
            ),
            (
                &[("year", "2030")],
                "2024-03-01T00:00:00Z",
                Some("2030-01-01T00:00:00Z"),
            ),
            (&[("year", "2020")], "2024-03-01T00:00:00Z", None),
            (
                &[("week", "10"), ("day_of_week", "0")],
                "2024-01-01T00:00:00Z",
                Some("2024-03-04T00:00:00Z"),
            ),
            (
                &[("hour", "*/6"), ("minute", "30")],
                "2024-05-01T06:31:00Z",
                Some("2024-05-01T12:30:00Z"),
            ),
            (
                &[("minute", "5/20")],
                "2024-05-01T06:46:00Z",
                Some("2024-05-01T07:05:00Z"),
            ),
            (
                &[("hour", "1,13"), ("minute", "0")],
                "2024-05-01T02:00:00Z",
                Some("2024-05-01T13:00:00Z"),
            ),
            (&[], "2024-05-01T02:00:00Z", Some("2024-05-01T02:00:01Z")),
        ];
        for (fields, after, want) in cases {
            let got = spec(fields).next_fire(utc(after));
            assert_eq!(got, want.map(utc), "{fields:?} after {after}");
        }
    }

    #[test]
    fn rejects_bad_expressions() {
        for (field, expr, needle) in [
            ("day_of_week", "7", "higher than the maximum"),
            ("hour", "24", "higher than the maximum"),
            ("month", "0", "lower than the minimum"),
            ("minute", "*/0", "higher than 0"),
            ("second", "*/61", "step value"),
            ("hour", "5-3", "must not be higher"),
            ("day", "6th fri", "bad position"),
            ("day", "1st xyz", "bad weekday"),
            ("minute", "abc", "unrecognised"),
            ("year", "1969", "lower than the minimum"),
        ] {
            let err = CronSpec::new(&[(field, expr.to_string())], Tz::UTC).expect_err(expr);
            assert!(err.to_string().contains(needle), "{field}={expr}: {err}");
        }
    }

    #[test]
    fn resolve_is_monotone_across_transitions() {
        let tz: Tz = "America/New_York".parse().expect("tz");
        let mut prev = resolve(
            tz,
            NaiveDate::from_ymd_opt(2024, 3, 10)
                .expect("d")
                .and_hms_opt(0, 0, 0)
                .expect("t"),
        );
        let mut t = NaiveDate::from_ymd_opt(2024, 3, 10)
            .expect("d")
            .and_hms_opt(0, 0, 0)
            .expect("t");
        for _ in 0..(4 * 60) {
            t += Duration::minutes(1);
            let r = resolve(tz, t);
            assert!(r >= prev, "{t}: {r} < {prev}");
            prev = r;
        }
        // 02:30 does not exist on 2024-03-10: it maps to the jump, 03:00 EDT = 07:00 UTC.
        let gap = NaiveDate::from_ymd_opt(2024, 3, 10)
            .expect("d")
            .and_hms_opt(2, 30, 0)
            .expect("t");
        assert_eq!(resolve(tz, gap), utc("2024-03-10T07:00:00Z"));
    }
}
