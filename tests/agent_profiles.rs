//! Profiles of slow transactions, end to end: a real JVM (JDK 17 and every
//! newer JDK found, under `-Xverify:all`) runs a hooked method that spends
//! a known split of the half second after `profile_after`, about 70%
//! spinning in one method and 30% asleep in another; the agent samples its
//! stack and sends the
//! profile on the transaction's span to a real `jvmapm serve`, whose
//! transaction API must show both methods with their shares. A transaction
//! faster than `profile_after` carries no profile.

mod common;

use common::{java_launchers, java_with_agent, launcher_version, Analyzer, JvmTurn};
use jvmapm_contract::names::{profile, span};
use serde_json::Value;

/// The samples of a folded profile whose stack passes through `frame`
/// (a frame names its method, then maybe `:line`), and all its samples.
fn samples_through(folded: &str, method: &str) -> (u64, u64) {
    let mut through = 0;
    let mut all = 0;
    for line in folded.lines() {
        let (stack, count) = line.rsplit_once(' ').expect("`stack count`");
        let count: u64 = count.parse().expect("a count");
        all += count;
        let passes = stack
            .split(';')
            .any(|frame| frame == method || frame.starts_with(&format!("{method}:")));
        if passes {
            through += count;
        }
    }
    (through, all)
}

fn int(attributes: &Value, key: &str) -> u64 {
    let value = &attributes[key];
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("{key} in {attributes:#}"))
}

#[test]
fn a_slow_transaction_carries_where_its_time_went() {
    let _jvms = JvmTurn::alone();
    for launcher in java_launchers() {
        let version = launcher_version(&launcher);
        let dir = tempfile::tempdir().unwrap();
        let analyzer = Analyzer::start(dir.path(), &[]);
        let out = java_with_agent(
            &launcher,
            &format!(
                "service=split,endpoint=http://{},hook=SlowSplit#work;SlowSplit#quick",
                analyzer.grpc
            ),
            &["SlowSplit", "3"],
        )
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "JDK {version}: {stderr}");

        let points = analyzer.points_of("split", 6);
        assert_eq!(points.len(), 6, "JDK {version}: {points:#?}\n{stderr}");
        for point in &points {
            let attributes = analyzer.attributes(point);
            let folded = attributes[span::PROFILE].as_str();
            if point["endpoint"] == "SlowSplit.quick" {
                assert_eq!(folded, None, "JDK {version}: a fast one has no profile");
                assert!(attributes[span::PROFILE_SAMPLES].is_null());
                continue;
            }
            assert_eq!(point["endpoint"], "SlowSplit.work", "{point}");
            let folded = folded
                .unwrap_or_else(|| panic!("JDK {version}: no profile: {attributes:#}\n{stderr}"));
            let (spin, all) = samples_through(folded, "SlowSplit.spin");
            let (pause, _) = samples_through(folded, "SlowSplit.pause");
            assert_eq!(
                int(&attributes, span::PROFILE_SAMPLES),
                all + int(&attributes, span::PROFILE_TRUNCATED)
            );
            assert_eq!(int(&attributes, span::PROFILE_INTERVAL), 10_000);
            // 500 ms after profile_after: some 50 samples.
            assert!(all >= 25, "JDK {version}: only {all} samples:\n{folded}");
            let expected_spin = 0.70;
            let spin_share = spin as f64 / all as f64;
            let pause_share = pause as f64 / all as f64;
            assert!(
                (spin_share - expected_spin).abs() <= 0.10,
                "JDK {version}: spin {spin_share:.2} of {all}:\n{folded}"
            );
            assert!(
                (pause_share - (1.0 - expected_spin)).abs() <= 0.10,
                "JDK {version}: pause {pause_share:.2} of {all}:\n{folded}"
            );
            // The pause is asleep, the spin on a CPU, and lines are named.
            assert!(
                folded.lines().any(|l| l.contains("SlowSplit.pause:")
                    && l.contains(&format!(";{} ", profile::SLEEPING))),
                "JDK {version}:\n{folded}"
            );
            assert!(
                folded.lines().any(|l| l.contains("SlowSplit.spin:")
                    && l.contains(&format!(";{} ", profile::RUNNING))),
                "JDK {version}:\n{folded}"
            );
        }
    }
}
