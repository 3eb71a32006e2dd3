//! Augmentation policies (kind `augmentation policy`): `none`, `standard`, `pba`,
//! `pba-schedule`, `autoaugment-cifar10`, `randaugment`, `trivialaugment`, `mixup`,
//! `cutmix`, `ops` (any registered ops by name).

pub mod auto;
pub mod finish;
pub mod mix;
pub mod ops;
pub mod pba;
pub mod standard;

/// The policy a wrapping policy runs per image: its `base` entry, else `standard` with its
/// defaults.
pub(crate) fn base_policy(
    params: &rolekd_core::config::Params,
    ctx: &rolekd_core::plugin::augment::PolicyCtx,
) -> rolekd_core::Result<Box<dyn rolekd_core::plugin::augment::AugmentPolicy>> {
    use rolekd_core::registry;
    match params.get("base") {
        Some(entry) if !entry.value().is_null() => {
            let factory = registry::of_entry(&entry, registry::augment_policy)?;
            factory(&entry, ctx)
        }
        _ => {
            let factory =
                registry::augment_policy("standard").map_err(|e| params.error(e.to_string()))?;
            let defaults = rolekd_core::config::Params::from_yaml("standard")
                .map_err(|e| rolekd_core::Error::Invalid(e.to_string()))?;
            factory(&defaults, ctx)
        }
    }
}
