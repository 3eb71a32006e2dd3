//! Element types of PyTorch storages, shared by the zip and the legacy readers.

use rolekd_pickle::StorageKind;
use tch::Kind;

/// The tch element type of a storage class.
pub(crate) fn tch_kind(k: StorageKind) -> Kind {
    match k {
        StorageKind::Float => Kind::Float,
        StorageKind::Double => Kind::Double,
        StorageKind::Half => Kind::Half,
        StorageKind::BFloat16 => Kind::BFloat16,
        StorageKind::Long => Kind::Int64,
        StorageKind::Int => Kind::Int,
        StorageKind::Short => Kind::Int16,
        StorageKind::Char => Kind::Int8,
        StorageKind::Byte => Kind::Uint8,
        StorageKind::Bool => Kind::Bool,
    }
}
