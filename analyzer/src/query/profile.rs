//! The merged profile of every transaction in an area of the XLog, so a
//! cloud of slow dots says where those transactions spent their time: the
//! stack samples each span carries (`jvmapm.profile`, read by
//! [`Profile::of_span`]) added into one call tree. The area is given as the
//! query API's parameters ([`Area`]), which the viewer and `jvmapm profile`
//! send or read offline alike.

use std::io;

use crate::glob::Glob;
use crate::query::answers::{AreaProfile, Profile};
use crate::query::{self, Cancel, Points, Want, XlogFilter};

/// Transactions whose spans an area profile reads, unless asked otherwise.
pub const DEFAULT_LIMIT: usize = 1_000;
/// The most it reads: each is a read of its span from disk.
pub const MAX_LIMIT: usize = 20_000;

/// An area of the XLog as `/api/v1/xlog` and `/api/v1/profile` take it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Area {
    /// End times, Unix milliseconds, inclusive.
    pub from_ms: u64,
    pub to_ms: u64,
    /// Globs of service and endpoint names.
    pub service: Option<String>,
    pub endpoint: Option<String>,
    /// Elapsed time bounds, milliseconds, inclusive.
    pub min_ms: Option<u64>,
    pub max_ms: Option<u64>,
    /// Failed transactions only.
    pub errors: bool,
}

impl Area {
    /// The points in the area, for a scan of the store.
    pub fn filter(&self) -> XlogFilter {
        let us = |ms: Option<u64>| ms.map(|ms| ms.saturating_mul(1000));
        XlogFilter {
            from_ms: self.from_ms,
            to_ms: self.to_ms,
            service: self.service.as_deref().map(Glob::new),
            endpoint: self.endpoint.as_deref().map(Glob::new),
            errors_only: self.errors,
            min_us: us(self.min_ms),
            max_us: us(self.max_ms),
            trace_id: None,
            cancel: Cancel::default(),
        }
    }

    /// The area as query parameters of the API.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![
            ("from", self.from_ms.to_string()),
            ("to", self.to_ms.to_string()),
        ];
        let texts = [("service", &self.service), ("endpoint", &self.endpoint)];
        query.extend(texts.iter().filter_map(|(k, v)| Some((*k, (*v).clone()?))));
        let numbers = [("min_ms", self.min_ms), ("max_ms", self.max_ms)];
        query.extend(
            numbers
                .iter()
                .filter_map(|(k, v)| Some((*k, (*v)?.to_string()))),
        );
        if self.errors {
            query.push(("errors", "true".into()));
        }
        query
    }
}

/// The merged profile of the transactions `filter` matches: the spans of
/// the first `limit` of them, in the order they were stored, are read, and
/// all of them are counted.
pub fn area(store: &dyn Points, filter: &XlogFilter, limit: usize) -> io::Result<AreaProfile> {
    let mut answer = AreaProfile::default();
    let mut intervals = Intervals::default();
    let mut points = Vec::new();
    query::for_each(store, filter, |point| {
        answer.transactions += 1;
        if points.len() < limit {
            points.push(point.clone());
        }
    })?;
    answer.read = points.len() as u64;
    // A span that cannot be read has no profile to add; the transaction
    // API says why when it is opened.
    for chunk in points.chunks(query::SPANS_AT_ONCE) {
        let profiles = store
            .spans(chunk, Want::Own)?
            .into_iter()
            .filter_map(|kept| Profile::of_span(&kept.ok()?.span.attributes));
        for profile in profiles {
            answer.with_profile += 1;
            let sum = &mut answer.profile;
            sum.tree.merge(&profile.tree);
            sum.samples = sum.samples.saturating_add(profile.samples);
            sum.dropped = sum.dropped.saturating_add(profile.dropped);
            sum.truncated = sum.truncated.saturating_add(profile.truncated);
            intervals.see(profile.interval_us);
        }
    }
    answer.profile.interval_us = intervals.common();
    Ok(answer)
}

/// What the profile covers, in a line.
pub fn summary(answer: &AreaProfile) -> String {
    let profile = &answer.profile;
    let mut line = format!(
        "{} samples from {} transactions with a profile ({} read of {} in the area)",
        profile.tree.samples(),
        answer.with_profile,
        answer.read,
        answer.transactions
    );
    if let Some(us) = profile.interval_us {
        line.push_str(&format!(", one every {}", interval(us)));
    }
    let lost = [
        (profile.dropped, "not taken"),
        (profile.truncated, "left out by the agent's size bound"),
        (profile.tree.skipped_lines(), "malformed lines skipped"),
    ];
    for (count, what) in lost.iter().filter(|(count, _)| *count > 0) {
        line.push_str(&format!("; {count} {what}"));
    }
    line
}

fn interval(us: u64) -> String {
    if us.is_multiple_of(1000) {
        format!("{} ms", us / 1000)
    } else {
        format!("{us} µs")
    }
}

/// The sampling interval profiles share, if they do.
#[derive(Default)]
struct Intervals {
    first: Option<Option<u64>>,
    differ: bool,
}

impl Intervals {
    fn see(&mut self, interval: Option<u64>) {
        match self.first {
            None => self.first = Some(interval),
            Some(first) => self.differ |= first != interval,
        }
    }

    fn common(&self) -> Option<u64> {
        self.first.flatten().filter(|_| !self.differ)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::call_tree::CallTree;

    #[test]
    fn an_area_goes_to_the_api_as_its_parameters() {
        let area = Area {
            from_ms: 1,
            to_ms: 2,
            endpoint: Some("GET /slow*".into()),
            min_ms: Some(500),
            errors: true,
            ..Area::default()
        };
        let query: Vec<String> = area
            .query()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            query,
            [
                "from=1",
                "to=2",
                "endpoint=GET /slow*",
                "min_ms=500",
                "errors=true"
            ]
        );
        let filter = area.filter();
        assert_eq!((filter.min_us, filter.max_us), (Some(500_000), None));
        assert!(filter.errors_only && filter.service.is_none());
    }

    #[test]
    fn the_summary_says_what_was_read_and_what_was_lost() {
        let mut answer = AreaProfile {
            profile: Profile {
                tree: CallTree::parse("a 3\nb 1\nbad\n"),
                samples: 4,
                dropped: 1,
                truncated: 0,
                interval_us: Some(10_000),
            },
            transactions: 3,
            read: 3,
            with_profile: 2,
        };
        assert_eq!(
            summary(&answer),
            "4 samples from 2 transactions with a profile (3 read of 3 in the area), \
             one every 10 ms; 1 not taken; 1 malformed lines skipped"
        );
        answer.profile.interval_us = Some(250);
        assert!(summary(&answer).contains(", one every 250 µs;"));
    }

    #[test]
    fn profiles_of_different_intervals_have_none_in_common() {
        let mut same = Intervals::default();
        [Some(10), Some(10)].into_iter().for_each(|i| same.see(i));
        assert_eq!(same.common(), Some(10));
        let mut mixed = Intervals::default();
        [Some(10), None].into_iter().for_each(|i| mixed.see(i));
        assert_eq!(mixed.common(), None);
    }
}
