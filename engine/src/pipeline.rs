//! The top level of a pipeline file: `name`, `seed`, `device`, `data`, `stages`, `plugins`.

use rolekd_core::config::{apply_override, did_you_mean, load_pipeline, Params, SourceMap};
use rolekd_core::error::{Error, Result};
use rolekd_core::precision::Precision;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::Device;

/// Where tensors live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// CUDA when available, else CPU.
    Auto,
    Cpu,
    /// `cuda` (None): the first visible GPU, and a search's worker threads spread over all
    /// the visible GPUs; `cuda:N`: GPU N, for everything.
    Cuda(Option<usize>),
}

impl DeviceSpec {
    pub fn parse(s: &str) -> std::result::Result<DeviceSpec, String> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(None)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(|i| DeviceSpec::Cuda(Some(i)))
                .ok_or_else(|| {
                    format!("`{s}` is not a device; expected auto, cpu, cuda or cuda:N")
                }),
        }
    }

    /// Whether it names one GPU (`cuda:N`): work that could spread over several GPUs (a
    /// search's worker threads) stays on that one.
    pub fn pinned(self) -> bool {
        matches!(self, DeviceSpec::Cuda(Some(_)))
    }

    /// Whether it asks for CUDA (`cuda`, `cuda:N`; not `auto`).
    pub fn is_cuda(self) -> bool {
        matches!(self, DeviceSpec::Cuda(_))
    }

    /// The libtorch device, checking that a requested GPU exists (`cuda`: GPU 0).
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceSpec::Auto => Ok(Device::cuda_if_available()),
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(i) => {
                let n = tch::Cuda::device_count() as usize;
                match i {
                    Some(i) if i < n => Ok(Device::Cuda(i)),
                    None if n > 0 => Ok(Device::Cuda(0)),
                    Some(i) => Err(Error::Invalid(format!(
                        "device cuda:{i} requested, but libtorch sees {n} CUDA device(s)"
                    ))),
                    None => Err(Error::Invalid(
                        "device cuda requested, but libtorch sees no CUDA device".into(),
                    )),
                }
            }
        }
    }
}

/// A parsed pipeline.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub file: PathBuf,
    pub name: String,
    pub seed: u64,
    /// `seeds: [0, 1, 2]`: the whole graph runs once per seed (in `seed-<s>/` under the run
    /// directory) so results can be reported as mean ± std. Empty: one run with `seed`.
    pub seeds: Vec<u64>,
    pub device: DeviceSpec,
    /// `precision:` the default for every training stage and search trial (fp32).
    pub precision: Precision,
    pub data: Params,
    /// Stages in file order.
    pub stages: Vec<(String, Params)>,
    /// Dynamic plugin libraries to load before the graph is built.
    pub plugins: Vec<PathBuf>,
    /// The whole document after composition and overrides.
    pub root: Params,
}

const TOP_LEVEL: [&str; 9] = [
    "name",
    "seed",
    "seeds",
    "device",
    "precision",
    "data",
    "stages",
    "plugins",
    "description",
];

impl Pipeline {
    /// Loads a pipeline file, applies `--set` overrides and checks the top level.
    pub fn load(file: &Path, overrides: &[String]) -> Result<Pipeline> {
        let mut loaded = load_pipeline(file)?;
        for o in overrides {
            apply_override(&mut loaded.value, o)?;
        }
        let root = Params::new(loaded.value, "", Arc::new(loaded.sources));
        Self::from_params(file, root)
    }

    /// Checks the top level of an already composed document.
    pub fn from_params(file: &Path, root: Params) -> Result<Pipeline> {
        check_top_level(&root)?;
        let name = parse_name(file, &root)?;
        let seed = match root.get("seed") {
            Some(p) => p.parse_value::<u64>()?,
            None => 0,
        };
        let seeds = parse_seeds(&root)?;
        let device = match root.get("device") {
            Some(p) => {
                let s = p.parse_value::<String>()?;
                DeviceSpec::parse(&s).map_err(|m| p.error(m))?
            }
            None => DeviceSpec::Auto,
        };
        let precision = match root.get("precision") {
            Some(p) => {
                let s = p.parse_value::<String>()?;
                Precision::parse(&s).map_err(|m| p.error(m))?
            }
            None => Precision::Fp32,
        };
        let data = root.get("data").ok_or_else(|| {
            root.error("missing field `data` (the dataset, e.g. `data: {type: fashion-mnist}`)")
        })?;
        let stages = parse_stages(&root)?;
        let plugins = parse_plugins(file, &root)?;
        Ok(Pipeline {
            file: file.to_path_buf(),
            name,
            seed,
            seeds,
            device,
            precision,
            data,
            stages,
            plugins,
            root,
        })
    }

    pub fn sources(&self) -> &Arc<SourceMap> {
        self.root.sources()
    }
}

/// Every top-level key is a known field or an `x-...` anchor holder.
fn check_top_level(root: &Params) -> Result<()> {
    for (key, _) in root.entries()? {
        // `x-...` keys hold anchors for reuse, as in docker-compose files.
        if !TOP_LEVEL.contains(&key.as_str()) && !key.starts_with("x-") {
            let hint = did_you_mean(&key, &TOP_LEVEL);
            return Err(root
                .child_error(
                    &key,
                    format!(
                        "unknown top-level field `{key}`{hint}; expected one of {} (or `x-...` for anchors)",
                        TOP_LEVEL.join(", ")
                    ),
                )
                .into());
        }
    }
    Ok(())
}

/// `name`, or the file's stem; usable as a folder name.
fn parse_name(file: &Path, root: &Params) -> Result<String> {
    let name = match root.get("name") {
        Some(p) => p.parse_value::<String>()?,
        None => file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pipeline".into()),
    };
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(root
            .child_error(
                "name",
                "a pipeline name must be non-empty, without `/`, not starting with `.`",
            )
            .into());
    }
    Ok(name)
}

/// `seeds`: a non-empty list of distinct seeds, or none.
fn parse_seeds(root: &Params) -> Result<Vec<u64>> {
    let Some(p) = root.get("seeds") else {
        return Ok(Vec::new());
    };
    let list = p.parse_value::<Vec<u64>>()?;
    let mut seen = std::collections::BTreeSet::new();
    if list.is_empty() || !list.iter().all(|s| seen.insert(*s)) {
        return Err(p
            .error("`seeds` must be a non-empty list of distinct seeds, e.g. [0, 1, 2]")
            .into());
    }
    Ok(list)
}

/// The stages, in file order, with names usable as folder names.
fn parse_stages(root: &Params) -> Result<Vec<(String, Params)>> {
    let stages_p = root
        .get("stages")
        .ok_or_else(|| root.error("missing field `stages` (a mapping of stage name to stage)"))?;
    let mut stages = Vec::new();
    for (name, p) in stages_p.entries()? {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(p
                .error(format!(
                    "stage name `{name}` may only hold letters, digits, `_` and `-`"
                ))
                .into());
        }
        stages.push((name, p));
    }
    if stages.is_empty() {
        return Err(stages_p.error("a pipeline needs at least one stage").into());
    }
    Ok(stages)
}

/// `plugins`: libraries to load, relative to the pipeline file's folder.
fn parse_plugins(file: &Path, root: &Params) -> Result<Vec<PathBuf>> {
    let base = file.parent().unwrap_or(Path::new("."));
    let Some(p) = root.get("plugins") else {
        return Ok(Vec::new());
    };
    Ok(p.parse_value::<Vec<PathBuf>>()?
        .into_iter()
        .map(|lib| {
            if lib.is_absolute() {
                lib
            } else {
                base.join(lib)
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::DeviceSpec;

    #[test]
    fn device_specs_parse_and_only_an_index_pins() {
        assert_eq!(DeviceSpec::parse("auto"), Ok(DeviceSpec::Auto));
        assert_eq!(DeviceSpec::parse("cpu"), Ok(DeviceSpec::Cpu));
        assert_eq!(DeviceSpec::parse("cuda"), Ok(DeviceSpec::Cuda(None)));
        assert_eq!(DeviceSpec::parse("cuda:0"), Ok(DeviceSpec::Cuda(Some(0))));
        assert_eq!(DeviceSpec::parse("cuda:3"), Ok(DeviceSpec::Cuda(Some(3))));
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "CUDA"] {
            let e = DeviceSpec::parse(bad).unwrap_err();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
        assert!(DeviceSpec::Cuda(Some(0)).pinned());
        for d in [DeviceSpec::Auto, DeviceSpec::Cpu, DeviceSpec::Cuda(None)] {
            assert!(!d.pinned(), "{d:?}");
        }
        assert!(DeviceSpec::Cuda(None).is_cuda() && DeviceSpec::Cuda(Some(1)).is_cuda());
        assert!(!DeviceSpec::Auto.is_cuda() && !DeviceSpec::Cpu.is_cuda());
    }
}
