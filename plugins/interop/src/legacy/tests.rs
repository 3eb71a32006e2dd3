//! Legacy files built byte by byte: what each part must hold, and located errors for what
//! does not (the files PyTorch itself writes are read in tests/torch_legacy.rs).

use super::*;

fn magic() -> Vec<u8> {
    let mut p = vec![0x80, 2, 0x8a, 10];
    p.extend(&MAGIC.to_le_bytes()[..10]);
    p.push(b'.');
    p
}

fn short_int(n: u16) -> Vec<u8> {
    let [lo, hi] = n.to_le_bytes();
    vec![0x80, 2, b'M', lo, hi, b'.']
}

fn text(s: &str) -> Vec<u8> {
    let mut p = vec![0x8c, s.len() as u8];
    p.extend(s.as_bytes());
    p
}

/// `{'little_endian': little}`.
fn sys_info(little: bool) -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'('];
    p.extend(text("little_endian"));
    p.extend([if little { 0x88 } else { 0x89 }, b'u', b'.']);
    p
}

/// `{'w': _rebuild_tensor_v2(('storage', FloatStorage, 'k', 'cpu', 3, None), 1, (2,),
/// (1,), False)}`: elements 1 and 2 of a 3-element storage.
fn object() -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'('];
    p.extend(text("w"));
    p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    p.push(b'(');
    p.extend(text("storage"));
    p.extend(b"ctorch\nFloatStorage\n");
    p.extend(text("k"));
    p.extend(text("cpu"));
    p.extend([b'K', 3, b'N', b't', b'Q']);
    p.extend([
        b'K', 1, b'K', 2, 0x85, b'K', 1, 0x85, 0x89, b't', b'R', b'u', b'.',
    ]);
    p
}

fn keys() -> Vec<u8> {
    let mut p = vec![0x80, 2, b']', b'('];
    p.extend(text("k"));
    p.extend([b'e', b'.']);
    p
}

fn record(count: u64, values: &[f32]) -> Vec<u8> {
    let mut p = count.to_le_bytes().to_vec();
    for v in values {
        p.extend(v.to_le_bytes());
    }
    p
}

fn file(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn good() -> Vec<u8> {
    file(&[
        magic(),
        short_int(1001),
        sys_info(true),
        object(),
        keys(),
        record(3, &[1.0, 2.0, 3.0]),
    ])
}

fn err(bytes: &[u8]) -> String {
    match read_legacy(bytes) {
        Ok(_) => panic!("read"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn reads_the_object_and_its_storages() {
    let l = read_legacy(&good()).unwrap();
    let Some(Value::Tensor(w)) = l.value.get("w") else {
        panic!("{:?}", l.value)
    };
    assert_eq!(
        (w.offset, w.size.clone(), w.storage.numel),
        (1, vec![2], Some(3))
    );
    let k = &l.storages["k"];
    assert_eq!(Vec::<f32>::try_from(k).unwrap(), [1.0, 2.0, 3.0]);
    // Bytes after the last record are ignored, as torch.load ignores them.
    let mut longer = good();
    longer.extend([0, 1, 2]);
    assert!(read_legacy(&longer).is_ok());
    assert!(is_legacy(&good()) && !is_legacy(b"PK\x03\x04"));
}

#[test]
fn refuses_what_is_not_a_legacy_file_by_location() {
    let mut bad_magic = good();
    bad_magic[5] ^= 1;
    assert!(err(&bad_magic).contains("byte 0: no legacy torch.save magic number"));
    let wrong_version = file(&[magic(), short_int(1000), sys_info(true)]);
    assert_eq!(
        err(&wrong_version),
        "byte 15: protocol version 1000, expected 1001"
    );
    let big = file(&[magic(), short_int(1001), sys_info(false), object()]);
    assert!(err(&big).contains("byte 21: written on a big-endian machine"));
    let e = err(&file(&[
        magic(),
        short_int(1001),
        sys_info(true),
        short_int(7),
        short_int(7),
    ]));
    assert!(e.contains("expected a list of strings"), "{e}");
}

#[test]
fn records_that_do_not_fit_are_located() {
    let head = [magic(), short_int(1001), sys_info(true), object(), keys()];
    let at = head.iter().map(Vec::len).sum::<usize>();
    let short = file(&[&head[..], &[record(3, &[1.0, 2.0])]].concat());
    assert_eq!(
        err(&short),
        format!(
            "storage record 1 of 1 (key `k`, byte {at}): truncated: 3 Float elements need 12 bytes, 8 left"
        )
    );
    let miscounted = file(&[&head[..], &[record(4, &[1.0, 2.0, 3.0, 4.0])]].concat());
    assert!(err(&miscounted).contains("4 elements, but the object's persistent id says 3"));
    // A key no persistent id named (its element size is unknown).
    let mut other = keys();
    let k = other.iter().rposition(|&b| b == b'k').unwrap();
    other[k] = b'x';
    let unnamed = file(&[magic(), short_int(1001), sys_info(true), object(), other]);
    assert!(err(&unnamed).contains("key `x`"));
    assert!(err(&unnamed).contains("no persistent id names this storage"));
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    let whole = good();
    for cut in 0..whole.len() {
        let e = err(&whole[..cut]);
        assert!(
            e.contains("truncated") || e.contains("magic number"),
            "{cut}: {e}"
        );
    }
}
