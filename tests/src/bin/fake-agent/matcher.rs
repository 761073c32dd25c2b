//! Hook `matcher` semantics: empty or `*` matches everything; a plain name list
//! (`Bash|Edit`, only letters, digits, `_` and `|`) matches exactly; anything else is a
//! regular expression searched in the value (a small backtracking engine: literals, `.`,
//! classes `[...]`, `\d \w \s`, groups with `|`, `* + ? {n,m}`, `^ $`). An invalid
//! expression matches nothing.

pub fn matches(matcher: Option<&str>, value: &str) -> bool {
    let m = match matcher {
        None => return true,
        Some(m) => m.trim(),
    };
    if m.is_empty() || m == "*" {
        return true;
    }
    if m.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '|')
    {
        return m.split('|').any(|alt| alt == value);
    }
    match Regex::parse(m) {
        Some(re) => re.is_match(value),
        None => false,
    }
}

#[derive(Debug, Clone)]
enum Node {
    Char(char),
    Any,
    Class(Vec<(char, char)>, bool),
    Start,
    End,
    Group(Vec<Vec<Node>>),
    Repeat(Box<Node>, usize, Option<usize>),
}

#[derive(Debug)]
struct Regex {
    alts: Vec<Vec<Node>>,
}

impl Regex {
    fn parse(src: &str) -> Option<Regex> {
        let chars: Vec<char> = src.chars().collect();
        let mut i = 0;
        let alts = parse_alts(&chars, &mut i)?;
        if i != chars.len() {
            return None;
        }
        Some(Regex { alts })
    }

    fn is_match(&self, s: &str) -> bool {
        let s: Vec<char> = s.chars().collect();
        let node = Node::Group(self.alts.clone());
        (0..=s.len()).any(|start| match_node(&node, &s, start, &|_| true))
    }
}

fn parse_alts(c: &[char], i: &mut usize) -> Option<Vec<Vec<Node>>> {
    let mut alts = vec![parse_seq(c, i)?];
    while *i < c.len() && c[*i] == '|' {
        *i += 1;
        alts.push(parse_seq(c, i)?);
    }
    Some(alts)
}

fn parse_seq(c: &[char], i: &mut usize) -> Option<Vec<Node>> {
    let mut seq = Vec::new();
    while *i < c.len() && c[*i] != '|' && c[*i] != ')' {
        let atom = match c[*i] {
            '(' => {
                *i += 1;
                // Non-capturing group syntax is accepted.
                if c.get(*i) == Some(&'?') && c.get(*i + 1) == Some(&':') {
                    *i += 2;
                }
                let alts = parse_alts(c, i)?;
                if c.get(*i) != Some(&')') {
                    return None;
                }
                *i += 1;
                Node::Group(alts)
            }
            '[' => {
                *i += 1;
                parse_class(c, i)?
            }
            '.' => {
                *i += 1;
                Node::Any
            }
            '^' => {
                *i += 1;
                Node::Start
            }
            '$' => {
                *i += 1;
                Node::End
            }
            '\\' => {
                *i += 1;
                let e = *c.get(*i)?;
                *i += 1;
                escape(e)
            }
            '*' | '+' | '?' | '{' => return None,
            ch => {
                *i += 1;
                Node::Char(ch)
            }
        };
        let atom = parse_quantifier(c, i, atom)?;
        seq.push(atom);
    }
    Some(seq)
}

fn parse_quantifier(c: &[char], i: &mut usize, atom: Node) -> Option<Node> {
    let (min, max) = match c.get(*i) {
        Some('*') => {
            *i += 1;
            (0, None)
        }
        Some('+') => {
            *i += 1;
            (1, None)
        }
        Some('?') => {
            *i += 1;
            (0, Some(1))
        }
        Some('{') => {
            let close = c[*i..].iter().position(|&x| x == '}')? + *i;
            let body: String = c[*i + 1..close].iter().collect();
            *i = close + 1;
            match body.split_once(',') {
                None => {
                    let n = body.trim().parse().ok()?;
                    (n, Some(n))
                }
                Some((a, b)) => {
                    let a = a.trim().parse().ok()?;
                    let b = if b.trim().is_empty() {
                        None
                    } else {
                        Some(b.trim().parse().ok()?)
                    };
                    (a, b)
                }
            }
        }
        _ => return Some(atom),
    };
    // A lazy marker is accepted and treated as greedy (only match/no-match matters).
    if c.get(*i) == Some(&'?') {
        *i += 1;
    }
    Some(Node::Repeat(Box::new(atom), min, max))
}

fn escape(e: char) -> Node {
    let digits = vec![('0', '9')];
    let word = vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')];
    let space = vec![
        (' ', ' '),
        ('\t', '\t'),
        ('\n', '\n'),
        ('\r', '\r'),
        ('\x0b', '\x0c'),
    ];
    match e {
        'd' => Node::Class(digits, false),
        'D' => Node::Class(digits, true),
        'w' => Node::Class(word, false),
        'W' => Node::Class(word, true),
        's' => Node::Class(space, false),
        'S' => Node::Class(space, true),
        'n' => Node::Char('\n'),
        't' => Node::Char('\t'),
        other => Node::Char(other),
    }
}

fn parse_class(c: &[char], i: &mut usize) -> Option<Node> {
    let mut negated = false;
    if c.get(*i) == Some(&'^') {
        negated = true;
        *i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let ch = *c.get(*i)?;
        if ch == ']' && !first {
            *i += 1;
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            *i += 1;
            let e = *c.get(*i)?;
            *i += 1;
            match escape(e) {
                Node::Char(x) => x,
                Node::Class(rs, false) => {
                    ranges.extend(rs);
                    continue;
                }
                _ => return None,
            }
        } else {
            *i += 1;
            ch
        };
        if c.get(*i) == Some(&'-') && c.get(*i + 1).is_some_and(|&x| x != ']') {
            let hi = c[*i + 1];
            *i += 2;
            ranges.push((lo, hi));
        } else {
            ranges.push((lo, lo));
        }
    }
    Some(Node::Class(ranges, negated))
}

fn match_seq(seq: &[Node], s: &[char], pos: usize, k: &dyn Fn(usize) -> bool) -> bool {
    match seq.split_first() {
        None => k(pos),
        Some((node, rest)) => match_node(node, s, pos, &|p| match_seq(rest, s, p, k)),
    }
}

fn match_node(node: &Node, s: &[char], pos: usize, k: &dyn Fn(usize) -> bool) -> bool {
    match node {
        Node::Char(c) => pos < s.len() && s[pos] == *c && k(pos + 1),
        Node::Any => pos < s.len() && s[pos] != '\n' && k(pos + 1),
        Node::Class(ranges, negated) => {
            pos < s.len()
                && {
                    let ch = s[pos];
                    let inside = ranges.iter().any(|&(lo, hi)| lo <= ch && ch <= hi);
                    inside != *negated
                }
                && k(pos + 1)
        }
        Node::Start => pos == 0 && k(pos),
        Node::End => pos == s.len() && k(pos),
        Node::Group(alts) => alts.iter().any(|a| match_seq(a, s, pos, k)),
        Node::Repeat(inner, min, max) => repeat(inner, *min, *max, s, pos, 0, k),
    }
}

fn repeat(
    inner: &Node,
    min: usize,
    max: Option<usize>,
    s: &[char],
    pos: usize,
    count: usize,
    k: &dyn Fn(usize) -> bool,
) -> bool {
    if max.is_none_or(|m| count < m)
        && match_node(inner, s, pos, &|p| {
            p != pos && repeat(inner, min, max, s, p, count + 1, k)
        })
    {
        return true;
    }
    count >= min && k(pos)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn matcher() {
        assert!(matches(None, "Bash"));
        assert!(matches(Some(""), "Bash"));
        assert!(matches(Some("*"), "Bash"));
        assert!(matches(Some("Bash|Edit"), "Edit"));
        assert!(!matches(Some("Bash|Edit"), "BashX"));
        assert!(matches(Some("mcp__.*"), "mcp__x__y"));
        assert!(matches(Some("^(Bash|Read)$"), "Read"));
        assert!(!matches(Some("^(Bash|Read)$"), "Reads"));
        assert!(matches(Some("run_shell.*"), "run_shell_command"));
        assert!(matches(Some("[Bb]ash"), "bash"));
        assert!(!matches(Some("(unclosed"), "x"));
    }
}
