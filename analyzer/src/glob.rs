//! Shell-style globs for service and endpoint filters: `*` matches any run of
//! characters, `?` one character, everything else itself.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    pattern: Vec<char>,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Glob {
            pattern: pattern.chars().collect(),
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let (p, t) = (&self.pattern, &text);
        let (mut pi, mut ti) = (0, 0);
        // Where the last `*` was, and the text position it is tried against.
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(&c) if c == '?' || c == t[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn globs_match_like_a_shell() {
        let cases = [
            ("*", "", true),
            ("*", "GET /orders", true),
            ("GET *", "GET /orders", true),
            ("GET *", "POST /orders", false),
            ("/orders/*/items", "/orders/42/items", true),
            ("/orders/*/items", "/orders/42/item", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b", "xxaxxbxxc", false),
            ("orders", "orders", true),
            ("orders", "orders2", false),
            ("주문*", "주문서비스", true),
        ];
        for (pattern, text, expect) in cases {
            assert_eq!(
                Glob::new(pattern).matches(text),
                expect,
                "{pattern} vs {text}"
            );
        }
    }
}
