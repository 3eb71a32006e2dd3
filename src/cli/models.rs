//! `rolekd-run models`: every registered model's size and cost.

use rolekd_core::config::Params;
use rolekd_core::plugin::model::{ModelSpec, QuantSpec};
use rolekd_core::registry::{PluginKind, Registry};

/// The two problem shapes the table reports: Fashion-MNIST and CIFAR.
const SHAPES: [(&str, i64, i64); 2] = [("1x28x28", 1, 28), ("3x32x32", 3, 32)];

/// One configured model (`--model '{type: small-cnn, channels: [16, 32]}'`) as JSON:
/// parameters and MACs per image for each shape, for scripts such as bench/suite.sh.
pub fn one(entry: &str, classes: i64) -> anyhow::Result<()> {
    let params = Params::from_yaml(entry)?;
    let name = params.type_name()?;
    let mut out = serde_json::Map::new();
    for (label, c, hw) in SHAPES {
        let s = rolekd_models::summarize(&name, &params.without(&["type"]), &spec(c, hw, classes))?;
        out.insert(
            label.to_string(),
            serde_json::json!({"params": s.params, "macs": s.macs}),
        );
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

pub fn list(classes: i64) -> anyhow::Result<()> {
    let names: Vec<String> = {
        let reg = Registry::global().read().unwrap_or_else(|e| e.into_inner());
        reg.entries()
            .filter(|e| e.kind() == PluginKind::Model)
            .map(|e| e.name.clone())
            .collect()
    };
    println!(
        "{:<20} {:>12} {:>16} {:>16}   (default params, {classes} classes)",
        "model", "params", "MACs 1x28x28", "MACs 3x32x32"
    );
    for name in names {
        let mut params = 0;
        let mut macs = Vec::new();
        for (_, c, hw) in SHAPES {
            match rolekd_models::summarize(&name, &Params::from_yaml("{}")?, &spec(c, hw, classes))
            {
                Ok(s) => {
                    params = s.params;
                    macs.push(group(s.macs));
                }
                Err(e) => macs.push(format!("({e})")),
            }
        }
        println!(
            "{:<20} {:>12} {:>16} {:>16}",
            name,
            group(params),
            macs[0],
            macs[1]
        );
    }
    Ok(())
}

/// A full-precision problem of `c` channels, `hw` x `hw` pixels, `classes` classes.
fn spec(c: i64, hw: i64, classes: i64) -> ModelSpec {
    ModelSpec {
        in_channels: c,
        num_classes: classes,
        height: hw,
        width: hw,
        quant: QuantSpec::default(),
    }
}

/// 1234567 -> "1,234,567".
fn group(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
