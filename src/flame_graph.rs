//! A call tree drawn as an SVG flame graph, for `jvmapm profile --format
//! svg`: one rectangle a frame, as wide as its share of the samples, callers
//! below their callees, with the frame's name written in it when it fits and
//! in its tooltip always. Thread states are drawn blue, frames in warm
//! colours. Our own rather than the `inferno` crate: this is a page of code,
//! and inferno is CDDL-licensed and brings a dozen crates.

use std::fmt::Write;

use jvmapm_analyzer::query::call_tree::CallTree;

/// Width of the drawing, pixels.
const WIDTH: f64 = 1200.0;
/// Height of a frame's row.
const ROW: f64 = 16.0;
/// Room for the title above the frames.
const TOP: f64 = 28.0;
/// Frames narrower than this are left out (with their callees, narrower still).
const NARROWEST: f64 = 0.1;
/// Width of a character of the labels (12 px monospace), for fitting them.
const CHAR: f64 = 7.2;

/// The SVG document of `tree`, headed by `title`.
pub fn svg(tree: &CallTree, title: &str) -> String {
    let order = tree.depth_first();
    let deepest = order.iter().map(|&(_, depth)| depth).max().unwrap_or(0);
    let height = TOP + (deepest + 1) as f64 * ROW + 4.0;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"monospace\" font-size=\"12\" \
         style=\"background-color:#f8f8f0\">\n\
         <text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        WIDTH / 2.0,
        escape(title)
    );
    if tree.is_empty() {
        out.push_str("</svg>\n");
        return out;
    }
    let y = |depth: usize| TOP + (deepest - depth) as f64 * ROW;
    frame(&mut out, "all", tree.samples(), 1.0, 0.0, WIDTH, y(0));
    // Where each node's first callee starts; callees follow one another.
    let mut next_x = vec![0.0; tree.len()];
    for (id, depth) in order {
        let node = tree.node(id);
        let width = tree.share(id) * WIDTH;
        let x = next_x[node.parent as usize];
        next_x[node.parent as usize] = x + width;
        next_x[id as usize] = x;
        if width >= NARROWEST {
            frame(
                &mut out,
                &node.frame,
                node.total_samples,
                tree.share(id),
                x,
                width,
                y(depth),
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

/// One frame: its rectangle, its tooltip and its name where it fits.
fn frame(out: &mut String, name: &str, samples: u64, share: f64, x: f64, width: f64, y: f64) {
    let label = fitted(name, width);
    let _ = write!(
        out,
        "<g><title>{} ({samples} samples, {:.2}%)</title>\
         <rect x=\"{x:.2}\" y=\"{y}\" width=\"{width:.2}\" height=\"{}\" fill=\"{}\" rx=\"2\"/>",
        escape(name),
        share * 100.0,
        ROW - 1.0,
        colour(name),
    );
    if !label.is_empty() {
        let _ = write!(
            out,
            "<text x=\"{:.2}\" y=\"{}\">{}</text>",
            x + 3.0,
            y + ROW - 4.5,
            escape(&label)
        );
    }
    out.push_str("</g>\n");
}

/// As much of `name` as fits in `width` pixels, cut with `..`; nothing when
/// not even a few characters fit.
fn fitted(name: &str, width: f64) -> String {
    let room = ((width - 6.0) / CHAR).floor().max(0.0) as usize;
    let chars = name.chars().count();
    match room {
        _ if chars <= room => name.to_string(),
        0..=3 => String::new(),
        _ => name.chars().take(room - 2).chain("..".chars()).collect(),
    }
}

/// Blue for a thread state (`[waiting]`), else a warm colour of its own
/// that stays the same for the same frame.
fn colour(name: &str) -> String {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let (a, b) = ((hash % 80) as u8, ((hash >> 8) % 60) as u8);
    if name.starts_with('[') && name.ends_with(']') {
        format!("rgb({},{},230)", 110 + b, 140 + a)
    } else {
        format!("rgb(230,{},{})", 90 + a + b, 40 + b)
    }
}

/// `text` safe inside an XML element or a quoted attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && !matches!(c, '\t' | '\n') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rectangles' (x, width) by frame name, from the tooltips.
    fn rects(svg: &str) -> Vec<(String, f64, f64)> {
        svg.split("<g><title>")
            .skip(1)
            .map(|g| {
                let name = g[..g.find(" (").unwrap()].to_string();
                let attr = |key: &str| -> f64 {
                    let at = g.find(&format!(" {key}=\"")).unwrap() + key.len() + 3;
                    g[at..at + g[at..].find('"').unwrap()].parse().unwrap()
                };
                (name, attr("x"), attr("width"))
            })
            .collect()
    }

    #[test]
    fn frames_are_as_wide_as_their_share_and_callees_sit_on_their_callers() {
        let tree = CallTree::parse("main;a;[running] 3\nmain;b 1\n");
        let svg = svg(&tree, "shop");
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert_eq!(
            rects(&svg),
            [
                ("all".to_string(), 0.0, 1200.0),
                ("main".to_string(), 0.0, 1200.0),
                ("a".to_string(), 0.0, 900.0),
                ("[running]".to_string(), 0.0, 900.0),
                ("b".to_string(), 900.0, 300.0),
            ]
        );
        assert_eq!(svg.matches("<rect ").count(), 5);
        let y = |name: &str| {
            let g = svg
                .split("<g>")
                .find(|g| g.contains(&format!("<title>{name} ")))
                .unwrap();
            let at = g.find(" y=\"").unwrap() + 4;
            g[at..at + g[at..].find('"').unwrap()]
                .parse::<f64>()
                .unwrap()
        };
        assert!(y("a") < y("main") && y("main") < y("all"), "callees above");
        assert!(colour("[running]").ends_with(",230)"));
    }

    #[test]
    fn names_are_escaped_and_cut_to_fit() {
        let tree = CallTree::parse("Shop.<init>;a&b 1\n");
        let svg = svg(&tree, "\"quoted\" <title>");
        assert!(svg.contains("Shop.&lt;init&gt;"), "{svg}");
        assert!(svg.contains("a&amp;b") && svg.contains("&quot;quoted&quot; &lt;title&gt;"));
        assert!(!svg.contains("<init>") && !svg.contains("a&b"));
        assert_eq!(fitted("java.lang.Thread.run", 60.0), "java...");
        assert_eq!(fitted("run", 60.0), "run");
        assert_eq!(fitted("java.lang.Thread.run", 20.0), "");
    }

    #[test]
    fn an_empty_profile_is_a_valid_empty_drawing() {
        let svg = svg(&CallTree::default(), "nothing");
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert!(!svg.contains("<rect"));
    }
}
