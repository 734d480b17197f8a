//! `jvmapm profile`: the merged stack samples of the transactions in an area
//! of the XLog (a time range, service and endpoint globs, elapsed bounds,
//! errors), from a running server's query API or a data directory read in
//! place, printed as an indented call tree, as folded stacks for flame-graph
//! tools, or as an SVG flame graph.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use jvmapm_analyzer::query::answers::AreaProfile;
use jvmapm_analyzer::query::profile::{self, Area, DEFAULT_LIMIT, MAX_LIMIT};
use jvmapm_contract::clock::unix_ms;
use jvmapm_tui::source::{Live, Offline, Printable, Source};
use jvmapm_tui::Origin;

use crate::{flame_graph, SourceArgs};

/// The window read when `--from` is not given.
const DEFAULT_WINDOW_MS: u64 = 5 * 60_000;

#[derive(Args)]
pub struct ProfileArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// First end time to include: Unix ms, or how long ago (e.g. 2h) [default: 5 minutes before --to].
    #[arg(long, value_name = "TIME", value_parser = crate::parse_time)]
    from: Option<u64>,
    /// Last end time to include: Unix ms, or how long ago (e.g. 1h) [default: now].
    #[arg(long, value_name = "TIME", value_parser = crate::parse_time)]
    to: Option<u64>,
    /// Only services whose name matches (* and ? wildcards).
    #[arg(long, value_name = "GLOB")]
    service: Option<String>,
    /// Only endpoints whose name matches, as `GET /orders/*`.
    #[arg(long, value_name = "GLOB")]
    endpoint: Option<String>,
    /// Only transactions that took at least this many milliseconds.
    #[arg(long, value_name = "N")]
    min_ms: Option<u64>,
    /// Only transactions that took at most this many milliseconds.
    #[arg(long, value_name = "N")]
    max_ms: Option<u64>,
    /// Only failed transactions.
    #[arg(long)]
    errors: bool,
    /// Transactions whose spans are read, the first in the order they were stored.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMIT, value_parser = limit)]
    limit: usize,
    /// What to print.
    #[arg(long, value_enum, default_value = "tree")]
    format: ProfileFormat,
}

/// `--limit`: 1 to [`MAX_LIMIT`].
fn limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n @ 1..=MAX_LIMIT) => Ok(n),
        _ => Err(format!("expected 1 to {MAX_LIMIT}")),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ProfileFormat {
    /// Indented call tree with each frame's share of the samples, hottest first.
    Tree,
    /// Folded stacks (`frame;frame;frame count`), for flame-graph tools.
    Folded,
    /// An SVG flame graph.
    Svg,
}

/// Prints the profile of the area the arguments give.
pub fn run(args: ProfileArgs) -> Result<ExitCode, String> {
    let to_ms = args.to.unwrap_or_else(unix_ms);
    let from_ms = args
        .from
        .unwrap_or_else(|| to_ms.saturating_sub(DEFAULT_WINDOW_MS));
    if from_ms > to_ms {
        return Err("--to must come after --from".into());
    }
    let area = Area {
        from_ms,
        to_ms,
        service: args.service,
        endpoint: args.endpoint,
        min_ms: args.min_ms,
        max_ms: args.max_ms,
        errors: args.errors,
    };
    let source: Box<dyn Source> = match args.source.origin() {
        Origin::Data(dir) => Box::new(Offline::open(&dir).map_err(|e| e.to_string())?),
        Origin::Server { url, token } => {
            Box::new(Live::new(&url, token).map_err(|e| e.to_string())?)
        }
    };
    // Frame names come from the wire and may go to a terminal.
    let mut source = Printable(source);
    let answer = source
        .profile(&area, args.limit)
        .map_err(|e| e.to_string())?;
    let summary = profile::summary(&answer);
    match args.format {
        ProfileFormat::Tree => print!("{summary}\n{}", tree_text(&answer)),
        ProfileFormat::Folded => {
            eprintln!("jvmapm profile: {summary}");
            print!("{}", answer.profile.tree.folded());
        }
        ProfileFormat::Svg => {
            eprintln!("jvmapm profile: {summary}");
            print!("{}", flame_graph::svg(&answer.profile.tree, &summary));
        }
    }
    // Offline, damaged records were skipped: the answer is partial, and says so.
    if let Some(skipped) = source.note() {
        eprintln!("jvmapm: {skipped}; every other transaction was read");
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// The call tree as indented lines: each frame's share of every sample and
/// its samples, callees below their caller, the hottest first.
fn tree_text(answer: &AreaProfile) -> String {
    let tree = &answer.profile.tree;
    let mut out = String::new();
    for (id, depth) in tree.depth_first() {
        let node = tree.node(id);
        out.push_str(&format!(
            "{:6.2}% {:>9}  {}{}\n",
            tree.share(id) * 100.0,
            node.total_samples,
            "  ".repeat(depth - 1),
            node.frame
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jvmapm_analyzer::query::answers::Profile;
    use jvmapm_analyzer::query::call_tree::CallTree;

    fn answer(folded: &str) -> AreaProfile {
        AreaProfile {
            profile: Profile {
                tree: CallTree::parse(folded),
                samples: 4,
                dropped: 1,
                truncated: 0,
                interval_us: Some(10_000),
            },
            transactions: 3,
            read: 3,
            with_profile: 2,
        }
    }

    #[test]
    fn the_tree_shows_shares_indented_hottest_first() {
        let answer = answer("main;b 1\nmain;a;[running] 3\n");
        assert_eq!(
            tree_text(&answer),
            "100.00%         4  main\n \
             75.00%         3    a\n \
             75.00%         3      [running]\n \
             25.00%         1    b\n"
        );
    }
}
