//! The pickle inside the files `torch.save` writes (see [`crate::torch_file`]), run
//! without Python.
//!
//! Only what state_dicts and training checkpoints use is understood: dicts (plain and
//! `OrderedDict`), lists, tuples, numbers, strings and tensors (`_rebuild_tensor_v2`,
//! `_rebuild_parameter`). Any other object (an optimizer's class, a numpy scalar) is kept
//! as an opaque value, so a checkpoint that also holds such things still reads; a pickled
//! `nn.Module` yields no state_dict and the caller says so.

use rolekd_core::{Error, Result};
use std::collections::HashMap;
use tch::Kind;

/// A value of the pickle.
#[derive(Clone, Debug)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// `module.name`, as named by a GLOBAL opcode.
    Global(String),
    /// A storage: its element kind and its key under `data/`.
    Storage(Kind, String),
    /// A tensor view of a storage.
    Tensor(TensorRef),
    /// Anything else (the name of what built it).
    Object(String),
    Mark,
}

/// Where a tensor's elements live.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub kind: Kind,
    pub storage: String,
    pub offset: i64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

fn storage_kind(class: &str) -> Option<Kind> {
    Some(match class.strip_prefix("torch.")? {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

struct Machine<'a> {
    data: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
    origin: &'a str,
}

impl<'a> Machine<'a> {
    fn err(&self, what: impl std::fmt::Display) -> Error {
        Error::Data(format!("{}: byte {}: {what}", self.origin, self.at))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.at + n > self.data.len() {
            return Err(self.err("the pickle ends early (truncated file?)"));
        }
        let s = &self.data[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.at..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err("unterminated GLOBAL name"))?;
        self.at += end + 1;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    fn text(&mut self, n: usize) -> Result<Value> {
        let b = self.take(n)?;
        Ok(Value::Str(String::from_utf8_lossy(b).into_owned()))
    }

    fn pop(&mut self) -> Result<Value> {
        self.stack
            .pop()
            .ok_or_else(|| self.err("pickle stack underflow"))
    }

    fn top(&mut self) -> Result<&mut Value> {
        let at = self.at;
        let origin = self.origin;
        self.stack
            .last_mut()
            .ok_or_else(|| Error::Data(format!("{origin}: byte {at}: pickle stack underflow")))
    }

    /// Pops everything above the last MARK (and the mark).
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or_else(|| self.err("no MARK on the pickle stack"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn memo_put(&mut self, key: u32) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<()> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| self.err(format!("memo key {key} was never stored")))?;
        self.stack.push(v);
        Ok(())
    }

    fn run(mut self) -> Result<Value> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.take(8)?; // FRAME
                }
                b'.' => return self.pop(),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b'(' => self.stack.push(Value::Mark),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()? as i64;
                    self.stack.push(Value::Int(v));
                }
                b'M' => {
                    let b = self.take(2)?;
                    self.stack
                        .push(Value::Int(u16::from_le_bytes([b[0], b[1]]) as i64));
                }
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.stack.push(Value::Int(v));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    let b = self.take(n)?;
                    if n > 8 {
                        self.stack.push(Value::Object("int (over 64 bits)".into()));
                    } else {
                        let mut v: i64 = 0;
                        for (i, &x) in b.iter().enumerate() {
                            v |= (x as i64) << (8 * i);
                        }
                        if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                            v -= 1i64 << (8 * n);
                        }
                        self.stack.push(Value::Int(v));
                    }
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes(b.try_into().expect("8 bytes"));
                    self.stack.push(Value::Float(v));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let b = self.take(8)?;
                    let n = u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                b'U' | b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.stack.push(if op == b'U' {
                        Value::Str(String::from_utf8_lossy(&b).into_owned())
                    } else {
                        Value::Bytes(b)
                    });
                }
                b'T' | b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.stack.push(if op == b'T' {
                        Value::Str(String::from_utf8_lossy(&b).into_owned())
                    } else {
                        Value::Bytes(b)
                    });
                }
                0x8e => {
                    let b = self.take(8)?;
                    let n = u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize;
                    let b = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(b));
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u32;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(format!("{module}.{name}")));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => {
                            self.stack.push(Value::Global(format!("{m}.{n}")))
                        }
                        _ => return Err(self.err("STACK_GLOBAL without two strings")),
                    }
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(self.err("pickle stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items);
                    self.stack.push(Value::Dict(pairs));
                }
                b'a' => {
                    let v = self.pop()?;
                    if let Value::List(l) = self.top()? {
                        l.push(v);
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    if let Value::List(l) = self.top()? {
                        l.extend(items);
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    if let Value::Dict(d) = self.top()? {
                        d.push((k, v));
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let new = pairs(items);
                    if let Value::Dict(d) = self.top()? {
                        d.extend(new);
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent(pid)?;
                    self.stack.push(v);
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.reduce(f, args)?;
                    self.stack.push(v);
                }
                0x81 => {
                    let _args = self.pop()?;
                    let cls = self.pop()?;
                    self.stack.push(Value::Object(global_name(&cls)));
                }
                b'b' => {
                    // BUILD: set state on the object below; state_dicts' `_metadata` and
                    // opaque objects' fields are not needed.
                    self.pop()?;
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                other => {
                    return Err(self.err(format!("unsupported pickle opcode 0x{other:02x}")));
                }
            }
        }
    }

    /// `('storage', torch.FloatStorage, key, location, numel)`.
    fn persistent(&self, pid: Value) -> Result<Value> {
        let Value::Tuple(t) = pid else {
            return Err(self.err("a persistent id that is not a tuple"));
        };
        match t.as_slice() {
            [Value::Str(tag), cls, Value::Str(key), ..] if tag == "storage" => {
                let name = global_name(cls);
                let kind = storage_kind(&name)
                    .ok_or_else(|| self.err(format!("unsupported storage type `{name}`")))?;
                Ok(Value::Storage(kind, key.clone()))
            }
            _ => Err(self.err("a persistent id that is not a storage")),
        }
    }

    fn reduce(&self, f: Value, args: Value) -> Result<Value> {
        let name = global_name(&f);
        let args = match args {
            Value::Tuple(a) => a,
            _ => return Ok(Value::Object(name)),
        };
        match name.as_str() {
            "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
                match args.as_slice() {
                    [Value::Storage(kind, key), Value::Int(offset), Value::Tuple(size), Value::Tuple(stride), ..] => {
                        Ok(Value::Tensor(TensorRef {
                            kind: *kind,
                            storage: key.clone(),
                            offset: *offset,
                            size: ints(size).ok_or_else(|| self.err("bad tensor size"))?,
                            stride: ints(stride).ok_or_else(|| self.err("bad tensor stride"))?,
                        }))
                    }
                    _ => Err(self.err(format!("unexpected arguments to {name}"))),
                }
            }
            "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => {
                Ok(args.into_iter().next().unwrap_or(Value::None))
            }
            "collections.OrderedDict" => Ok(Value::Dict(Vec::new())),
            _ => Ok(Value::Object(name)),
        }
    }
}

fn global_name(v: &Value) -> String {
    match v {
        Value::Global(n) => n.clone(),
        other => format!("{other:?}"),
    }
}

fn ints(v: &[Value]) -> Option<Vec<i64>> {
    v.iter()
        .map(|x| match x {
            Value::Int(i) => Some(*i),
            _ => None,
        })
        .collect()
}

fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

/// Runs the pickle in `data` (`origin` names it in errors).
pub fn unpickle(data: &[u8], origin: &str) -> Result<Value> {
    Machine {
        data,
        at: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        origin,
    }
    .run()
}

/// Every tensor in `v`, named by the dotted path of dict keys and list indices.
pub fn named_refs(v: &Value, prefix: &str, out: &mut Vec<(String, TensorRef)>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Tensor(t) => out.push((prefix.to_string(), t.clone())),
        Value::Dict(d) => {
            for (k, x) in d {
                let key = match k {
                    Value::Str(s) => s.clone(),
                    Value::Int(i) => i.to_string(),
                    _ => continue,
                };
                named_refs(x, &join(&key), out);
            }
        }
        Value::List(l) | Value::Tuple(l) => {
            for (i, x) in l.iter().enumerate() {
                named_refs(x, &join(&i.to_string()), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pickle.dumps({'a': 1, 'b': [2, -3, 70000, 2**40], 'c': (1.5, 'x'),
    /// 'd': collections.OrderedDict(e=True)}, protocol=2)` from CPython 3.11.
    const SAMPLE: [u8; 128] = [
        128, 2, 125, 113, 0, 40, 88, 1, 0, 0, 0, 97, 113, 1, 75, 1, 88, 1, 0, 0, 0, 98, 113, 2, 93,
        113, 3, 40, 75, 2, 74, 253, 255, 255, 255, 74, 112, 17, 1, 0, 138, 6, 0, 0, 0, 0, 0, 1,
        101, 88, 1, 0, 0, 0, 99, 113, 4, 71, 63, 248, 0, 0, 0, 0, 0, 0, 88, 1, 0, 0, 0, 120, 113,
        5, 134, 113, 6, 88, 1, 0, 0, 0, 100, 113, 7, 99, 99, 111, 108, 108, 101, 99, 116, 105, 111,
        110, 115, 10, 79, 114, 100, 101, 114, 101, 100, 68, 105, 99, 116, 10, 113, 8, 41, 82, 113,
        9, 88, 1, 0, 0, 0, 101, 113, 10, 136, 115, 117, 46,
    ];

    #[test]
    fn python_values_come_back() {
        let Value::Dict(d) = unpickle(&SAMPLE, "sample").unwrap() else {
            panic!("not a dict")
        };
        let get = |k: &str| {
            d.iter()
                .find(|(key, _)| matches!(key, Value::Str(s) if s == k))
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert!(matches!(get("a"), Value::Int(1)));
        let Value::List(b) = get("b") else { panic!() };
        let ints: Vec<i64> = b
            .iter()
            .map(|v| match v {
                Value::Int(i) => *i,
                _ => panic!("{v:?}"),
            })
            .collect();
        assert_eq!(ints, [2, -3, 70000, 1 << 40]);
        let Value::Tuple(c) = get("c") else { panic!() };
        assert!(matches!(c.as_slice(), [Value::Float(f), Value::Str(s)] if *f == 1.5 && s == "x"));
        let Value::Dict(od) = get("d") else { panic!() };
        assert!(matches!(od.as_slice(), [(Value::Str(k), Value::Bool(true))] if k == "e"));
    }

    #[test]
    fn damaged_pickles_are_errors_not_panics() {
        for cut in [1, 10, 40, 100, 127] {
            let e = unpickle(&SAMPLE[..cut], "cut").unwrap_err().to_string();
            assert!(e.starts_with("data: cut: byte"), "{cut}: {e}");
        }
        let e = unpickle(&[0x80, 2, 0xff], "odd").unwrap_err().to_string();
        assert!(e.contains("unsupported pickle opcode 0xff"), "{e}");
    }
}
