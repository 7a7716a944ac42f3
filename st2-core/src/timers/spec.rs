//! [`TimerSpec`]: a timer trigger's parameters turned into a schedule (pure).

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use super::cron::CronSpec;
use super::{TimerError, CRON_TIMER, DATE_TIMER, INTERVAL_TIMER};
use crate::model::JsonMap;

/// How often an `core.st2.IntervalTimer` fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalSpec {
    /// The period (always positive).
    pub every: TimeDelta,
}

/// When a `core.st2.DateTimer` fires (once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateSpec {
    /// The instant.
    pub at: DateTime<Utc>,
}

/// A timer's schedule, from one of the three timer trigger types.
#[derive(Debug, Clone, PartialEq)]
pub enum TimerSpec {
    /// `core.st2.IntervalTimer`: every `delta` `unit`s, the first one period after the timer is
    /// added (APScheduler's `IntervalTrigger` starts at "now + interval").
    Interval(IntervalSpec),
    /// `core.st2.DateTimer`: once, at `date`; never if that is already past.
    Date(DateSpec),
    /// `core.st2.CronTimer`: APScheduler cron fields (see [`CronSpec`]).
    Cron(Box<CronSpec>),
}

impl TimerSpec {
    /// Parses a timer trigger's parameters; cron and naive dates use UTC when the parameters
    /// name no `timezone`.
    pub fn from_trigger(trigger_type: &str, parameters: &JsonMap) -> Result<Self, TimerError> {
        Self::from_trigger_in(trigger_type, parameters, Tz::UTC)
    }

    /// Parses a timer trigger's parameters; `default_tz` (StackStorm's
    /// `timersengine.local_timezone`) applies when the parameters name no `timezone`.
    pub fn from_trigger_in(
        trigger_type: &str,
        parameters: &JsonMap,
        default_tz: Tz,
    ) -> Result<Self, TimerError> {
        let p = Params {
            trigger_type,
            parameters,
        };
        match trigger_type {
            INTERVAL_TIMER => {
                p.only(&["unit", "delta", "timezone"])?;
                p.timezone(default_tz)?;
                let unit = p.required_str("unit")?;
                let delta = match p.required("delta")? {
                    Value::Number(n) => n.as_i64(),
                    _ => None,
                }
                .ok_or_else(|| p.invalid("delta", "must be an integer"))?;
                if delta <= 0 {
                    return Err(p.invalid("delta", "must be a positive integer"));
                }
                let every = match unit {
                    "weeks" => TimeDelta::try_weeks(delta),
                    "days" => TimeDelta::try_days(delta),
                    "hours" => TimeDelta::try_hours(delta),
                    "minutes" => TimeDelta::try_minutes(delta),
                    "seconds" => TimeDelta::try_seconds(delta),
                    "milliseconds" => TimeDelta::try_milliseconds(delta),
                    other => {
                        return Err(p.invalid(
                            "unit",
                            &format!(
                                "{other:?} is not one of weeks, days, hours, minutes, seconds, \
                                 milliseconds"
                            ),
                        ))
                    }
                }
                // The schedule works in nanoseconds; ~292 years is plenty.
                .filter(|d| d.num_nanoseconds().is_some())
                .ok_or_else(|| p.invalid("delta", "interval too large"))?;
                Ok(TimerSpec::Interval(IntervalSpec { every }))
            }
            DATE_TIMER => {
                p.only(&["date", "timezone"])?;
                let tz = p.timezone(default_tz)?;
                let date = p.required_str("date")?;
                let at = parse_date(date, tz)
                    .ok_or_else(|| p.invalid("date", &format!("{date:?} is not a date-time")))?;
                Ok(TimerSpec::Date(DateSpec { at }))
            }
            CRON_TIMER => {
                let tz = p.timezone(default_tz)?;
                let mut fields = Vec::new();
                for (name, value) in parameters {
                    if name == "timezone" {
                        continue;
                    }
                    if !super::cron::CRON_FIELDS.contains(&name.as_str()) {
                        return Err(p.unknown(name));
                    }
                    let expr = match value {
                        Value::Null => continue,
                        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                        Value::String(s) => s.clone(),
                        _ => return Err(p.invalid(name, "must be an integer or a string")),
                    };
                    fields.push((name.as_str(), expr));
                }
                let spec =
                    CronSpec::new(&fields, tz).map_err(|e| TimerError::InvalidParameter {
                        trigger_type: trigger_type.to_string(),
                        parameter: e.field.to_string(),
                        reason: e.to_string(),
                    })?;
                Ok(TimerSpec::Cron(Box::new(spec)))
            }
            other => Err(TimerError::NotATimer {
                trigger_type: other.to_string(),
            }),
        }
    }

    /// The first fire time strictly after `after`, or `None` when the timer will not fire again.
    /// For intervals this is `after + every`: the engine passes the previous *planned* time, so
    /// the schedule does not drift.
    pub fn next_fire(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            TimerSpec::Interval(i) => after.checked_add_signed(i.every),
            TimerSpec::Date(d) => (d.at > after).then_some(d.at),
            TimerSpec::Cron(c) => c.next_fire(after),
        }
    }
}

/// Reads and validates one trigger's parameters.
struct Params<'a> {
    trigger_type: &'a str,
    parameters: &'a JsonMap,
}

impl Params<'_> {
    fn invalid(&self, parameter: &str, reason: &str) -> TimerError {
        TimerError::InvalidParameter {
            trigger_type: self.trigger_type.to_string(),
            parameter: parameter.to_string(),
            reason: reason.to_string(),
        }
    }

    fn unknown(&self, parameter: &str) -> TimerError {
        self.invalid(parameter, "unknown parameter (additionalProperties: false)")
    }

    fn only(&self, allowed: &[&str]) -> Result<(), TimerError> {
        match self
            .parameters
            .keys()
            .find(|k| !allowed.contains(&k.as_str()))
        {
            Some(k) => Err(self.unknown(k)),
            None => Ok(()),
        }
    }

    fn required(&self, name: &str) -> Result<&Value, TimerError> {
        match self.parameters.get(name) {
            Some(v) if !v.is_null() => Ok(v),
            _ => Err(TimerError::MissingParameter {
                trigger_type: self.trigger_type.to_string(),
                parameter: name.to_string(),
            }),
        }
    }

    fn required_str(&self, name: &str) -> Result<&str, TimerError> {
        self.required(name)?
            .as_str()
            .ok_or_else(|| self.invalid(name, "must be a string"))
    }

    fn timezone(&self, default: Tz) -> Result<Tz, TimerError> {
        match self.parameters.get("timezone") {
            None | Some(Value::Null) => Ok(default),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(default),
            Some(Value::String(s)) => s
                .trim()
                .parse::<Tz>()
                .map_err(|_| self.invalid("timezone", &format!("unknown timezone {s:?}"))),
            Some(_) => Err(self.invalid("timezone", "must be a string")),
        }
    }
}

/// Parses a DateTimer `date` the way `dateutil.parser.parse` reads the ISO-like forms people
/// write: `2024-12-31 23:59:59`, `2024-12-31T23:59:59.5`, with or without `Z` / `±hh:mm` /
/// `±hhmm`, minutes-only times and bare dates (midnight). A time without an offset is in `tz`.
pub fn parse_date(text: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let s = text.trim();
    let s = match s.strip_suffix(['Z', 'z']) {
        Some(rest) => format!("{rest}+00:00"),
        None => s.to_string(),
    };
    let s = s.replacen(' ', "T", 1);
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%dT%H:%M%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(&s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|fmt| NaiveDateTime::parse_from_str(&s, fmt).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    // A naive time inside a DST gap or fold: earliest valid reading.
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(naive + TimeDelta::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> JsonMap {
        v.as_object().cloned().expect("object")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .with_timezone(&Utc)
    }

    #[test]
    fn parses_dates() {
        let ny: Tz = "America/New_York".parse().expect("tz");
        for (text, tz, want) in [
            ("2024-12-31 23:59:59", Tz::UTC, "2024-12-31T23:59:59Z"),
            ("2024-12-31T23:59:59Z", ny, "2024-12-31T23:59:59Z"),
            (
                "2024-12-31T23:59:59.250+02:00",
                Tz::UTC,
                "2024-12-31T21:59:59.250Z",
            ),
            ("2024-12-31 23:59:59+0200", Tz::UTC, "2024-12-31T21:59:59Z"),
            ("2024-12-31 12:00", ny, "2024-12-31T17:00:00Z"),
            ("2024-07-01T12:00:00", ny, "2024-07-01T16:00:00Z"),
            ("2024-12-31", Tz::UTC, "2024-12-31T00:00:00Z"),
        ] {
            assert_eq!(parse_date(text, tz), Some(utc(want)), "{text}");
        }
        assert_eq!(parse_date("tomorrow", Tz::UTC), None);
    }

    #[test]
    fn interval_units() {
        for (unit, delta, want) in [
            ("weeks", 2, TimeDelta::weeks(2)),
            ("days", 1, TimeDelta::days(1)),
            ("hours", 3, TimeDelta::hours(3)),
            ("minutes", 5, TimeDelta::minutes(5)),
            ("seconds", 30, TimeDelta::seconds(30)),
            ("milliseconds", 250, TimeDelta::milliseconds(250)),
        ] {
            let spec = TimerSpec::from_trigger(
                INTERVAL_TIMER,
                &params(json!({"unit": unit, "delta": delta})),
            )
            .expect(unit);
            assert_eq!(spec, TimerSpec::Interval(IntervalSpec { every: want }));
        }
    }

    #[test]
    fn bad_parameters_are_explained() {
        for (ty, p, needle) in [
            (
                INTERVAL_TIMER,
                json!({"unit": "seconds"}),
                "missing required parameter \"delta\"",
            ),
            (
                INTERVAL_TIMER,
                json!({"unit": "fortnights", "delta": 1}),
                "fortnights",
            ),
            (
                INTERVAL_TIMER,
                json!({"unit": "seconds", "delta": "5"}),
                "must be an integer",
            ),
            (
                INTERVAL_TIMER,
                json!({"unit": "seconds", "delta": 0}),
                "positive",
            ),
            (
                INTERVAL_TIMER,
                json!({"unit": "seconds", "delta": 5, "every": 1}),
                "\"every\"",
            ),
            (DATE_TIMER, json!({"date": "soon"}), "not a date-time"),
            (DATE_TIMER, json!({}), "\"date\""),
            (
                DATE_TIMER,
                json!({"date": "2024-01-01", "timezone": "Mars/Base"}),
                "Mars/Base",
            ),
            (CRON_TIMER, json!({"day_of_week": 7}), "day_of_week"),
            (CRON_TIMER, json!({"minute": true}), "integer or a string"),
            (CRON_TIMER, json!({"fortnight": 1}), "fortnight"),
            ("core.st2.webhook", json!({}), "not a timer"),
        ] {
            let err = TimerSpec::from_trigger(ty, &params(p.clone())).expect_err(&p.to_string());
            assert!(err.to_string().contains(needle), "{p}: {err}");
        }
    }
}
