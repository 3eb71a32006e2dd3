//! rolekd-pickle: a small, strict reader of the Python pickles rolekd reads: the numpy
//! pickles of CIFAR's python version ([`load`]) and the `data.pkl` of `torch.save` files
//! ([`load_torch`]).
//!
//! Why hand-written: `serde-pickle` cannot rebuild numpy arrays (it has no `BUILD` and
//! only resolves a few builtin globals), and the image data of every CIFAR batch is a
//! numpy array. This reader runs the pickle machine for exactly the opcodes these files
//! use, and rebuilds exactly the objects they hold; anything else is an error naming the
//! opcode or global and its byte offset, never a guess. Nothing is ever called or imported.
//!
//! What it reads:
//! - torchvision's downloads (`cifar-10-python.tar.gz`, `cifar-100-python.tar.gz`): Python 2
//!   `cPickle` protocol 2, keys and names as byte strings (`SHORT_BINSTRING`), the pixels a
//!   numpy array rebuilt by `numpy.core.multiarray._reconstruct` + `BUILD`, its data one
//!   `BINSTRING`;
//! - the same objects re-pickled by Python 3 at protocol 2 (byte strings as
//!   `_codecs.encode(str, 'latin1')`), 3 and 4 (`BINBYTES`, `STACK_GLOBAL`, `MEMOIZE`,
//!   `FRAME`) and 5 (numpy's `_frombuffer` over an in-band `BYTEARRAY8`).
//!
//! Opcodes: `PROTO FRAME STOP MARK POP POP_MARK`, `NONE NEWTRUE NEWFALSE BININT BININT1
//! BININT2 LONG1 BINFLOAT`, `SHORT_BINSTRING BINSTRING SHORT_BINBYTES BINBYTES BINBYTES8
//! BYTEARRAY8 SHORT_BINUNICODE BINUNICODE BINUNICODE8`, `EMPTY_TUPLE TUPLE TUPLE1 TUPLE2
//! TUPLE3 EMPTY_LIST LIST APPEND APPENDS EMPTY_DICT DICT SETITEM SETITEMS`, `GLOBAL
//! STACK_GLOBAL REDUCE BUILD`, `BINPUT LONG_BINPUT MEMOIZE BINGET LONG_BINGET`.
//!
//! Globals: `numpy.core.multiarray._reconstruct` (also `numpy._core.…`), `numpy.ndarray`,
//! `numpy.dtype`, `numpy.core.numeric._frombuffer` (also `numpy._core.…`), `_codecs.encode`.
//!
//! [`load_torch`] reads `torch.save`'s pickles as well: storages named by persistent ids
//! (`BINPERSID`), tensors rebuilt by `torch._utils._rebuild_tensor_v2` (and
//! `_rebuild_parameter`) as [`TensorRef`]s over them, `collections.OrderedDict`; any other
//! object (an optimizer's class, a numpy scalar kept beside the weights) becomes
//! [`Value::Opaque`] instead of an error, so a training checkpoint reads for its tensors.
//! Still nothing is called or imported.
//!
//! [`load_torch_from`] reads one pickle of a stream from a given byte (the legacy, pre-1.6
//! `torch.save` format is several pickles followed by raw storages), with the legacy
//! persistent ids' sixth item (a storage view), and lists every storage it named.
//!
//! Limits: a list, dict or array fetched again from the memo (one object referenced twice)
//! is refused, since this reader copies values rather than sharing them; CIFAR's pickles
//! never do it. Only numeric dtypes (`b`, `i`, `u`, `f`) are rebuilt.

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// A rebuilt Python value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A Python 2 `str`, a Python 3 `bytes` or a `bytearray`.
    Bytes(Rc<Vec<u8>>),
    /// A unicode string.
    Str(Rc<str>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Entries in file order.
    Dict(Vec<(Value, Value)>),
    /// A numpy array (or one that `BUILD` has yet to fill).
    Array(NdArray),
    /// A numpy dtype.
    Dtype(Dtype),
    /// One of the callables this reader knows.
    Global(Global),
    /// A `torch.save` storage, named by a persistent id ([`load_torch`] only).
    Storage(Storage),
    /// A tensor view of a storage ([`load_torch`] only).
    Tensor(TensorRef),
    /// An object this reader does not rebuild, named by what built it ([`load_torch`] only).
    Opaque(Rc<str>),
}

/// The element types of `torch.save` storages (their legacy class names, as pickled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    Float,
    Double,
    Half,
    BFloat16,
    Long,
    Int,
    Short,
    Char,
    Byte,
    Bool,
}

impl StorageKind {
    const ALL: [(&'static str, StorageKind); 10] = [
        ("FloatStorage", StorageKind::Float),
        ("DoubleStorage", StorageKind::Double),
        ("HalfStorage", StorageKind::Half),
        ("BFloat16Storage", StorageKind::BFloat16),
        ("LongStorage", StorageKind::Long),
        ("IntStorage", StorageKind::Int),
        ("ShortStorage", StorageKind::Short),
        ("CharStorage", StorageKind::Char),
        ("ByteStorage", StorageKind::Byte),
        ("BoolStorage", StorageKind::Bool),
    ];

    fn from_class(name: &str) -> Option<StorageKind> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }
}

/// A storage: its element type and where its bytes are (`data/<key>` in an archive, the
/// record of `key` in a legacy file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    pub kind: StorageKind,
    /// The key of the whole storage (the root, for a legacy view).
    pub key: String,
    /// Elements of the whole storage, as the persistent id states.
    pub numel: Option<i64>,
    /// Where a legacy storage view starts in its root, in elements (0 when not a view):
    /// a tensor's offset counts from here.
    pub view_offset: i64,
}

/// A tensor as `torch.save` describes it: a strided view of a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    pub storage: Storage,
    pub offset: i64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

/// The callables a pickle may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')`: an empty array
    /// that a `BUILD` fills.
    Reconstruct,
    /// `numpy.ndarray`, only as `_reconstruct`'s first argument.
    Ndarray,
    /// `numpy.dtype(descr, align, copy)`.
    Dtype,
    /// `numpy.core.numeric._frombuffer(buffer, dtype, shape, order)` (protocol 5).
    FromBuffer,
    /// `_codecs.encode(text, 'latin1')`: Python 3's protocol-2 spelling of `bytes`.
    CodecsEncode,
    /// `collections.OrderedDict` (state_dicts).
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2` / `_rebuild_tensor`.
    RebuildTensor,
    /// `torch._utils._rebuild_parameter` / `_rebuild_parameter_with_state`.
    RebuildParameter,
    /// `torch.FloatStorage` and the other storage classes, in persistent ids.
    TorchStorage(StorageKind),
}

impl Global {
    fn resolve(module: &str, name: &str) -> Option<Global> {
        Some(match (module, name) {
            ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => {
                Global::Reconstruct
            }
            ("numpy", "ndarray") => Global::Ndarray,
            ("numpy", "dtype") => Global::Dtype,
            ("numpy.core.numeric" | "numpy._core.numeric", "_frombuffer") => Global::FromBuffer,
            ("_codecs", "encode") => Global::CodecsEncode,
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => Global::RebuildTensor,
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                Global::RebuildParameter
            }
            ("torch", class) => Global::TorchStorage(StorageKind::from_class(class)?),
            _ => return None,
        })
    }
}

/// A numpy dtype: kind (`b`, `i`, `u`, `f`), item size in bytes and byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dtype {
    pub kind: char,
    pub itemsize: usize,
    /// False for big-endian (`>`); `<`, `|` and `=` count as little-endian.
    pub little_endian: bool,
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.kind {
            'b' => "bool".to_string(),
            'u' => format!("uint{}", self.itemsize * 8),
            'i' => format!("int{}", self.itemsize * 8),
            'f' => format!("float{}", self.itemsize * 8),
            k => format!("{k}{}", self.itemsize),
        };
        if self.itemsize > 1 && !self.little_endian {
            write!(f, ">{name}")
        } else {
            write!(f, "{name}")
        }
    }
}

/// A numpy array: its raw bytes in the stated order.
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    pub shape: Vec<usize>,
    /// None until `BUILD` sets it.
    pub dtype: Option<Dtype>,
    /// Column-major (`order='F'`) rather than row-major.
    pub fortran_order: bool,
    pub data: Rc<Vec<u8>>,
}

impl NdArray {
    /// The array's integers, in storage order; None unless its dtype is an integer kind.
    pub fn integers(&self) -> Option<Vec<i64>> {
        let dt = self.dtype.as_ref()?;
        if !matches!(dt.kind, 'i' | 'u' | 'b') || !matches!(dt.itemsize, 1 | 2 | 4 | 8) {
            return None;
        }
        let n = dt.itemsize;
        Some(
            self.data
                .chunks_exact(n)
                .map(|c| {
                    let mut b = [0u8; 8];
                    if dt.little_endian {
                        b[..n].copy_from_slice(c);
                    } else {
                        for (k, &v) in c.iter().rev().enumerate() {
                            b[k] = v;
                        }
                    }
                    let u = u64::from_le_bytes(b);
                    if dt.kind == 'i' && n < 8 && (u >> (8 * n - 1)) & 1 == 1 {
                        (u | (!0u64 << (8 * n))) as i64
                    } else {
                        u as i64
                    }
                })
                .collect(),
        )
    }
}

impl Value {
    /// What kind of value this is, for messages.
    pub fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "a bool".into(),
            Value::Int(_) => "an int".into(),
            Value::Float(_) => "a float".into(),
            Value::Bytes(_) => "a byte string".into(),
            Value::Str(_) => "a string".into(),
            Value::Tuple(_) => "a tuple".into(),
            Value::List(_) => "a list".into(),
            Value::Dict(_) => "a dict".into(),
            Value::Array(a) => match &a.dtype {
                Some(dt) => format!("a {dt} array of shape {:?}", a.shape),
                None => "an unfilled array".into(),
            },
            Value::Dtype(_) => "a dtype".into(),
            Value::Global(g) => format!("the callable {g:?}"),
            Value::Storage(st) => format!("a {:?} storage", st.kind),
            Value::Tensor(t) => format!("a tensor of shape {:?}", t.size),
            Value::Opaque(name) => format!("a `{name}` object"),
        }
    }

    /// The text of a byte or unicode string (bytes as Latin-1, like
    /// `pickle.load(f, encoding='latin1')`).
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Bytes(b) => Some(b.iter().map(|&c| c as char).collect()),
            Value::Str(s) => Some(s.to_string()),
            _ => None,
        }
    }

    /// The entry of a dict under `key`, whether the key was pickled as bytes or unicode.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(entries) => entries
                .iter()
                .find(|(k, _)| k.text().as_deref() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A dict's keys as text, for messages.
    pub fn keys(&self) -> Vec<String> {
        match self {
            Value::Dict(entries) => entries
                .iter()
                .map(|(k, _)| k.text().unwrap_or_else(|| k.kind()))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A list (or tuple) of ints, or a one-dimensional integer array, as integers;
    /// otherwise a message saying what the value is.
    pub fn integers(&self) -> Result<Vec<i64>, String> {
        match self {
            Value::List(items) | Value::Tuple(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Int(n) => Ok(*n),
                    other => Err(format!("item {i} is {}, expected an int", other.kind())),
                })
                .collect(),
            Value::Array(a) if a.shape.len() == 1 => a
                .integers()
                .ok_or_else(|| format!("{}, expected integers", self.kind())),
            other => Err(format!("{}, expected a list of ints", other.kind())),
        }
    }
}

/// Why a pickle could not be read: what, and at which byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pickle byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for PickleError {}

/// A memo entry. Mutable containers are remembered only by kind: fetching one again
/// would need shared references, which this reader does not keep.
#[derive(Debug)]
enum Memo {
    Value(Value),
    Shared(&'static str),
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run, for errors.
    at: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Memo>,
    /// `torch.save`'s objects understood, anything else opaque.
    torch: bool,
    /// Every storage a persistent id named, first mention of each key.
    storages: Vec<Storage>,
}

/// Reads one pickle (the first, if the bytes hold several) and returns its value.
pub fn load(bytes: &[u8]) -> Result<Value, PickleError> {
    Ok(run(bytes, 0, false)?.value)
}

/// Reads the `data.pkl` of a `torch.save` archive: tensors come back as [`TensorRef`]s
/// (the caller reads their storages from the archive), unknown objects as
/// [`Value::Opaque`].
pub fn load_torch(bytes: &[u8]) -> Result<Value, PickleError> {
    Ok(run(bytes, 0, true)?.value)
}

/// One `torch.save` pickle of a stream, and where it ended.
#[derive(Debug)]
pub struct TorchPickle {
    pub value: Value,
    /// The byte after its STOP: where the next pickle or record starts.
    pub end: usize,
    /// Every storage its persistent ids named (first mention of each key), also those of
    /// tensors inside objects left opaque: a legacy file's records need their element
    /// sizes to be read past.
    pub storages: Vec<Storage>,
}

/// Reads the pickle that starts at byte `start` of `bytes`, as [`load_torch`] does; error
/// offsets count from the start of `bytes`. The legacy (pre-1.6) `torch.save` format is a
/// sequence of pickles followed by raw storages.
pub fn load_torch_from(bytes: &[u8], start: usize) -> Result<TorchPickle, PickleError> {
    run(bytes, start, true)
}

fn run(bytes: &[u8], start: usize, torch: bool) -> Result<TorchPickle, PickleError> {
    let mut m = Machine {
        bytes,
        pos: start.min(bytes.len()),
        at: start,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        torch,
        storages: Vec::new(),
    };
    let value = m.run()?;
    Ok(TorchPickle {
        value,
        end: m.pos,
        storages: m.storages,
    })
}

impl<'a> Machine<'a> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError {
            offset: self.at,
            message: message.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let left = self.bytes.len() - self.pos;
        if n > left {
            return self.err(format!(
                "truncated: the opcode needs {n} more bytes, the file has {left}"
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    /// A length field of `width` bytes (1, 4 or 8), little-endian.
    fn len(&mut self, width: usize) -> Result<usize, PickleError> {
        let n = match width {
            1 => self.u8()? as u64,
            4 => u32::from_le_bytes(self.fixed()?) as u64,
            _ => u64::from_le_bytes(self.fixed()?),
        };
        usize::try_from(n).or_else(|_| self.err(format!("length {n} does not fit in memory")))
    }

    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.bytes[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return self.err("truncated: a GLOBAL name without its newline");
        };
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).or_else(|_| self.err("a GLOBAL name that is not UTF-8"))
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.err("stack underflow"),
        }
    }

    fn top(&mut self) -> Result<&mut Value, PickleError> {
        if self.stack.is_empty() {
            return self.err("stack underflow");
        }
        Ok(self.stack.last_mut().expect("non-empty"))
    }

    /// The values pushed since the last MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let Some(mark) = self.marks.pop() else {
            return self.err("no MARK to pop to");
        };
        if mark > self.stack.len() {
            return self.err("a MARK above the stack");
        }
        Ok(self.stack.split_off(mark))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Value>, PickleError> {
        if self.stack.len() < n {
            return self.err("stack underflow");
        }
        let at = self.stack.len() - n;
        Ok(self.stack.split_off(at))
    }

    fn string(&mut self, raw: &[u8]) -> Result<Value, PickleError> {
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(Value::Str(Rc::from(s))),
            Err(_) => self.err("a unicode string that is not UTF-8"),
        }
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        match self.top()? {
            Value::List(list) => {
                list.extend(items);
                Ok(())
            }
            other => {
                let kind = other.kind();
                self.err(format!("APPEND(S) onto {kind}, expected a list"))
            }
        }
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        if !items.chunks_exact(2).remainder().is_empty() {
            return self.err("SETITEMS with an odd number of values");
        }
        match self.top()? {
            Value::Dict(entries) => {
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    entries.push((k, v));
                }
                Ok(())
            }
            other => {
                let kind = other.kind();
                self.err(format!("SETITEM(S) onto {kind}, expected a dict"))
            }
        }
    }

    fn put(&mut self, index: u64) -> Result<(), PickleError> {
        let entry = match self.top()? {
            Value::List(_) => Memo::Shared("list"),
            Value::Dict(_) => Memo::Shared("dict"),
            Value::Array(_) => Memo::Shared("array"),
            v => Memo::Value(v.clone()),
        };
        self.memo.insert(index, entry);
        Ok(())
    }

    fn get(&mut self, index: u64) -> Result<(), PickleError> {
        match self.memo.get(&index) {
            Some(Memo::Value(v)) => {
                let v = v.clone();
                self.stack.push(v);
                Ok(())
            }
            Some(Memo::Shared(kind)) => self.err(format!(
                "memo {index} is a {kind} referenced a second time; shared references are not supported"
            )),
            None => self.err(format!("memo {index} was never stored")),
        }
    }

    /// Runs the opcodes up to STOP. Each group of opcodes has its own function, which
    /// says whether `op` was one of its own.
    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            self.at = self.pos;
            let op = match self.bytes.get(self.pos) {
                Some(&op) => op,
                None => return self.err("truncated: no STOP opcode"),
            };
            self.pos += 1;
            if op == b'.' {
                // STOP
                let v = self.pop()?;
                return Ok(v);
            }
            let known = self.framing_op(op)?
                || self.scalar_op(op)?
                || self.string_op(op)?
                || self.container_op(op)?
                || self.object_op(op)?
                || self.memo_op(op)?
                || self.torch_op(op)?;
            if !known {
                return self.err(format!(
                    "unsupported opcode 0x{op:02x} ({:?}); this reader knows the opcodes of CIFAR's python pickles and torch.save's only",
                    op as char
                ));
            }
        }
    }

    /// PROTO, FRAME, MARK, POP, POP_MARK.
    fn framing_op(&mut self, op: u8) -> Result<bool, PickleError> {
        match op {
            0x80 => {
                // PROTO
                let p = self.u8()?;
                if p > 5 {
                    return self.err(format!("pickle protocol {p} is newer than 5"));
                }
            }
            0x95 => {
                // FRAME: a length hint only.
                self.take(8)?;
            }
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// None, booleans, integers and floats.
    fn scalar_op(&mut self, op: u8) -> Result<bool, PickleError> {
        match op {
            b'N' => self.stack.push(Value::None),
            0x88 => self.stack.push(Value::Bool(true)),
            0x89 => self.stack.push(Value::Bool(false)),
            b'J' => {
                let v = i32::from_le_bytes(self.fixed()?);
                self.stack.push(Value::Int(v as i64));
            }
            b'K' => {
                let v = self.u8()?;
                self.stack.push(Value::Int(v as i64));
            }
            b'M' => {
                let v = u16::from_le_bytes(self.fixed()?);
                self.stack.push(Value::Int(v as i64));
            }
            0x8a => {
                // LONG1: n bytes of two's complement, little-endian.
                let n = self.u8()? as usize;
                if n > 8 {
                    return self.err(format!("a {n}-byte integer does not fit in 64 bits"));
                }
                let raw = self.take(n)?;
                let mut b = if raw.last().is_some_and(|&x| x & 0x80 != 0) {
                    [0xffu8; 8]
                } else {
                    [0u8; 8]
                };
                b[..n].copy_from_slice(raw);
                self.stack.push(Value::Int(i64::from_le_bytes(b)));
            }
            b'G' => {
                // BINFLOAT: big-endian.
                let b: [u8; 8] = self.fixed()?;
                self.stack.push(Value::Float(f64::from_be_bytes(b)));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Byte strings and unicode strings.
    fn string_op(&mut self, op: u8) -> Result<bool, PickleError> {
        match op {
            b'U' | b'C' | b'T' | b'B' | 0x8e | 0x96 => {
                // SHORT_BINSTRING, SHORT_BINBYTES, BINSTRING, BINBYTES, BINBYTES8,
                // BYTEARRAY8.
                let width = match op {
                    b'U' | b'C' => 1,
                    b'T' | b'B' => 4,
                    _ => 8,
                };
                let n = if op == b'T' {
                    let n = i32::from_le_bytes(self.fixed()?);
                    if n < 0 {
                        return self.err(format!("BINSTRING of negative length {n}"));
                    }
                    n as usize
                } else {
                    self.len(width)?
                };
                let raw = self.take(n)?;
                self.stack.push(Value::Bytes(Rc::new(raw.to_vec())));
            }
            0x8c | b'X' | 0x8d => {
                // SHORT_BINUNICODE, BINUNICODE, BINUNICODE8.
                let width = match op {
                    0x8c => 1,
                    b'X' => 4,
                    _ => 8,
                };
                let n = self.len(width)?;
                let raw = self.take(n)?;
                let v = self.string(raw)?;
                self.stack.push(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Tuples, lists and dicts, and what is added to them.
    fn container_op(&mut self, op: u8) -> Result<bool, PickleError> {
        match op {
            b')' => self.stack.push(Value::Tuple(Vec::new())),
            b't' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let items = self.pop_n((op - 0x84) as usize)?;
                self.stack.push(Value::Tuple(items));
            }
            b']' => self.stack.push(Value::List(Vec::new())),
            b'l' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::List(items));
            }
            b'a' => {
                let v = self.pop()?;
                self.append(vec![v])?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.append(items)?;
            }
            b'}' => self.stack.push(Value::Dict(Vec::new())),
            b'd' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::Dict(Vec::new()));
                self.set_items(items)?;
            }
            b's' => {
                let items = self.pop_n(2)?;
                self.set_items(items)?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Globals, and objects rebuilt from them (REDUCE, BUILD).
    fn object_op(&mut self, op: u8) -> Result<bool, PickleError> {
        match op {
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                let g = self.global(module, name)?;
                self.stack.push(g);
            }
            0x93 => {
                // STACK_GLOBAL
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                    return self.err("STACK_GLOBAL without two strings");
                };
                let g = self.global(module, name)?;
                self.stack.push(g);
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let v = self.reduce(callable, args)?;
                self.stack.push(v);
            }
            b'b' => {
                let state = self.pop()?;
                let obj = self.pop()?;
                let v = self.build(obj, state)?;
                self.stack.push(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The memo: BINPUT, LONG_BINPUT, MEMOIZE, BINGET, LONG_BINGET.
    fn memo_op(&mut self, op: u8) -> Result<bool, PickleError> {
        match op {
            b'q' => {
                let i = self.u8()? as u64;
                self.put(i)?;
            }
            b'r' => {
                let i = u32::from_le_bytes(self.fixed()?) as u64;
                self.put(i)?;
            }
            0x94 => {
                let i = self.memo.len() as u64;
                self.put(i)?;
            }
            b'h' => {
                let i = self.u8()? as u64;
                self.get(i)?;
            }
            b'j' => {
                let i = u32::from_le_bytes(self.fixed()?) as u64;
                self.get(i)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// What only `torch.save` files use: BINPERSID and NEWOBJ.
    fn torch_op(&mut self, op: u8) -> Result<bool, PickleError> {
        match op {
            b'Q' if self.torch => {
                // BINPERSID
                let pid = self.pop()?;
                let v = self.persistent(pid)?;
                self.stack.push(v);
            }
            0x81 if self.torch => {
                // NEWOBJ: cls.__new__(cls, *args), not rebuilt.
                self.pop()?;
                let cls = self.pop()?;
                self.stack.push(opaque(&cls));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn global(&self, module: &str, name: &str) -> Result<Value, PickleError> {
        match Global::resolve(module, name) {
            Some(g) => Ok(Value::Global(g)),
            None if self.torch => Ok(Value::Opaque(Rc::from(format!("{module}.{name}")))),
            None => self.err(format!(
                "unsupported global `{module}.{name}`; this reader only rebuilds numpy arrays and byte strings"
            )),
        }
    }

    fn reduce(&self, callable: Value, args: Value) -> Result<Value, PickleError> {
        if self.torch {
            if let Some(v) = self.torch_reduce(&callable, &args)? {
                return Ok(v);
            }
        }
        let Value::Global(g) = callable else {
            return self.err(format!(
                "REDUCE on {}, expected a callable",
                callable.kind()
            ));
        };
        let Value::Tuple(args) = args else {
            return self.err(format!("REDUCE with {} as arguments", args.kind()));
        };
        match (g, args.as_slice()) {
            (Global::CodecsEncode, [Value::Str(text), Value::Str(enc)])
                if matches!(&**enc, "latin1" | "latin-1") =>
            {
                let mut out = Vec::with_capacity(text.len());
                for c in text.chars() {
                    match u8::try_from(c as u32) {
                        Ok(b) => out.push(b),
                        Err(_) => {
                            return self
                                .err(format!("_codecs.encode: {c:?} is not a Latin-1 character"))
                        }
                    }
                }
                Ok(Value::Bytes(Rc::new(out)))
            }
            (Global::Reconstruct, [Value::Global(Global::Ndarray), Value::Tuple(_), _]) => {
                Ok(Value::Array(NdArray {
                    shape: Vec::new(),
                    dtype: None,
                    fortran_order: false,
                    data: Rc::new(Vec::new()),
                }))
            }
            (Global::Dtype, [descr, ..]) => {
                let Some(descr) = descr.text() else {
                    return self.err(format!("numpy.dtype of {}", descr.kind()));
                };
                self.dtype(&descr).map(Value::Dtype)
            }
            (
                Global::FromBuffer,
                [Value::Bytes(buf), Value::Dtype(dt), Value::Tuple(shape), order],
            ) => {
                let shape = self.shape(shape)?;
                let fortran_order = match order.text().as_deref() {
                    Some("C") => false,
                    Some("F") => true,
                    _ => return self.err(format!("_frombuffer order {}", order.kind())),
                };
                self.array(shape, dt.clone(), fortran_order, buf.clone())
            }
            (g, args) => self.err(format!(
                "unsupported call of {g:?} with {} argument(s)",
                args.len()
            )),
        }
    }

    /// A dtype from numpy's descriptor string (`u1`, `i8`, `f4`, ...); the byte order
    /// comes with BUILD.
    fn dtype(&self, descr: &str) -> Result<Dtype, PickleError> {
        let mut chars = descr.chars();
        let kind = chars.next().unwrap_or(' ');
        let itemsize: usize = chars.as_str().parse().unwrap_or(0);
        if !matches!(kind, 'b' | 'i' | 'u' | 'f') || !matches!(itemsize, 1 | 2 | 4 | 8) {
            return self.err(format!(
                "numpy dtype `{descr}` is not supported (numeric dtypes only)"
            ));
        }
        Ok(Dtype {
            kind,
            itemsize,
            little_endian: true,
        })
    }

    fn shape(&self, dims: &[Value]) -> Result<Vec<usize>, PickleError> {
        dims.iter()
            .map(|d| match d {
                Value::Int(n) if *n >= 0 => Ok(*n as usize),
                other => self.err(format!("array dimension {}", other.kind())),
            })
            .collect()
    }

    fn array(
        &self,
        shape: Vec<usize>,
        dtype: Dtype,
        fortran_order: bool,
        data: Rc<Vec<u8>>,
    ) -> Result<Value, PickleError> {
        let want = shape
            .iter()
            .try_fold(dtype.itemsize, |acc, &d| acc.checked_mul(d));
        if want != Some(data.len()) {
            return self.err(format!(
                "a {dtype} array of shape {shape:?} needs {} bytes of data, found {}",
                want.map_or("too many".to_string(), |n| n.to_string()),
                data.len()
            ));
        }
        Ok(Value::Array(NdArray {
            shape,
            dtype: Some(dtype),
            fortran_order,
            data,
        }))
    }

    fn build(&self, obj: Value, state: Value) -> Result<Value, PickleError> {
        // torch.save: an OrderedDict's `_metadata`, an opaque object's fields: not needed.
        if self.torch && matches!(obj, Value::Dict(_) | Value::Opaque(_) | Value::Tensor(_)) {
            return Ok(obj);
        }
        let Value::Tuple(state) = state else {
            return self.err(format!("BUILD with {} as state", state.kind()));
        };
        match obj {
            // numpy.dtype.__setstate__: (version, byteorder, ...).
            Value::Dtype(mut dt) => {
                let order = state.get(1).and_then(Value::text);
                dt.little_endian = match order.as_deref() {
                    Some("<" | "|" | "=") => true,
                    Some(">") => false,
                    _ => return self.err("numpy dtype state without a byte order"),
                };
                Ok(Value::Dtype(dt))
            }
            // ndarray.__setstate__: (version, shape, dtype, is_fortran, raw data).
            Value::Array(a) if a.dtype.is_none() => {
                let [Value::Int(_), Value::Tuple(shape), Value::Dtype(dt), fortran, raw] =
                    state.as_slice()
                else {
                    return self
                        .err("numpy array state is not (version, shape, dtype, is_fortran, data)");
                };
                let fortran_order = match fortran {
                    Value::Bool(b) => *b,
                    Value::Int(i) => *i != 0,
                    other => return self.err(format!("numpy is_fortran flag {}", other.kind())),
                };
                let Value::Bytes(data) = raw else {
                    return self.err(format!(
                        "numpy array data is {}, expected raw bytes",
                        raw.kind()
                    ));
                };
                let shape = self.shape(shape)?;
                self.array(shape, dt.clone(), fortran_order, data.clone())
            }
            other => self.err(format!("BUILD on {}", other.kind())),
        }
    }
}

/// The object an opaque value stands for: what built it.
fn opaque(callable: &Value) -> Value {
    match callable {
        Value::Opaque(name) => Value::Opaque(name.clone()),
        other => Value::Opaque(Rc::from(other.kind())),
    }
}

impl Machine<'_> {
    /// `('storage', torch.FloatStorage, key, location, numel)`, and in legacy files a sixth
    /// item, None or a view `(view_key, offset, size)`; a legacy `('module', class, ...)`
    /// (a whole pickled model) becomes an opaque value.
    fn persistent(&mut self, pid: Value) -> Result<Value, PickleError> {
        let Value::Tuple(t) = &pid else {
            return self.err(format!("a persistent id that is {}", pid.kind()));
        };
        let tag = t.first().and_then(Value::text);
        if tag.as_deref() == Some("module") {
            return Ok(Value::Opaque(Rc::from("torch.nn.Module")));
        }
        let [_, Value::Global(Global::TorchStorage(kind)), key, _, rest @ ..] = t.as_slice() else {
            return self.err("a persistent id that is not a torch storage");
        };
        if tag.as_deref() != Some("storage") || rest.len() > 2 {
            return self.err("a persistent id that is not a torch storage");
        }
        let Some(key) = key.text() else {
            return self.err(format!("storage key {}", key.kind()));
        };
        let numel = match rest.first() {
            None => None,
            Some(Value::Int(n)) if *n >= 0 => Some(*n),
            Some(other) => return self.err(format!("storage size {}", other.kind())),
        };
        let view_offset = match rest.get(1) {
            None | Some(Value::None) => 0,
            Some(Value::Tuple(v)) => match v.as_slice() {
                [_, Value::Int(offset), Value::Int(_)] if *offset >= 0 => *offset,
                _ => return self.err("a storage view that is not (key, offset, size)"),
            },
            Some(other) => return self.err(format!("storage view {}", other.kind())),
        };
        let storage = Storage {
            kind: *kind,
            key,
            numel,
            view_offset,
        };
        if !self.storages.iter().any(|s| s.key == storage.key) {
            self.storages.push(Storage {
                view_offset: 0,
                ..storage.clone()
            });
        }
        Ok(Value::Storage(storage))
    }

    /// The torch-mode calls: None when the call is for the numpy rules.
    fn torch_reduce(&self, callable: &Value, args: &Value) -> Result<Option<Value>, PickleError> {
        let g = match callable {
            Value::Global(g) => *g,
            Value::Opaque(_) => return Ok(Some(opaque(callable))),
            _ => return Ok(None),
        };
        let Value::Tuple(args) = args else {
            return Ok(None);
        };
        Ok(Some(match (g, args.as_slice()) {
            (Global::OrderedDict, _) => Value::Dict(Vec::new()),
            (Global::RebuildParameter, [t, ..]) => t.clone(),
            (
                Global::RebuildTensor,
                [Value::Storage(storage), Value::Int(offset), Value::Tuple(size), Value::Tuple(stride), ..],
            ) => {
                let ints = |v: &[Value]| -> Option<Vec<i64>> {
                    v.iter()
                        .map(|x| match x {
                            Value::Int(i) => Some(*i),
                            _ => None,
                        })
                        .collect()
                };
                let (Some(size), Some(stride)) = (ints(size), ints(stride)) else {
                    return self.err("a tensor whose size or stride is not a tuple of ints");
                };
                if size.len() != stride.len() {
                    return self.err("a tensor whose size and stride differ in length");
                }
                Value::Tensor(TensorRef {
                    storage: storage.clone(),
                    offset: *offset,
                    size,
                    stride,
                })
            }
            (Global::RebuildTensor | Global::RebuildParameter, a) => {
                return self.err(format!(
                    "unexpected arguments to {g:?} ({} values)",
                    a.len()
                ))
            }
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(bytes: &[u8]) -> String {
        load(bytes).unwrap_err().to_string()
    }

    #[test]
    fn scalars_strings_and_containers() {
        // (LONG1 -2, BINFLOAT 1.5, SHORT_BINUNICODE 'é', [None, True]), protocol 2.
        let mut p = vec![0x80, 2, b'(', 0x8a, 1, 0xfe, b'G'];
        p.extend(1.5f64.to_be_bytes());
        p.extend([
            0x8c, 2, 0xc3, 0xa9, b']', b'(', b'N', 0x88, b'e', b't', b'.',
        ]);
        let v = load(&p).unwrap();
        assert_eq!(
            v,
            Value::Tuple(vec![
                Value::Int(-2),
                Value::Float(1.5),
                Value::Str(Rc::from("é")),
                Value::List(vec![Value::None, Value::Bool(true)]),
            ])
        );
    }

    #[test]
    fn big_endian_int16_array() {
        // _reconstruct(ndarray, (0,), b'b') BUILT with (1, (3,), dtype('i2') BUILT with
        // (3, '>'), False, data), protocol 4 spellings.
        let mut p = vec![0x80, 4];
        p.extend(b"cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n");
        p.extend([b'K', 0, 0x85, b'C', 1, b'b', 0x87, b'R']);
        p.extend([b'(', b'K', 1, b'K', 3, 0x85]);
        p.extend(b"cnumpy\ndtype\n");
        p.extend([0x8c, 2, b'i', b'2', 0x89, 0x88, 0x87, b'R']);
        p.extend([b'(', b'K', 3, 0x8c, 1, b'>', b't', b'b']);
        p.extend([
            0x89, b'C', 6, 0x00, 0x05, 0xff, 0xfe, 0x01, 0x00, b't', b'b', b'.',
        ]);
        let Value::Array(a) = load(&p).unwrap() else {
            panic!("not an array")
        };
        assert_eq!(a.shape, [3]);
        assert_eq!(a.dtype.as_ref().unwrap().to_string(), ">int16");
        assert_eq!(a.integers().unwrap(), [5, -2, 256]);
    }

    #[test]
    fn refuses_what_it_cannot_rebuild_faithfully() {
        assert!(err(&[0x80, 6]).contains("pickle byte 0: pickle protocol 6 is newer than 5"));
        // A list stored in the memo and fetched again.
        let shared = [0x80, 2, b']', b'q', 1, b'h', 1, 0x86, b'.'];
        assert!(err(&shared).contains(
            "pickle byte 5: memo 1 is a list referenced a second time; shared references are not supported"
        ));
        assert!(err(&[0x80, 2, b'h', 9, b'.']).contains("memo 9 was never stored"));
        // PERSID (protocol 0) is not among the opcodes read.
        assert!(err(&[0x80, 2, b'P']).contains("pickle byte 2: unsupported opcode 0x50 ('P')"));
        assert!(err(&[0x80, 2, b'N']).contains("truncated: no STOP opcode"));
        assert!(err(&[0x80, 2, b'e']).contains("no MARK to pop to"));
        assert!(err(&[0x80, 2, b'(', b'N', b'u', b'.'])
            .contains("pickle byte 4: SETITEMS with an odd number of values"));
        // A numpy array whose data is shorter than its shape says.
        let mut p = vec![0x80, 2];
        p.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n");
        p.extend([b'K', 0, 0x85, b'U', 1, b'b', 0x87, b'R']);
        p.extend([b'(', b'K', 1, b'K', 4, 0x85]);
        p.extend(b"cnumpy\ndtype\n");
        p.extend([b'U', 2, b'u', b'1', b'K', 0, b'K', 1, 0x87, b'R']);
        p.extend([b'(', b'K', 3, b'U', 1, b'|', b't', b'b']);
        p.extend([0x89, b'U', 3, 1, 2, 3, b't', b'b', b'.']);
        assert!(err(&p).contains("a uint8 array of shape [4] needs 4 bytes of data, found 3"));
    }

    /// `torch.save({'model': OrderedDict(w=torch.arange(6.).view(2, 3).t(),
    /// n=torch.tensor(5)), 'epoch': 7})`'s `data.pkl`, from PyTorch 2.11.
    const TORCH_SAVE: [u8; 269] = [
        128, 2, 125, 113, 0, 40, 88, 5, 0, 0, 0, 109, 111, 100, 101, 108, 113, 1, 99, 99, 111, 108,
        108, 101, 99, 116, 105, 111, 110, 115, 10, 79, 114, 100, 101, 114, 101, 100, 68, 105, 99,
        116, 10, 113, 2, 41, 82, 113, 3, 40, 88, 1, 0, 0, 0, 119, 113, 4, 99, 116, 111, 114, 99,
        104, 46, 95, 117, 116, 105, 108, 115, 10, 95, 114, 101, 98, 117, 105, 108, 100, 95, 116,
        101, 110, 115, 111, 114, 95, 118, 50, 10, 113, 5, 40, 40, 88, 7, 0, 0, 0, 115, 116, 111,
        114, 97, 103, 101, 113, 6, 99, 116, 111, 114, 99, 104, 10, 70, 108, 111, 97, 116, 83, 116,
        111, 114, 97, 103, 101, 10, 113, 7, 88, 1, 0, 0, 0, 48, 113, 8, 88, 3, 0, 0, 0, 99, 112,
        117, 113, 9, 75, 6, 116, 113, 10, 81, 75, 0, 75, 3, 75, 2, 134, 113, 11, 75, 1, 75, 3, 134,
        113, 12, 137, 104, 2, 41, 82, 113, 13, 116, 113, 14, 82, 113, 15, 88, 1, 0, 0, 0, 110, 113,
        16, 104, 5, 40, 40, 104, 6, 99, 116, 111, 114, 99, 104, 10, 76, 111, 110, 103, 83, 116,
        111, 114, 97, 103, 101, 10, 113, 17, 88, 1, 0, 0, 0, 49, 113, 18, 104, 9, 75, 1, 116, 113,
        19, 81, 75, 0, 41, 41, 137, 104, 2, 41, 82, 113, 20, 116, 113, 21, 82, 113, 22, 117, 88, 5,
        0, 0, 0, 101, 112, 111, 99, 104, 113, 23, 75, 7, 117, 46,
    ];

    #[test]
    fn torch_save_tensors_come_back_as_storage_views() {
        let v = load_torch(&TORCH_SAVE).unwrap();
        assert_eq!(v.get("epoch"), Some(&Value::Int(7)));
        let model = v.get("model").unwrap();
        assert_eq!(model.keys(), ["w", "n"]);
        // The transposed view: shape (3, 2), strides (1, 3) over storage "0".
        assert_eq!(
            model.get("w"),
            Some(&Value::Tensor(TensorRef {
                storage: Storage {
                    kind: StorageKind::Float,
                    key: "0".into(),
                    numel: Some(6),
                    view_offset: 0,
                },
                offset: 0,
                size: vec![3, 2],
                stride: vec![1, 3],
            }))
        );
        let Some(Value::Tensor(n)) = model.get("n") else {
            panic!("{model:?}")
        };
        assert_eq!((n.storage.kind, n.size.len()), (StorageKind::Long, 0));
        // The strict reader (CIFAR's) refuses what only torch.save files hold.
        assert!(load(&TORCH_SAVE)
            .unwrap_err()
            .to_string()
            .contains("unsupported call of OrderedDict"));
    }

    #[test]
    fn pickle_streams_read_one_at_a_time_with_legacy_views() {
        // Two pickles: 1001, then the legacy form of a tensor over a storage view
        // `_rebuild_tensor_v2(('storage', FloatStorage, '7', 'cpu', 6, ('8', 2, 3)), 1,
        // (2,), (1,), False)`, then `('module', None, None, None)` as a persistent id.
        let mut p = vec![0x80, 2, b'M', 0xe9, 0x03, b'.', 0x80, 2];
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        p.extend([0x8c, 7]);
        p.extend(b"storage");
        p.extend(b"ctorch\nFloatStorage\n");
        p.extend([0x8c, 1, b'7', 0x8c, 3, b'c', b'p', b'u', b'K', 6]);
        p.extend([0x8c, 1, b'8', b'K', 2, b'K', 3, 0x87, b't', b'Q']);
        p.extend([
            b'K', 1, b'K', 2, 0x85, b'K', 1, 0x85, 0x89, b't', b'R', b'.',
        ]);
        let second = p.len();
        p.extend([0x80, 2, b'(', 0x8c, 6]);
        p.extend(b"module");
        p.extend([b'N', b'N', b'N', b't', b'Q', b'.']);
        let first = load_torch_from(&p, 0).unwrap();
        assert_eq!((first.value, first.end), (Value::Int(1001), 6));
        let t = load_torch_from(&p, 6).unwrap();
        assert_eq!(t.end, second);
        let Value::Tensor(r) = t.value else {
            panic!("{:?}", t.value)
        };
        assert_eq!((r.offset, r.storage.view_offset), (1, 2));
        // The storages list names the root, not the view.
        assert_eq!(
            t.storages,
            [Storage {
                kind: StorageKind::Float,
                key: "7".into(),
                numel: Some(6),
                view_offset: 0
            }]
        );
        let m = load_torch_from(&p, second).unwrap();
        assert_eq!(m.value, Value::Opaque(Rc::from("torch.nn.Module")));
        // Offsets count from the start of the stream.
        let e = load_torch_from(&p[..second - 1], 6).unwrap_err();
        assert_eq!(e.offset, second - 1);
    }

    #[test]
    fn torch_mode_keeps_unknown_objects_opaque_and_refuses_truncation() {
        // {'opt': optim.SGD-like object via NEWOBJ, 'x': numpy-free REDUCE of a class}.
        let mut p = vec![0x80, 2, b'}', b'(', 0x8c, 3, b'o', b'p', b't'];
        p.extend(b"ctorch.optim.sgd\nSGD\n");
        p.extend([b')', 0x81, 0x8c, 1, b'x']);
        p.extend(b"cnumpy.core.multiarray\nscalar\n");
        p.extend([b')', b'R', b'}', b'b', b'u', b'.']);
        let v = load_torch(&p).unwrap();
        assert_eq!(
            v.get("opt"),
            Some(&Value::Opaque(Rc::from("torch.optim.sgd.SGD")))
        );
        assert_eq!(
            v.get("x"),
            Some(&Value::Opaque(Rc::from("numpy.core.multiarray.scalar")))
        );
        for cut in [1, 20, 100, 268] {
            let e = load_torch(&TORCH_SAVE[..cut]).unwrap_err().to_string();
            assert!(e.starts_with("pickle byte"), "{cut}: {e}");
        }
    }
}
