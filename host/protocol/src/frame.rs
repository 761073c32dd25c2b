//! msgpack-RPC framing exactly as Neovim speaks it, so `sockconnect(..., {rpc = true})`
//! and any msgpack-RPC library can talk to the host.
//!
//! A stream carries back-to-back msgpack arrays with no length prefix:
//! - request `[0, msgid, method, params]`
//! - response `[1, msgid, error, result]`
//! - notification `[2, method, params]`
//!
//! `params` is an array. Canopy methods take one map in it (`[{...}]`), which is what
//! `vim.rpcrequest(ch, "list", {})` sends.

use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::scan::{Limits, Refusal, Scanner};

/// Most bytes the decoder holds while waiting for one frame to complete. A peer that
/// sends more without finishing a frame is broken or hostile.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Deepest nesting of arrays and maps accepted (the message's own array counts), so a
/// crafted frame cannot exhaust the stack.
const MAX_DEPTH: usize = crate::scan::MAX_DEPTH;

/// Most values (of any kind, nested ones included) in one frame. A decoded value takes
/// tens of bytes, so without this a frame of one-byte `nil`s would cost the host many
/// times its size in memory. Real frames hold thousands at most.
const MAX_FRAME_VALUES: usize = 1 << 20;

const LIMITS: Limits = Limits {
    bytes: MAX_FRAME_BYTES,
    depth: MAX_DEPTH,
    values: MAX_FRAME_VALUES,
};

/// The depth budget handed to rmpv once the scanner has accepted a frame: rmpv spends
/// two per array or map and up to three on a leaf, so this never refuses what the
/// scanner let through.
const RMPV_DEPTH: usize = 2 * MAX_DEPTH + 4;

/// One msgpack-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request {
        id: u32,
        method: String,
        params: Vec<Value>,
    },
    Response {
        id: u32,
        error: Value,
        result: Value,
    },
    Notification {
        method: String,
        params: Vec<Value>,
    },
}

/// Why bytes could not be read as a message. Any of these ends the connection that sent
/// them: after garbage there is no way to find the next frame boundary.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The bytes are not msgpack at all.
    #[error("malformed msgpack: {0}")]
    Malformed(String),
    /// Valid msgpack, but not a `[type, ...]` array msgpack-RPC defines.
    #[error("not a msgpack-RPC message: {0}")]
    NotRpc(String),
    /// The frame is (or would be, by the lengths it declares) larger than
    /// [`MAX_FRAME_BYTES`], or holds more values than the decoder accepts.
    #[error("frame larger than {MAX_FRAME_BYTES} bytes or {MAX_FRAME_VALUES} values")]
    TooLarge,
}

impl From<Refusal> for FrameError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Reserved(b) => FrameError::Malformed(format!("reserved byte {b:#04x}")),
            Refusal::TooDeep => {
                FrameError::Malformed(format!("nested deeper than {MAX_DEPTH} levels"))
            }
            Refusal::TooLarge | Refusal::TooManyValues => FrameError::TooLarge,
        }
    }
}

/// Failure to turn typed data into or out of a msgpack value.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode: {0}")]
    Encode(String),
    #[error("{0}")]
    Decode(String),
}

impl Message {
    /// A request whose params are the single map `params` serializes to.
    pub fn request<P: Serialize>(id: u32, method: &str, params: &P) -> Result<Self, CodecError> {
        Ok(Message::Request {
            id,
            method: method.to_owned(),
            params: vec![to_value(params)?],
        })
    }

    /// A notification whose params are the single map `params` serializes to.
    pub fn notification<P: Serialize>(method: &str, params: &P) -> Result<Self, CodecError> {
        Ok(Message::Notification {
            method: method.to_owned(),
            params: vec![to_value(params)?],
        })
    }

    /// The msgpack bytes of this message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        // Writes into a Vec cannot fail.
        match self {
            Message::Request { id, method, params } => {
                write_head(&mut out, Kind::Request(*id), method);
                write_values(&mut out, params);
            }
            Message::Response { id, error, result } => {
                write_head(&mut out, Kind::Response(*id), "");
                let _ = rmpv::encode::write_value(&mut out, error);
                let _ = rmpv::encode::write_value(&mut out, result);
            }
            Message::Notification { method, params } => {
                write_head(&mut out, Kind::Notification, method);
                write_values(&mut out, params);
            }
        }
        out
    }
}

/// Which of the three messages a frame is, with its msgid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request(u32),
    Response(u32),
    Notification,
}

/// `[0, id, method,` / `[1, id,` / `[2, method,`: everything before the params (or
/// before the error and result of a response).
fn write_head(out: &mut Vec<u8>, kind: Kind, method: &str) {
    use rmp::encode;
    // Writes into a Vec cannot fail.
    match kind {
        Kind::Request(id) => {
            let _ = encode::write_array_len(out, 4);
            let _ = encode::write_uint(out, 0);
            let _ = encode::write_uint(out, id.into());
            let _ = encode::write_str(out, method);
        }
        Kind::Response(id) => {
            let _ = encode::write_array_len(out, 4);
            let _ = encode::write_uint(out, 1);
            let _ = encode::write_uint(out, id.into());
        }
        Kind::Notification => {
            let _ = encode::write_array_len(out, 3);
            let _ = encode::write_uint(out, 2);
            let _ = encode::write_str(out, method);
        }
    }
}

fn write_values(out: &mut Vec<u8>, values: &[Value]) {
    // Writes into a Vec cannot fail; a slice's length fits in u32 in any real frame
    // (the decoder refuses more than a million values).
    let _ = rmp::encode::write_array_len(out, values.len() as u32);
    for v in values {
        let _ = rmpv::encode::write_value(out, v);
    }
}

/// Serialize `data` as msgpack with named fields (maps, not arrays, so Lua and other
/// dynamic clients see keys) onto the end of `out`, with no value tree in between.
fn write_named<T: Serialize + ?Sized>(out: &mut Vec<u8>, data: &T) -> Result<(), CodecError> {
    data.serialize(&mut rmp_serde::Serializer::new(out).with_struct_map())
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// A frame of `kind` whose params are the one map `params` serializes to.
fn encode_call<P: Serialize + ?Sized>(
    kind: Kind,
    method: &str,
    params: &P,
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(256);
    write_head(&mut out, kind, method);
    // Writes into a Vec cannot fail.
    let _ = rmp::encode::write_array_len(&mut out, 1);
    write_named(&mut out, params)?;
    Ok(out)
}

/// The bytes of a request whose params are the single map `params` serializes to.
pub fn encode_request<P: Serialize + ?Sized>(
    id: u32,
    method: &str,
    params: &P,
) -> Result<Vec<u8>, CodecError> {
    encode_call(Kind::Request(id), method, params)
}

/// The bytes of a notification whose params are the single map `params` serializes to.
/// Events go this way to every subscriber: typed data straight into the frame is
/// several times faster than through a value tree (issue 22), and the bytes are the
/// same (`tests/wire.rs`).
pub fn encode_notification<P: Serialize + ?Sized>(
    method: &str,
    params: &P,
) -> Result<Vec<u8>, CodecError> {
    encode_call(Kind::Notification, method, params)
}

/// The bytes of a successful response.
pub fn encode_ok<R: Serialize + ?Sized>(id: u32, result: &R) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(256);
    write_head(&mut out, Kind::Response(id), "");
    out.push(NIL);
    write_named(&mut out, result)?;
    Ok(out)
}

/// The bytes of an error response.
pub fn encode_err(id: u32, error: &crate::RpcError) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_head(&mut out, Kind::Response(id), "");
    if write_named(&mut out, error).is_err() {
        // An RpcError is plain strings and cannot fail to encode; were it ever to,
        // the client still gets an error (its text) rather than nothing.
        out.truncate(0);
        write_head(&mut out, Kind::Response(id), "");
        let _ = rmp::encode::write_str(&mut out, &error.to_string());
    }
    out.push(NIL);
    out
}

/// msgpack's `nil`.
const NIL: u8 = 0xc0;

/// The empty map: what absent params read as.
const EMPTY_MAP: &[u8] = &[0x80];

/// The bytes of an `output` notification (`[2, "output", [{name, data}]]`), written
/// directly: output is the hot path, and this skips building a value tree.
pub fn output_frame(name: &str, data: &[u8]) -> Vec<u8> {
    use rmp::encode;
    let mut out = Vec::with_capacity(data.len() + name.len() + 32);
    // Writes into a Vec cannot fail.
    let _ = encode::write_array_len(&mut out, 3);
    let _ = encode::write_uint(&mut out, 2);
    let _ = encode::write_str(&mut out, crate::method::OUTPUT);
    let _ = encode::write_array_len(&mut out, 1);
    let _ = encode::write_map_len(&mut out, 2);
    let _ = encode::write_str(&mut out, "name");
    let _ = encode::write_str(&mut out, name);
    let _ = encode::write_str(&mut out, "data");
    let _ = encode::write_bin(&mut out, data);
    out
}

/// Serialize typed data to a msgpack value with named fields (maps, not arrays), so Lua
/// and other dynamic clients see keys.
pub fn to_value<T: Serialize + ?Sized>(data: &T) -> Result<Value, CodecError> {
    let bytes = rmp_serde::to_vec_named(data).map_err(|e| CodecError::Encode(e.to_string()))?;
    rmpv::decode::read_value(&mut bytes.as_slice()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Read typed data from a msgpack value.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, CodecError> {
    // Through bytes: rmpv's own deserializer does not read unit enum variants from
    // strings, which is how they travel.
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &value).map_err(|e| CodecError::Decode(e.to_string()))?;
    rmp_serde::from_slice(&bytes).map_err(|e| CodecError::Decode(e.to_string()))
}

/// The typed single-map parameter of a request or notification. A missing parameter
/// reads as an empty map, so `vim.rpcrequest(ch, "list")` works.
pub fn params<T: DeserializeOwned>(params: &[Value]) -> Result<T, CodecError> {
    let value = params
        .first()
        .cloned()
        .unwrap_or_else(|| Value::Map(Vec::new()));
    let value = if value.is_nil() {
        Value::Map(Vec::new())
    } else {
        value
    };
    from_value(value)
}

/// Incremental decoder: feed it bytes as they arrive, take whole messages out.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Start of the undecoded bytes in `buf`; consumed bytes are dropped lazily.
    pos: usize,
    /// How far the frame starting at `pos` has been scanned, so each byte is looked at
    /// once before the frame is complete.
    scanner: Scanner,
    /// The length of the frame at `pos`, once [`Decoder::has_frame`] found it whole.
    ready: Option<usize>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append bytes received from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet decoded.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete message, `Ok(None)` when more bytes are needed. After an error
    /// the stream has no frame boundary left to find: stop reading it.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        match self.next_frame()? {
            Some(frame) => frame.message().map(Some),
            None => Ok(None),
        }
    }

    /// The next complete message as the bytes it came in, its head read: typed params
    /// or results then deserialize straight from those bytes, with no value tree
    /// (several times faster for an event). `Ok(None)` when more bytes are needed; after
    /// an error stop reading the stream, as for [`Decoder::next_message`].
    pub fn next_frame(&mut self) -> Result<Option<RawMessage<'_>>, FrameError> {
        // Consumed bytes are dropped here rather than when the last frame was handed
        // out, which still borrowed them.
        if self.pos > 64 * 1024 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if !self.has_frame()? {
            return Ok(None);
        }
        let rest = &self.buf[self.pos..];
        let end = self.ready.take().unwrap_or(rest.len());
        self.pos += end;
        RawMessage::read(&rest[..end]).map(Some)
    }

    /// Whether a whole message is buffered, so that [`Decoder::next_frame`] returns
    /// one. Asking first lets a caller that reads in a loop take the borrowed frame only
    /// when there is one.
    pub fn has_frame(&mut self) -> Result<bool, FrameError> {
        if self.ready.is_none() {
            self.ready = self.scanner.scan(&self.buf[self.pos..], LIMITS)?;
        }
        Ok(self.ready.is_some())
    }
}

/// One complete message, borrowed from the decoder's buffer.
#[derive(Debug, Clone, Copy)]
pub struct RawMessage<'a> {
    frame: &'a [u8],
    kind: Kind,
    /// Empty for a response.
    method: &'a str,
    /// The params (an array, a map or nil), or a response's error and result.
    body: &'a [u8],
}

impl<'a> RawMessage<'a> {
    /// Read the head of `frame`, one whole msgpack value the scanner accepted.
    fn read(frame: &'a [u8]) -> Result<Self, FrameError> {
        use rmp::decode;
        let mut rd = frame;
        let len = decode::read_array_len(&mut rd)
            .map_err(|_| FrameError::NotRpc("expected an array".into()))?;
        let kind = decode::read_int::<u8, _>(&mut rd).ok();
        let (kind, method) = match (kind, len) {
            (Some(0), 4) => {
                let id = read_id(&mut rd)?;
                (Kind::Request(id), read_method(&mut rd)?)
            }
            (Some(1), 4) => (Kind::Response(read_id(&mut rd)?), ""),
            (Some(2), 3) => (Kind::Notification, read_method(&mut rd)?),
            _ => return Err(FrameError::NotRpc("unknown message type or arity".into())),
        };
        if !matches!(kind, Kind::Response(_)) {
            // Params are an array; some clients send a bare map (taken as the one
            // parameter) or nil (none).
            let params_ok = match rd.first() {
                Some(&m) => m == NIL || is_array(m) || is_map(m),
                None => false,
            };
            if !params_ok {
                return Err(FrameError::NotRpc("params is not an array".into()));
            }
        }
        Ok(RawMessage {
            frame,
            kind,
            method,
            body: rd,
        })
    }

    /// The whole message as it arrived.
    pub fn bytes(&self) -> &'a [u8] {
        self.frame
    }

    /// The method of a request or notification.
    pub fn method(&self) -> Option<&'a str> {
        match self.kind {
            Kind::Response(_) => None,
            _ => Some(self.method),
        }
    }

    /// The msgid of a request or response.
    pub fn id(&self) -> Option<u32> {
        match self.kind {
            Kind::Request(id) | Kind::Response(id) => Some(id),
            Kind::Notification => None,
        }
    }

    /// The typed single-map parameter of a request or notification, read as
    /// [`params`] reads it from values (absent or nil: an empty map).
    pub fn params<T: Deserialize<'a>>(&self) -> Result<T, CodecError> {
        let mut rd = self.body;
        if rd.first().copied().is_some_and(is_array) {
            let len = rmp::decode::read_array_len(&mut rd)
                .map_err(|e| CodecError::Decode(e.to_string()))?;
            if len == 0 {
                rd = EMPTY_MAP;
            }
        }
        if rd.first() == Some(&NIL) {
            rd = EMPTY_MAP;
        }
        from_slice(rd)
    }

    /// The typed result of a response: `Err(error)` when the host sent an error.
    pub fn result<T: Deserialize<'a>>(&self) -> Result<Result<T, Value>, CodecError> {
        let mut rd = self.body;
        if rd.first() != Some(&NIL) {
            return read_value(&mut rd).map(Err);
        }
        from_slice(&rd[1..]).map(Ok)
    }

    /// The message with its params (or error and result) as msgpack values.
    pub fn message(&self) -> Result<Message, FrameError> {
        let malformed = |e: CodecError| FrameError::Malformed(e.to_string());
        let mut rd = self.body;
        Ok(match self.kind {
            Kind::Request(id) => Message::Request {
                id,
                method: self.method.to_owned(),
                params: take_params(read_value(&mut rd).map_err(malformed)?),
            },
            Kind::Response(id) => Message::Response {
                id,
                error: read_value(&mut rd).map_err(malformed)?,
                result: read_value(&mut rd).map_err(malformed)?,
            },
            Kind::Notification => Message::Notification {
                method: self.method.to_owned(),
                params: take_params(read_value(&mut rd).map_err(malformed)?),
            },
        })
    }
}

/// The params array as values; a bare map is the one parameter, nil none.
fn take_params(v: Value) -> Vec<Value> {
    match v {
        Value::Array(params) => params,
        Value::Nil => Vec::new(),
        // `RawMessage::read` let only an array, a map or nil through.
        map => vec![map],
    }
}

fn is_array(marker: u8) -> bool {
    matches!(marker, 0x90..=0x9f | 0xdc | 0xdd)
}

fn is_map(marker: u8) -> bool {
    matches!(marker, 0x80..=0x8f | 0xde | 0xdf)
}

fn read_id(rd: &mut &[u8]) -> Result<u32, FrameError> {
    rmp::decode::read_int(rd)
        .map_err(|_| FrameError::NotRpc("msgid is not a 32-bit unsigned integer".into()))
}

/// A method name: a string, or binary holding UTF-8 (some clients send that).
fn read_method<'a>(rd: &mut &'a [u8]) -> Result<&'a str, FrameError> {
    let not_utf8 = || FrameError::NotRpc("method name is not UTF-8".into());
    let bytes: &'a [u8] = rd;
    let (len, head) = match bytes.first() {
        Some(0xa0..=0xbf | 0xd9 | 0xda | 0xdb) => {
            let mut r = bytes;
            let len = rmp::decode::read_str_len(&mut r).map_err(|_| not_utf8())?;
            (len, bytes.len() - r.len())
        }
        Some(0xc4..=0xc6) => {
            let mut r = bytes;
            let len = rmp::decode::read_bin_len(&mut r).map_err(|_| not_utf8())?;
            (len, bytes.len() - r.len())
        }
        _ => return Err(FrameError::NotRpc("method name is not a string".into())),
    };
    // The scanner has checked that the whole string is in the frame.
    let end = head + len as usize;
    let name = bytes.get(head..end).ok_or_else(not_utf8)?;
    *rd = &bytes[end..];
    std::str::from_utf8(name).map_err(|_| not_utf8())
}

/// One msgpack value from the front of `rd`, as a value tree.
fn read_value(rd: &mut &[u8]) -> Result<Value, CodecError> {
    rmpv::decode::read_value_with_max_depth(rd, RMPV_DEPTH)
        .map_err(|e| CodecError::Decode(e.to_string()))
}

/// Typed data from the msgpack value at the front of `bytes`, borrowing strings from
/// them where the type does.
fn from_slice<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    rmp_serde::from_slice(bytes).map_err(|e| CodecError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(msg: Message) {
        let bytes = msg.encode();
        let mut d = Decoder::new();
        d.feed(&bytes);
        assert_eq!(d.next_message().expect("decodes"), Some(msg));
        assert_eq!(d.next_message().expect("empty"), None);
    }

    #[test]
    fn each_kind_roundtrips() {
        roundtrip(Message::Request {
            id: 7,
            method: "list".into(),
            params: vec![Value::Map(vec![])],
        });
        roundtrip(Message::Response {
            id: 7,
            error: Value::Nil,
            result: Value::from(42),
        });
        roundtrip(Message::Notification {
            method: "event".into(),
            params: vec![Value::from("x")],
        });
    }

    #[test]
    fn byte_at_a_time_yields_the_same_messages() {
        let a = Message::request(1, "hello", &serde_json_free_map()).expect("encodes");
        let b = Message::Notification {
            method: "input".into(),
            params: vec![Value::Binary(vec![0, 1, 2, 255])],
        };
        let mut stream = a.encode();
        stream.extend(b.encode());
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for byte in stream {
            d.feed(&[byte]);
            while let Some(m) = d.next_message().expect("valid") {
                got.push(m);
            }
        }
        assert_eq!(got, vec![a, b]);
    }

    fn serde_json_free_map() -> std::collections::BTreeMap<String, String> {
        [("client".to_string(), "test".to_string())].into()
    }

    #[test]
    fn garbage_is_an_error_not_a_wait() {
        let mut d = Decoder::new();
        d.feed(b"GET / HTTP/1.1\r\n");
        assert!(d.next_message().is_err());
    }

    #[test]
    fn valid_msgpack_that_is_not_rpc_is_rejected() {
        for v in [
            Value::from(3),
            Value::Array(vec![Value::from(9), Value::from(1)]),
            Value::Array(vec![
                Value::from(0),
                Value::from(-1),
                Value::from("m"),
                Value::Array(vec![]),
            ]),
            Value::Array(vec![
                Value::from(0),
                Value::from(1),
                Value::from(5),
                Value::Array(vec![]),
            ]),
        ] {
            let mut bytes = Vec::new();
            rmpv::encode::write_value(&mut bytes, &v).expect("vec write");
            let mut d = Decoder::new();
            d.feed(&bytes);
            assert!(
                matches!(d.next_message(), Err(FrameError::NotRpc(_))),
                "{v:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut bytes = vec![0x91; 10_000]; // fixarray of 1, nested 10k deep
        bytes.push(0xc0);
        let mut d = Decoder::new();
        d.feed(&bytes);
        assert!(d.next_message().is_err());
    }

    #[test]
    fn oversized_incomplete_frame_is_refused() {
        let mut d = Decoder::new();
        // bin32 header announcing 4 GiB, then a lot of filler that never completes it.
        d.feed(&[0xc6, 0xff, 0xff, 0xff, 0xff]);
        d.feed(&vec![0u8; MAX_FRAME_BYTES + 1]);
        assert_eq!(d.next_message(), Err(FrameError::TooLarge));
    }

    /// `[0, 1, "list", [X]]` with `X`'s bytes to follow.
    fn list_request_head() -> Vec<u8> {
        vec![0x94, 0x00, 0x01, 0xa4, b'l', b'i', b's', b't', 0x91]
    }

    #[test]
    fn a_large_frame_in_small_reads_costs_linear_time() {
        // Regression: each read re-parsed the whole buffered frame, so 16 MiB sent in
        // 64 KiB reads took minutes of CPU and held a runtime worker all along.
        let len = 4 * 1024 * 1024;
        let mut stream = list_request_head();
        stream.push(0xc6);
        stream.extend(u32::try_from(len).expect("fits").to_be_bytes());
        stream.resize(stream.len() + len, 7);
        let started = std::time::Instant::now();
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for chunk in stream.chunks(64 * 1024) {
            d.feed(chunk);
            got.extend(d.next_message().expect("valid"));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert!(matches!(&got[..], [Message::Request { params, .. }] if params.len() == 1));
    }

    #[test]
    fn a_frame_of_millions_of_tiny_values_is_refused() {
        // Regression: 16 MiB of `nil`s in one array would have been decoded into values
        // of tens of bytes each: hundreds of MiB for one frame.
        let mut stream = list_request_head();
        stream.extend([0xdd, 0xff, 0xff, 0xff, 0xff]);
        stream.resize(4 * 1024 * 1024, 0xc0);
        let mut d = Decoder::new();
        let mut result = Ok(None);
        for chunk in stream.chunks(64 * 1024) {
            d.feed(chunk);
            result = d.next_message();
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(FrameError::TooLarge));
    }

    #[test]
    fn a_declared_length_past_the_limit_is_refused_at_once() {
        let mut d = Decoder::new();
        let mut stream = list_request_head();
        stream.extend([0xdb, 0x01, 0x00, 0x00, 0x01]); // str32 of 16 MiB + 1
        d.feed(&stream);
        assert_eq!(d.next_message(), Err(FrameError::TooLarge));
    }

    #[test]
    fn output_frame_matches_the_generic_encoding() {
        let p = crate::params::OutputParams {
            name: "demo".into(),
            data: vec![27, b'[', b'H', 0, 255],
        };
        let generic = Message::notification(crate::method::OUTPUT, &p).expect("encodes");
        let mut d = Decoder::new();
        d.feed(&output_frame("demo", &p.data));
        assert_eq!(d.next_message().expect("decodes"), Some(generic));
    }

    #[test]
    fn enums_travel_as_strings() {
        let e = crate::RpcError::new(crate::ErrorCode::NotFound, "gone");
        let v = to_value(&e).expect("encodes");
        assert_eq!(
            v.as_map()
                .and_then(|m| m.first())
                .map(|(_, code)| code.clone()),
            Some(Value::from("not_found"))
        );
        assert_eq!(from_value::<crate::RpcError>(v).expect("decodes"), e);
    }

    #[test]
    fn typed_params_default_to_an_empty_map() {
        #[derive(serde::Deserialize, Debug, PartialEq, Default)]
        #[serde(default)]
        struct P {
            force: bool,
        }
        assert_eq!(params::<P>(&[]).expect("empty"), P::default());
        assert_eq!(params::<P>(&[Value::Nil]).expect("nil"), P::default());
        let m = to_value(&std::collections::BTreeMap::from([("force", true)])).expect("map");
        assert_eq!(params::<P>(&[m]).expect("map"), P { force: true });
    }
}
