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
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::scan::{Limits, Refusal, Scanner};

/// Most bytes the decoder holds while waiting for one frame to complete. A peer that
/// sends more without finishing a frame is broken or hostile.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Deepest nesting of arrays and maps accepted (the message's own array counts), so a
/// crafted frame cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

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

    /// A successful response.
    pub fn ok<R: Serialize>(id: u32, result: &R) -> Result<Self, CodecError> {
        Ok(Message::Response {
            id,
            error: Value::Nil,
            result: to_value(result)?,
        })
    }

    /// An error response.
    pub fn err(id: u32, error: &crate::RpcError) -> Self {
        Message::Response {
            id,
            // An RpcError is plain strings; encoding it cannot fail.
            error: to_value(error).unwrap_or_else(|e| Value::from(e.to_string())),
            result: Value::Nil,
        }
    }

    /// The msgpack bytes of this message.
    pub fn encode(&self) -> Vec<u8> {
        let value = match self {
            Message::Request { id, method, params } => Value::Array(vec![
                Value::from(0),
                Value::from(*id),
                Value::from(method.as_str()),
                Value::Array(params.clone()),
            ]),
            Message::Response { id, error, result } => Value::Array(vec![
                Value::from(1),
                Value::from(*id),
                error.clone(),
                result.clone(),
            ]),
            Message::Notification { method, params } => Value::Array(vec![
                Value::from(2),
                Value::from(method.as_str()),
                Value::Array(params.clone()),
            ]),
        };
        let mut out = Vec::with_capacity(64);
        // Writing into a Vec cannot fail.
        let _ = rmpv::encode::write_value(&mut out, &value);
        out
    }

    fn from_value(value: Value) -> Result<Self, FrameError> {
        let Value::Array(items) = value else {
            return Err(FrameError::NotRpc("expected an array".into()));
        };
        let mut items = items.into_iter();
        let kind = items.next().and_then(|v| v.as_u64());
        let msg = match (kind, items.len()) {
            (Some(0), 3) => {
                let id = take_id(items.next())?;
                let method = take_str(items.next())?;
                let params = take_params(items.next())?;
                Message::Request { id, method, params }
            }
            (Some(1), 3) => {
                let id = take_id(items.next())?;
                let error = items.next().unwrap_or(Value::Nil);
                let result = items.next().unwrap_or(Value::Nil);
                Message::Response { id, error, result }
            }
            (Some(2), 2) => {
                let method = take_str(items.next())?;
                let params = take_params(items.next())?;
                Message::Notification { method, params }
            }
            _ => return Err(FrameError::NotRpc("unknown message type or arity".into())),
        };
        Ok(msg)
    }
}

fn take_id(v: Option<Value>) -> Result<u32, FrameError> {
    v.and_then(|v| v.as_u64())
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| FrameError::NotRpc("msgid is not a 32-bit unsigned integer".into()))
}

fn take_str(v: Option<Value>) -> Result<String, FrameError> {
    match v {
        Some(Value::String(s)) => s
            .into_str()
            .ok_or_else(|| FrameError::NotRpc("method name is not UTF-8".into())),
        Some(Value::Binary(b)) => {
            String::from_utf8(b).map_err(|_| FrameError::NotRpc("method name is not UTF-8".into()))
        }
        _ => Err(FrameError::NotRpc("method name is not a string".into())),
    }
}

fn take_params(v: Option<Value>) -> Result<Vec<Value>, FrameError> {
    match v {
        Some(Value::Array(params)) => Ok(params),
        // Some clients send a bare map; accept it as the one parameter.
        Some(map @ Value::Map(_)) => Ok(vec![map]),
        Some(Value::Nil) | None => Ok(Vec::new()),
        _ => Err(FrameError::NotRpc("params is not an array".into())),
    }
}

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
        let rest = &self.buf[self.pos..];
        let Some(end) = self.scanner.scan(rest, LIMITS)? else {
            return Ok(None);
        };
        let mut frame = &rest[..end];
        let value = rmpv::decode::read_value_with_max_depth(&mut frame, RMPV_DEPTH)
            .map_err(|e| FrameError::Malformed(e.to_string()))?;
        self.pos += end;
        if self.pos > 64 * 1024 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        Message::from_value(value).map(Some)
    }
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
