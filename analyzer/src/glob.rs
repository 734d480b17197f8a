//! Shell-style globs for service and endpoint filters: `*` matches any run of
//! characters, `?` one character, everything else itself.
//!
//! Names come from the wire and patterns from query strings, so matching must
//! stay cheap whatever either holds: a pattern is at most
//! [`MAX_PATTERN_CHARS`] long, and it is matched piece by piece between its
//! stars, each piece at its leftmost place after the previous one (which is
//! where a glob may always put it). A piece without `?` is found with the
//! standard library's linear substring search, so a name is read about once
//! per piece, never once per backtrack.

/// The longest pattern accepted (the query API answers 400 past it).
pub const MAX_PATTERN_CHARS: usize = 512;

/// One run of the pattern between stars: its characters, `None` for `?`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Piece {
    chars: Vec<Option<char>>,
    /// The piece as text when it holds no `?` (searched for directly).
    literal: Option<String>,
}

impl Piece {
    fn new(text: &str) -> Piece {
        let chars: Vec<Option<char>> = text.chars().map(|c| (c != '?').then_some(c)).collect();
        let literal = chars.iter().all(Option::is_some).then(|| text.to_string());
        Piece { chars, literal }
    }

    /// The end (byte index) of this piece when it matches `text` at byte `at`.
    fn match_at(&self, text: &str, at: usize) -> Option<usize> {
        let mut rest = text[at..].char_indices();
        for want in &self.chars {
            let (_, c) = rest.next()?;
            if want.is_some_and(|w| w != c) {
                return None;
            }
        }
        Some(rest.next().map_or(text.len(), |(i, _)| at + i))
    }

    /// The leftmost match at or after byte `from`: its start and end.
    fn find(&self, text: &str, from: usize) -> Option<(usize, usize)> {
        if let Some(literal) = &self.literal {
            return text[from..]
                .find(literal.as_str())
                .map(|i| (from + i, from + i + literal.len()));
        }
        text[from..]
            .char_indices()
            .map(|(i, _)| from + i)
            .chain(std::iter::once(text.len()))
            .find_map(|start| self.match_at(text, start).map(|end| (start, end)))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    /// The pieces between stars; one piece when there is no star.
    pieces: Vec<Piece>,
}

impl Glob {
    /// A glob of `pattern` (the caller bounds its length: see
    /// [`MAX_PATTERN_CHARS`]).
    pub fn new(pattern: &str) -> Self {
        Glob {
            pieces: pattern.split('*').map(Piece::new).collect(),
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        let (first, rest) = self.pieces.split_first().expect("split gives a piece");
        let Some(after_first) = first.match_at(text, 0) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return after_first == text.len(); // no star: the whole name
        };
        // The last piece sits at the very end, after everything before it.
        let Some(last_start) = text
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(text.len()))
            .rev()
            .nth(last.chars.len())
        else {
            return false;
        };
        if last_start < after_first || last.match_at(text, last_start) != Some(text.len()) {
            return false;
        }
        let mut at = after_first;
        for piece in middle {
            match piece.find(&text[..last_start], at) {
                Some((_, end)) => at = end,
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn globs_match_like_a_shell() {
        let cases = [
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("*", "GET /orders", true),
            ("GET *", "GET /orders", true),
            ("GET *", "POST /orders", false),
            ("/orders/*/items", "/orders/42/items", true),
            ("/orders/*/items", "/orders/42/item", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b", "xxaxxbxxc", false),
            ("*a*b", "xxaxxbxxb", true),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("*?", "", false),
            ("*?", "x", true),
            ("?*?", "x", false),
            ("*x?z*", "axyzb", true),
            ("*x?z*", "axyyzb", false),
            ("**", "anything", true),
            ("orders", "orders", true),
            ("orders", "orders2", false),
            ("주문*", "주문서비스", true),
            ("*서?스", "주문서비스", true),
            ("?문*", "주문서비스", true),
        ];
        for (pattern, text, expect) in cases {
            assert_eq!(
                Glob::new(pattern).matches(text),
                expect,
                "{pattern} vs {text}"
            );
        }
    }

    /// A reference matcher by dynamic programming over characters.
    fn reference(pattern: &str, text: &str) -> bool {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        let mut can = vec![vec![false; t.len() + 1]; p.len() + 1];
        can[0][0] = true;
        for i in 1..=p.len() {
            for j in 0..=t.len() {
                can[i][j] = match p[i - 1] {
                    '*' => can[i - 1][j] || (j > 0 && can[i][j - 1]),
                    '?' => j > 0 && can[i - 1][j - 1],
                    c => j > 0 && t[j - 1] == c && can[i - 1][j - 1],
                };
            }
        }
        can[p.len()][t.len()]
    }

    #[test]
    fn every_small_pattern_agrees_with_a_reference_matcher() {
        let mut rng = jvmapm_contract::random::Rng::seeded(0x2545_F491_4F6C_DD1D);
        let mut next = |n: u64| rng.below(n);
        let alphabet = ['a', 'b', '?', '*', 'é'];
        for _ in 0..20_000 {
            let pattern: String = (0..next(7)).map(|_| alphabet[next(5) as usize]).collect();
            let text: String = (0..next(9))
                .map(|_| ['a', 'b', 'é'][next(3) as usize])
                .collect();
            assert_eq!(
                Glob::new(&pattern).matches(&text),
                reference(&pattern, &text),
                "{pattern:?} vs {text:?}"
            );
        }
    }
}
