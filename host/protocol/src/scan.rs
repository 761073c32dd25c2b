//! Where the next msgpack value ends, found without building it.
//!
//! The [`crate::Decoder`] scans before it decodes: a parser run over the whole buffer
//! each time more bytes arrive costs time quadratic in the frame's size (a 16 MiB frame
//! sent in 64 KiB reads took minutes of CPU), and building values for an incomplete
//! frame costs memory many times its size. The scanner looks at each byte once, however
//! the bytes are split, and keeps only a count per open array or map.

/// Why the bytes can never complete a frame within the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A byte that no msgpack value starts with (`0xc1`).
    Reserved(u8),
    /// Arrays and maps nested deeper than allowed.
    TooDeep,
    /// The frame would end past the size limit.
    TooLarge,
    /// More values in one frame than allowed.
    TooManyValues,
}

/// Limits a frame must stay within.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub bytes: usize,
    pub depth: usize,
    pub values: usize,
}

/// The deepest nesting any [`Limits`] may allow: the scanner keeps its counts inline,
/// so scanning a frame allocates nothing.
pub(crate) const MAX_DEPTH: usize = 64;

/// The scan of one frame, resumed as bytes arrive.
#[derive(Debug)]
pub(crate) struct Scanner {
    /// Offset from the frame's start of the next value's first byte.
    at: usize,
    /// Values still to come in each open array or map, innermost at `depth - 1`; one
    /// for the frame itself before its first byte. One slot more than the deepest
    /// nesting, so a container's count is written before its depth is checked.
    open: [u64; MAX_DEPTH + 2],
    depth: usize,
    /// Values seen so far.
    values: usize,
}

impl Default for Scanner {
    fn default() -> Self {
        Self {
            at: 0,
            open: [0; MAX_DEPTH + 2],
            depth: 0,
            values: 0,
        }
    }
}

impl Scanner {
    /// Scan `frame` (the bytes from the frame's start, as many as have arrived) further.
    /// `Ok(Some(end))`: the frame is `frame[..end]`; `Ok(None)`: more bytes are needed.
    pub(crate) fn scan(&mut self, frame: &[u8], limits: Limits) -> Result<Option<usize>, Refusal> {
        let max_depth = limits.depth.min(MAX_DEPTH);
        if self.depth == 0 {
            self.open[0] = 1;
            self.depth = 1;
        }
        // Kept in locals so the loop runs in registers; written back when it stops.
        let (mut at, mut depth, mut values) = (self.at, self.depth, self.values);
        let outcome = loop {
            let Some(&marker) = frame.get(at) else {
                break Ok(None);
            };
            // Most values (small ints, short strings, small maps and arrays) have
            // their whole shape in the marker: a table lookup, no branch on the kind.
            let shape = SHAPES[usize::from(marker)];
            let (size, children) = if shape.size != 0 {
                shape.widened()
            } else {
                match value_shape(marker, &frame[at..]) {
                    Ok(Some(shape)) => shape,
                    Ok(None) => break Ok(None),
                    Err(refusal) => break Err(refusal),
                }
            };
            let Some(end) = at.checked_add(size).filter(|&end| end <= limits.bytes) else {
                break Err(Refusal::TooLarge);
            };
            if end > frame.len() {
                break Ok(None);
            }
            values += 1;
            if values > limits.values {
                break Err(Refusal::TooManyValues);
            }
            at = end;
            self.open[depth - 1] -= 1;
            // A container opens a level; a scalar writes a count nobody reads.
            self.open[depth] = children;
            if children > 0 {
                if depth > max_depth {
                    break Err(Refusal::TooDeep);
                }
                depth += 1;
            }
            while depth > 0 && self.open[depth - 1] == 0 {
                depth -= 1;
            }
            if depth == 0 {
                break Ok(Some(at));
            }
        };
        match outcome {
            Ok(Some(end)) => {
                self.at = 0;
                self.depth = 0;
                self.values = 0;
                Ok(Some(end))
            }
            other => {
                self.at = at;
                self.depth = depth;
                self.values = values;
                other
            }
        }
    }
}

/// What a marker alone says of its value, when it says all: the value's size in bytes
/// and how many values it contains.
#[derive(Debug, Clone, Copy)]
struct Shape {
    size: u8,
    children: u8,
}

impl Shape {
    fn widened(self) -> (usize, u64) {
        (usize::from(self.size), u64::from(self.children))
    }
}

/// The shape of a value whose marker holds all of it (small integers, nil and booleans,
/// short strings, small maps and arrays); `None` when a length follows the marker.
const fn fixed_shape(marker: u8) -> Option<Shape> {
    let (size, children) = match marker {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0),
        0x80..=0x8f => (1, 2 * (marker & 0x0f)),
        0x90..=0x9f => (1, marker & 0x0f),
        0xa0..=0xbf => (1 + (marker & 0x1f), 0),
        _ => return None,
    };
    Some(Shape { size, children })
}

/// [`fixed_shape`] of every marker byte, built at compile time; `size` 0 where a length
/// follows the marker (two bytes an entry, not an `Option`'s three: measured 4 % faster).
static SHAPES: [Shape; 256] = {
    const LENGTH_FOLLOWS: Shape = Shape {
        size: 0,
        children: 0,
    };
    let mut table = [LENGTH_FOLLOWS; 256];
    let mut marker = 0;
    while marker < 256 {
        if let Some(shape) = fixed_shape(marker as u8) {
            table[marker] = shape;
        }
        marker += 1;
    }
    table
};

/// The size in bytes of the value starting at `bytes[0]` (its header and, for strings,
/// binaries and extensions, its payload; not its children) and how many values it
/// contains. `None` when its header is not all there yet. The scan asks only for the
/// markers [`SHAPES`] leaves out.
fn value_shape(marker: u8, bytes: &[u8]) -> Result<Option<(usize, u64)>, Refusal> {
    // A length of `n` big-endian bytes after the marker.
    let len = |n: usize| -> Option<u64> {
        let field = bytes.get(1..1 + n)?;
        Some(field.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    };
    // Header of `head` bytes, then a payload whose length is in `n` bytes after the marker.
    let payload = |head: usize, n: usize| -> Option<(usize, u64)> {
        let body = usize::try_from(len(n)?).ok()?;
        Some((head.checked_add(body)?, 0))
    };
    let shape = match marker {
        0xc1 => return Err(Refusal::Reserved(marker)),
        0xc4 | 0xd9 => payload(2, 1),
        0xc5 | 0xda => payload(3, 2),
        0xc6 | 0xdb => payload(5, 4),
        // ext: the length, then a type byte, then the payload.
        0xc7 => payload(3, 1),
        0xc8 => payload(4, 2),
        0xc9 => payload(6, 4),
        0xca => Some((5, 0)),
        0xcb => Some((9, 0)),
        0xcc | 0xd0 => Some((2, 0)),
        0xcd | 0xd1 => Some((3, 0)),
        0xce | 0xd2 => Some((5, 0)),
        0xcf | 0xd3 => Some((9, 0)),
        // fixext 1, 2, 4, 8, 16: a type byte and that many bytes.
        0xd4 => Some((3, 0)),
        0xd5 => Some((4, 0)),
        0xd6 => Some((6, 0)),
        0xd7 => Some((10, 0)),
        0xd8 => Some((18, 0)),
        0xdc => len(2).map(|n| (3, n)),
        0xdd => len(4).map(|n| (5, n)),
        0xde => len(2).map(|n| (3, 2 * n)),
        0xdf => len(4).map(|n| (5, 2 * n)),
        _ => fixed_shape(marker).map(Shape::widened),
    };
    Ok(shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmpv::Value;

    const LIMITS: Limits = Limits {
        bytes: 1 << 20,
        depth: 8,
        values: 1000,
    };

    fn encoded(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).expect("vec write");
        out
    }

    #[test]
    fn finds_the_end_of_every_kind_of_value_at_any_split() {
        let v = Value::Array(vec![
            Value::Nil,
            Value::from(true),
            Value::from(-3),
            Value::from(-300_000),
            Value::from(u64::MAX),
            Value::F32(1.5),
            Value::F64(2.5),
            Value::from("é".repeat(40)),
            Value::from("x".repeat(70_000)),
            Value::Binary(vec![7; 300]),
            Value::Ext(3, vec![1]),
            Value::Ext(4, vec![1; 16]),
            Value::Ext(5, vec![1; 5]),
            Value::Map(vec![(Value::from("k"), Value::Array(vec![]))]),
            Value::Array(vec![Value::Map(vec![]); 20]),
        ]);
        let mut bytes = encoded(&v);
        let end = bytes.len();
        bytes.extend(encoded(&Value::from(1)));
        let limits = Limits {
            values: 100,
            ..LIMITS
        };
        for split in [1, 2, 3, 7, 64, 1000, bytes.len()] {
            let mut s = Scanner::default();
            let mut found = None;
            for upto in (split..bytes.len() + split).step_by(split) {
                let upto = upto.min(bytes.len());
                if let Some(e) = s.scan(&bytes[..upto], limits).expect("valid") {
                    found = Some(e);
                    break;
                }
            }
            assert_eq!(found, Some(end), "split {split}");
        }
    }

    #[test]
    fn refuses_what_cannot_fit_before_it_arrives() {
        let scan = |bytes: &[u8]| Scanner::default().scan(bytes, LIMITS);
        assert_eq!(scan(&[0xc1]), Err(Refusal::Reserved(0xc1)));
        assert_eq!(
            scan(&[0xc6, 0xff, 0xff, 0xff, 0xff]),
            Err(Refusal::TooLarge)
        );
        assert_eq!(scan(&[0x91; 9]), Err(Refusal::TooDeep));
        assert_eq!(scan(&[0x91; 8]), Ok(None));
        let mut many = vec![0xdd, 0xff, 0xff, 0xff, 0xff];
        many.resize(2000, 0xc0);
        assert_eq!(scan(&many), Err(Refusal::TooManyValues));
    }
}
