//! Time-frame conditions: [`Weekday`], [`DaySpan`], [`TimeOfDay`], [`TimeFrame`] entries
//! and the [`TimeFrames`] list, parsed from and printed as
//! `MON-FRI 18:00-23:59,!SAT 11:00-13:00`.

use std::fmt::{self, Display};
use std::str::FromStr;

use jiff::civil::DateTime;
use serde::{Deserialize, Serialize};

use super::{admits, write_list, write_negation};
use crate::grammar::{split_list, split_negation, GrammarError};

const TIME_FRAME: &str = "time frame";
const WEEKDAY: &str = "weekday";

/// A day of the week as time frames write it: `MON` … `SUN` (any case when parsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// Monday first, as ISO 8601 and OCO have it.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Weekday::Mon => "MON",
            Weekday::Tue => "TUE",
            Weekday::Wed => "WED",
            Weekday::Thu => "THU",
            Weekday::Fri => "FRI",
            Weekday::Sat => "SAT",
            Weekday::Sun => "SUN",
        }
    }

    /// 0 for Monday … 6 for Sunday.
    pub const fn index(self) -> u8 {
        self as u8
    }

    pub fn next(self) -> Weekday {
        Weekday::ALL[(usize::from(self.index()) + 1) % 7]
    }

    pub fn previous(self) -> Weekday {
        Weekday::ALL[(usize::from(self.index()) + 6) % 7]
    }
}

impl FromStr for Weekday {
    type Err = GrammarError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let token = input.trim();
        parse_weekday(token).map_err(|reason| GrammarError::new(WEEKDAY, token, reason))
    }
}

fn parse_weekday(text: &str) -> Result<Weekday, String> {
    Weekday::ALL
        .into_iter()
        .find(|day| day.name().eq_ignore_ascii_case(text))
        .ok_or_else(|| format!("'{text}' is not a day (MON, TUE, WED, THU, FRI, SAT, SUN)"))
}

impl Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<jiff::civil::Weekday> for Weekday {
    fn from(day: jiff::civil::Weekday) -> Self {
        use jiff::civil::Weekday as J;
        match day {
            J::Monday => Weekday::Mon,
            J::Tuesday => Weekday::Tue,
            J::Wednesday => Weekday::Wed,
            J::Thursday => Weekday::Thu,
            J::Friday => Weekday::Fri,
            J::Saturday => Weekday::Sat,
            J::Sunday => Weekday::Sun,
        }
    }
}

impl From<Weekday> for jiff::civil::Weekday {
    fn from(day: Weekday) -> Self {
        use jiff::civil::Weekday as J;
        match day {
            Weekday::Mon => J::Monday,
            Weekday::Tue => J::Tuesday,
            Weekday::Wed => J::Wednesday,
            Weekday::Thu => J::Thursday,
            Weekday::Fri => J::Friday,
            Weekday::Sat => J::Saturday,
            Weekday::Sun => J::Sunday,
        }
    }
}

/// The days a time frame starts on: one day (`FRI`) or an inclusive range (`MON-FRI`),
/// which may wrap around the end of the week (`FRI-MON` is Friday to Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DaySpan {
    first: Weekday,
    last: Weekday,
}

impl DaySpan {
    pub fn new(first: Weekday, last: Weekday) -> Self {
        DaySpan { first, last }
    }

    pub fn single(day: Weekday) -> Self {
        DaySpan {
            first: day,
            last: day,
        }
    }

    pub fn first(&self) -> Weekday {
        self.first
    }

    pub fn last(&self) -> Weekday {
        self.last
    }

    pub fn contains(&self, day: Weekday) -> bool {
        let (first, last, day) = (self.first.index(), self.last.index(), day.index());
        if first <= last {
            first <= day && day <= last
        } else {
            day >= first || day <= last
        }
    }
}

impl Display for DaySpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// A wall-clock minute, `0:00` to `23:59`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    pub const MIDNIGHT: TimeOfDay = TimeOfDay(0);
    pub const LAST_MINUTE: TimeOfDay = TimeOfDay(24 * 60 - 1);

    pub fn new(hour: u8, minute: u8) -> Option<Self> {
        (hour < 24 && minute < 60).then_some(TimeOfDay(u16::from(hour) * 60 + u16::from(minute)))
    }

    /// Minutes since midnight, below 1440.
    pub fn from_minutes(minutes: u16) -> Option<Self> {
        (minutes < 24 * 60).then_some(TimeOfDay(minutes))
    }

    /// The minute `at` falls in; seconds are dropped, since frames have minute resolution.
    pub fn of(at: DateTime) -> Self {
        let hour = u16::from(at.hour().unsigned_abs());
        let minute = u16::from(at.minute().unsigned_abs());
        TimeOfDay(hour * 60 + minute)
    }

    pub fn minutes(self) -> u16 {
        self.0
    }

    pub fn hour(self) -> u8 {
        // Below 24 by construction.
        u8::try_from(self.0 / 60).unwrap_or(23)
    }

    pub fn minute(self) -> u8 {
        u8::try_from(self.0 % 60).unwrap_or(59)
    }
}

impl Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{:02}", self.hour(), self.minute())
    }
}

/// `H:MM` or `HH:MM`; the error is a reason naming `text`.
fn parse_time(text: &str) -> Result<TimeOfDay, String> {
    let not_a_time = || format!("'{text}' is not a time H:MM");
    let (hour, minute) = text.split_once(':').ok_or_else(not_a_time)?;
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&hour.len()) || minute.len() != 2 || !digits(hour) || !digits(minute) {
        return Err(not_a_time());
    }
    let hour: u8 = hour.parse().map_err(|_| not_a_time())?;
    let minute: u8 = minute.parse().map_err(|_| not_a_time())?;
    if hour > 23 {
        let hint = if hour == 24 {
            " (write 23:59 for the end of a day: both ends are inclusive)"
        } else {
            ""
        };
        return Err(format!("'{text}': hour {hour} is out of range 0-23{hint}"));
    }
    if minute > 59 {
        return Err(format!("'{text}': minute {minute} is out of range 00-59"));
    }
    TimeOfDay::new(hour, minute).ok_or_else(not_a_time)
}

/// One entry of a [`TimeFrames`] list: `[!][DAY[-DAY] ]H:MM-H:MM`.
///
/// Both ends are inclusive to the minute (`SAT 0:00-23:59` is all of Saturday). When the
/// end is before the start (`FRI 22:00-6:00`) the frame crosses midnight: it starts on
/// the given days and ends on the day after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeFrame {
    negated: bool,
    days: Option<DaySpan>,
    start: TimeOfDay,
    end: TimeOfDay,
}

impl TimeFrame {
    /// A frame that admits; `days: None` means every day.
    pub fn allow(days: Option<DaySpan>, start: TimeOfDay, end: TimeOfDay) -> Self {
        TimeFrame {
            negated: false,
            days,
            start,
            end,
        }
    }

    /// A frame that rejects; `days: None` means every day.
    pub fn deny(days: Option<DaySpan>, start: TimeOfDay, end: TimeOfDay) -> Self {
        TimeFrame {
            negated: true,
            days,
            start,
            end,
        }
    }

    pub fn is_negated(&self) -> bool {
        self.negated
    }

    pub fn days(&self) -> Option<DaySpan> {
        self.days
    }

    pub fn start(&self) -> TimeOfDay {
        self.start
    }

    pub fn end(&self) -> TimeOfDay {
        self.end
    }

    pub fn crosses_midnight(&self) -> bool {
        self.end < self.start
    }

    /// Whether `at` falls inside this frame, whatever the entry's negation.
    pub fn covers(&self, at: DateTime) -> bool {
        let day = Weekday::from(at.weekday());
        let time = TimeOfDay::of(at);
        let starts_on = |day| self.days.is_none_or(|days| days.contains(day));
        if self.crosses_midnight() {
            (starts_on(day) && time >= self.start)
                || (starts_on(day.previous()) && time <= self.end)
        } else {
            starts_on(day) && self.start <= time && time <= self.end
        }
    }
}

impl FromStr for TimeFrame {
    type Err = GrammarError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let entry = input.trim();
        let err = |reason: String| GrammarError::new(TIME_FRAME, entry, reason);
        let shape = || err("expected [!][DAY[-DAY] ]H:MM-H:MM".to_owned());
        let (negated, body) = split_negation(entry);
        let (days_text, times_text) = if body.starts_with(|c: char| c.is_ascii_alphabetic()) {
            let (days, times) = body.split_once(char::is_whitespace).ok_or_else(shape)?;
            (Some(days), times.trim_start())
        } else {
            (None, body)
        };
        let (start, end) = times_text.split_once('-').ok_or_else(shape)?;
        let (start, end) = (start.trim(), end.trim());
        if start.is_empty() || end.is_empty() {
            return Err(shape());
        }
        let days = days_text
            .map(|text| {
                let (first, last) = text.split_once('-').unwrap_or((text, text));
                Ok::<_, String>(DaySpan::new(parse_weekday(first)?, parse_weekday(last)?))
            })
            .transpose()
            .map_err(err)?;
        let start = parse_time(start).map_err(err)?;
        let end = parse_time(end).map_err(err)?;
        Ok(TimeFrame {
            negated,
            days,
            start,
            end,
        })
    }
}

impl Display for TimeFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_negation(f, self.negated)?;
        if let Some(days) = self.days {
            write!(f, "{days} ")?;
        }
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A time-frame condition: `6:00-7:00,FRI 18:00-23:00,!SAT 11:00-13:00,SAT 0:00-23:59`,
/// with weekday ranges (`MON-FRI 18:00-23:59`) and frames across midnight (`22:00-6:00`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeFrames {
    frames: Vec<TimeFrame>,
}

impl TimeFrames {
    pub fn new(frames: Vec<TimeFrame>) -> Self {
        TimeFrames { frames }
    }

    pub fn frames(&self) -> &[TimeFrame] {
        &self.frames
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether a job with this condition may run at local wall time `at`.
    pub fn admits(&self, at: DateTime) -> bool {
        admits(
            self.frames
                .iter()
                .map(|frame| (frame.negated, frame.covers(at))),
        )
    }
}

impl FromStr for TimeFrames {
    type Err = GrammarError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let frames = split_list(TIME_FRAME, input)?
            .into_iter()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        Ok(TimeFrames { frames })
    }
}

impl Display for TimeFrames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, &self.frames)
    }
}

impl TryFrom<String> for TimeFrames {
    type Error = GrammarError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<TimeFrames> for String {
    fn from(value: TimeFrames) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use jiff::civil::{date, DateTime};
    use proptest::prelude::*;

    const SEED_FRAMES: &str = "6:00-7:00,FRI 18:00-23:00,!SAT 11:00-13:00,SAT 0:00-23:59";

    fn frames(s: &str) -> TimeFrames {
        s.parse().unwrap()
    }

    /// A wall time in the week of Monday 2024-01-01, `day` 0 being that Monday.
    fn at(day: Weekday, hour: i8, minute: i8) -> DateTime {
        let day_of_month = i8::try_from(day.index()).unwrap() + 1;
        date(2024, 1, day_of_month).at(hour, minute, 0, 0)
    }

    #[test]
    fn seed_time_frames() {
        use Weekday::*;
        let f = frames(SEED_FRAMES);
        // Every day between 6:00 and 7:00, both minutes included.
        for day in Weekday::ALL {
            assert!(f.admits(at(day, 6, 0)), "{day} 6:00");
            assert!(f.admits(at(day, 6, 30)), "{day} 6:30");
            assert!(f.admits(at(day, 7, 0)), "{day} 7:00");
        }
        assert!(!f.admits(at(Mon, 5, 59)));
        assert!(!f.admits(at(Mon, 7, 1)));
        assert!(!f.admits(at(Sun, 12, 0)));
        // Friday 18:00-23:00.
        assert!(!f.admits(at(Fri, 17, 59)));
        assert!(f.admits(at(Fri, 18, 0)));
        assert!(f.admits(at(Fri, 23, 0)));
        assert!(f.admits(date(2024, 1, 5).at(23, 0, 59, 999_999_999)));
        assert!(!f.admits(at(Fri, 23, 1)));
        assert!(!f.admits(at(Thu, 20, 0)));
        // Saturday, but not between 11:00 and 13:00.
        assert!(f.admits(at(Sat, 0, 0)));
        assert!(f.admits(at(Sat, 10, 59)));
        assert!(!f.admits(at(Sat, 11, 0)));
        assert!(!f.admits(at(Sat, 12, 0)));
        assert!(!f.admits(at(Sat, 13, 0)));
        assert!(f.admits(at(Sat, 13, 1)));
        assert!(f.admits(date(2024, 1, 6).at(23, 59, 59, 0)));
        assert!(!f.admits(at(Sun, 0, 0)));
    }

    #[test]
    fn weekday_ranges() {
        use Weekday::*;
        let f = frames("MON-FRI 18:00-23:59");
        assert!(f.admits(at(Mon, 18, 0)));
        assert!(f.admits(at(Wed, 20, 0)));
        assert!(f.admits(at(Fri, 23, 59)));
        assert!(!f.admits(at(Sat, 20, 0)));
        assert!(!f.admits(at(Sun, 20, 0)));
        assert!(!f.admits(at(Wed, 17, 59)));

        let wrapping = frames("FRI-MON 10:00-11:00");
        for day in [Fri, Sat, Sun, Mon] {
            assert!(wrapping.admits(at(day, 10, 30)), "{day}");
        }
        for day in [Tue, Wed, Thu] {
            assert!(!wrapping.admits(at(day, 10, 30)), "{day}");
        }
        assert!(frames("TUE-MON 0:00-23:59").admits(at(Mon, 12, 0)));
    }

    #[test]
    fn frames_across_midnight() {
        use Weekday::*;
        let nightly = frames("22:00-6:00");
        assert!(nightly.frames()[0].crosses_midnight());
        assert!(!nightly.admits(at(Tue, 21, 59)));
        assert!(nightly.admits(at(Tue, 22, 0)));
        assert!(nightly.admits(at(Tue, 23, 59)));
        assert!(nightly.admits(at(Wed, 0, 0)));
        assert!(nightly.admits(at(Wed, 3, 0)));
        assert!(nightly.admits(at(Wed, 6, 0)));
        assert!(!nightly.admits(at(Wed, 6, 1)));

        let friday_night = frames("FRI 22:00-6:00");
        assert!(friday_night.admits(at(Fri, 23, 0)));
        assert!(friday_night.admits(at(Sat, 3, 0)));
        assert!(!friday_night.admits(at(Fri, 3, 0)));
        assert!(!friday_night.admits(at(Sat, 23, 0)));
        assert!(!friday_night.admits(at(Sun, 3, 0)));

        // The night after Sunday ends on Monday.
        let sunday_night = frames("SUN 22:00-2:00");
        assert!(sunday_night.admits(at(Mon, 1, 0)));
        assert!(!sunday_night.admits(at(Tue, 1, 0)));

        let weeknights = frames("MON-FRI 22:00-6:00");
        assert!(weeknights.admits(at(Sat, 5, 0)));
        assert!(!weeknights.admits(at(Mon, 5, 0)));
    }

    #[test]
    fn a_single_minute_frame() {
        let f = frames("6:00-6:00");
        assert!(!f.frames()[0].crosses_midnight());
        assert!(f.admits(at(Weekday::Tue, 6, 0)));
        assert!(!f.admits(at(Weekday::Tue, 6, 1)));
        assert!(!f.admits(at(Weekday::Tue, 5, 59)));
    }

    #[test]
    fn only_negated_frames_admit_everything_else() {
        let f = frames("!SAT 0:00-23:59,!SUN 0:00-23:59");
        assert!(f.admits(at(Weekday::Fri, 12, 0)));
        assert!(!f.admits(at(Weekday::Sat, 12, 0)));
        assert!(!f.admits(at(Weekday::Sun, 12, 0)));
    }

    #[test]
    fn empty_frames_admit_everything() {
        let f = frames("");
        assert!(f.is_empty());
        assert!(f.admits(at(Weekday::Sun, 3, 33)));
        assert_eq!(f, TimeFrames::default());
    }

    #[test]
    fn frames_print_canonically() {
        assert_eq!(frames(SEED_FRAMES).to_string(), SEED_FRAMES);
        assert_eq!(
            frames(" 06:00 - 07:00 , fri  18:00-23:00,! sat 11:00-13:00,Mon-Fri 22:00-6:00,FRI-FRI 1:00-2:00")
                .to_string(),
            "6:00-7:00,FRI 18:00-23:00,!SAT 11:00-13:00,MON-FRI 22:00-6:00,FRI 1:00-2:00"
        );
    }

    #[test]
    fn bad_hour_is_named_exactly() {
        let err = "6:00-7:00,FRI 25:00-23:00"
            .parse::<TimeFrames>()
            .unwrap_err();
        assert_eq!(
            err,
            GrammarError::new(
                "time frame",
                "FRI 25:00-23:00",
                "'25:00': hour 25 is out of range 0-23"
            )
        );
        assert_eq!(
            err.to_string(),
            "bad time frame 'FRI 25:00-23:00': '25:00': hour 25 is out of range 0-23"
        );
    }

    #[test]
    fn bad_frames_are_named() {
        let fails = |text: &str| text.parse::<TimeFrames>().unwrap_err();
        let err = fails("6:00-7:00, FRX 10:00-11:00");
        assert_eq!(err.token, "FRX 10:00-11:00");
        assert_eq!(
            err.reason,
            "'FRX' is not a day (MON, TUE, WED, THU, FRI, SAT, SUN)"
        );
        assert_eq!(
            fails("MON-FRX 1:00-2:00").reason,
            fails("FRX 1:00-2:00").reason
        );
        assert_eq!(
            fails("MON- 1:00-2:00").reason,
            "'' is not a day (MON, TUE, WED, THU, FRI, SAT, SUN)"
        );
        assert_eq!(
            fails("10:60-11:00").reason,
            "'10:60': minute 60 is out of range 00-59"
        );
        assert_eq!(
            fails("18:00-24:00").reason,
            "'24:00': hour 24 is out of range 0-23 (write 23:59 for the end of a day: both ends are inclusive)"
        );
        assert_eq!(fails("1:0-2:00").reason, "'1:0' is not a time H:MM");
        assert_eq!(fails("100:00-2:00").reason, "'100:00' is not a time H:MM");
        assert_eq!(fails("-1:00-2:00").token, "-1:00-2:00");
        let shape = "expected [!][DAY[-DAY] ]H:MM-H:MM";
        for whole in [
            "25:00",
            "SAT",
            "FRI18:00-23:00",
            "18:00-",
            "!",
            "-",
            "MON FRI 1:00-2:00",
        ] {
            let err = fails(whole);
            assert_eq!(err.token, whole);
            assert_eq!(err.grammar, "time frame");
            if whole != "MON FRI 1:00-2:00" {
                assert_eq!(err.reason, shape, "{whole}");
            }
        }
        assert_eq!(
            fails("1:00-2:00,,3:00-4:00").reason,
            "entry 2 of 3 is empty"
        );
        assert_eq!(fails("1:00-2:00,").token, "");
    }

    #[test]
    fn weekdays() {
        assert_eq!("fri".parse::<Weekday>().unwrap(), Weekday::Fri);
        assert_eq!(
            "FRX".parse::<Weekday>().unwrap_err(),
            GrammarError::new(
                "weekday",
                "FRX",
                "'FRX' is not a day (MON, TUE, WED, THU, FRI, SAT, SUN)"
            )
        );
        for day in Weekday::ALL {
            assert_eq!(day.name().parse::<Weekday>().unwrap(), day);
            assert_eq!(Weekday::from(jiff::civil::Weekday::from(day)), day);
            assert_eq!(day.next().previous(), day);
        }
        assert_eq!(Weekday::Sun.next(), Weekday::Mon);
        assert_eq!(
            at(Weekday::Fri, 0, 0).weekday(),
            jiff::civil::Weekday::Friday
        );
    }

    #[test]
    fn times_of_day() {
        assert_eq!(TimeOfDay::new(24, 0), None);
        assert_eq!(TimeOfDay::new(23, 60), None);
        assert_eq!(TimeOfDay::new(23, 59), Some(TimeOfDay::LAST_MINUTE));
        assert_eq!(TimeOfDay::from_minutes(1440), None);
        assert_eq!(TimeOfDay::LAST_MINUTE.to_string(), "23:59");
        assert_eq!(TimeOfDay::MIDNIGHT.to_string(), "0:00");
    }

    #[test]
    fn time_frames_travel_as_strings() {
        let f = frames("fri 18:00-23:00");
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, r#""FRI 18:00-23:00""#);
        assert_eq!(serde_json::from_str::<TimeFrames>(&json).unwrap(), f);
        assert!(serde_json::from_str::<TimeFrames>(r#""25:00""#).is_err());
    }

    // ----- properties

    fn any_weekday() -> impl Strategy<Value = Weekday> {
        proptest::sample::select(Weekday::ALL.to_vec())
    }

    fn any_time() -> impl Strategy<Value = TimeOfDay> {
        (0..1440u16).prop_map(|m| TimeOfDay::from_minutes(m).unwrap())
    }

    fn any_time_frame() -> impl Strategy<Value = TimeFrame> {
        (
            any::<bool>(),
            proptest::option::of((any_weekday(), any_weekday())),
            any_time(),
            any_time(),
        )
            .prop_map(|(negated, days, start, end)| {
                let days = days.map(|(first, last)| DaySpan::new(first, last));
                if negated {
                    TimeFrame::deny(days, start, end)
                } else {
                    TimeFrame::allow(days, start, end)
                }
            })
    }

    fn any_datetime() -> impl Strategy<Value = DateTime> {
        (1..=28i8, 0..24i8, 0..60i8, 0..60i8)
            .prop_map(|(day, hour, minute, second)| date(2024, 2, day).at(hour, minute, second, 0))
    }

    const BAD_FRAMES: &[&str] = &[
        "FRX 10:00-11:00",
        "FRI 25:00-23:00",
        "25:00",
        "10:60-11:00",
        "MON-FRX 1:00-2:00",
        "SAT",
        "1:00-2:00-3:00",
        "!!1:00-2:00",
        "MON 24:00-1:00",
        "1h-2h",
    ];

    proptest! {
        #[test]
        fn time_frames_round_trip(entries in proptest::collection::vec(any_time_frame(), 0..6)) {
            let f = TimeFrames::new(entries);
            prop_assert_eq!(f.to_string().parse::<TimeFrames>(), Ok(f));
        }

        #[test]
        fn midnight_frames_are_two_halves(frame in any_time_frame(), at in any_datetime()) {
            prop_assume!(frame.crosses_midnight());
            let evening = TimeFrame::allow(frame.days(), frame.start(), TimeOfDay::LAST_MINUTE);
            let next_days = frame.days().map(|d| DaySpan::new(d.first().next(), d.last().next()));
            let morning = TimeFrame::allow(next_days, TimeOfDay::MIDNIGHT, frame.end());
            prop_assert_eq!(frame.covers(at), evening.covers(at) || morning.covers(at));
        }

        #[test]
        fn negated_frame_always_rejects(
            entries in proptest::collection::vec(any_time_frame(), 0..6),
            deny in any_time_frame(),
            at in any_datetime(),
        ) {
            let deny = TimeFrame::deny(deny.days(), deny.start(), deny.end());
            let mut entries = entries;
            entries.push(deny);
            if deny.covers(at) {
                prop_assert!(!TimeFrames::new(entries).admits(at));
            }
        }

        #[test]
        fn bad_frames_are_named_in_any_list(
            good in proptest::collection::vec(any_time_frame(), 0..4),
            bad in proptest::sample::select(BAD_FRAMES),
            at_index in any::<proptest::sample::Index>(),
        ) {
            let mut texts: Vec<String> = good.iter().map(ToString::to_string).collect();
            texts.insert(at_index.index(texts.len() + 1), bad.to_owned());
            let err = texts.join(",").parse::<TimeFrames>().unwrap_err();
            prop_assert_eq!(err.grammar, "time frame");
            prop_assert_eq!(err.token, bad);
        }

        #[test]
        fn frame_garbage_never_panics(input in any::<String>()) {
            if let Err(err) = input.parse::<TimeFrames>() {
                prop_assert!(input.contains(&err.token));
            }
        }

        #[test]
        fn frame_like_garbage_never_panics(input in "[0-9:!, -]{0,30}|[A-Za-z0-9:!, -]{0,30}") {
            if let Err(err) = input.parse::<TimeFrames>() {
                prop_assert!(input.contains(&err.token));
            }
        }
    }
}
