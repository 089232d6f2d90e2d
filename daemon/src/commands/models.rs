//! `veil models`: the backend registry (name, version, categories, precision, sha256, input),
//! and what `precision = "auto"` picks on this machine for backends with both precisions.

use crate::cli::ModelsCmd;

pub fn run(cmd: ModelsCmd) -> anyhow::Result<i32> {
    let registry = super::registry(&cmd.model_dir);
    let list = registry.list();
    if !cmd.json {
        println!(
            "{:<12} {:<6} {:<20} {:<26} {:<9} {:<16} sha256",
            "backend", "prec", "version", "categories", "present", "input"
        );
        for b in &list {
            let cats: Vec<&str> = b.categories.iter().map(|c| c.as_str()).collect();
            println!(
                "{:<12} {:<6} {:<20} {:<26} {:<9} {:<16} {}",
                b.name,
                b.precision.as_str(),
                b.version,
                cats.join(","),
                if b.available { "yes" } else { "no" },
                format!("any, x{}", b.input_multiple),
                b.sha256
            );
        }
    }
    // What `auto` keeps here: measured now, as the daemon measures it at load.
    let mut probed = Vec::new();
    for name in veil_models::Registry::backend_names() {
        let both = [veil_models::Precision::Int8, veil_models::Precision::Fp32]
            .iter()
            .all(|p| list.iter().any(|b| b.name == name && b.precision == *p && b.available));
        if both {
            let det = registry.create(name, veil_models::Precision::Auto, 1)?;
            let info = det.info().clone();
            if !cmd.json {
                if let Some(p) = info.auto_probe {
                    println!(
                        "\nprecision auto, {name}: int8 {:.1} ms, fp32 {:.1} ms (fastest of three 640x480 inferences, 1 thread) -> {}",
                        p.int8_ms, p.fp32_ms, info.precision
                    );
                }
            }
            probed.push(info);
        }
    }
    if cmd.json {
        // The list as always; the entry `auto` keeps carries the timings behind that choice.
        let marked: Vec<veil_models::BackendInfo> = list
            .iter()
            .map(|b| {
                let chosen = probed.iter().find(|p| p.name == b.name && p.precision == b.precision);
                veil_models::BackendInfo { auto_probe: chosen.and_then(|p| p.auto_probe), ..b.clone() }
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&marked)?);
    }
    if let Some(precision) = cmd.ops {
        let det = veil_models::CenterFace::from_bytes(
            &registry.store().read(
                registry
                    .store()
                    .artifact("centerface", precision)
                    .ok_or_else(|| anyhow::anyhow!("no centerface model at precision {precision}"))?,
            )?,
            list.iter().find(|b| b.name == "centerface" && b.precision == precision).cloned().ok_or_else(|| anyhow::anyhow!("not listed"))?,
            1,
        )?;
        let ops = det.optimized_ops(640, 480)?;
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for op in &ops {
            *counts.entry(op.split(' ').next().unwrap_or("").to_string()).or_default() += 1;
        }
        println!("\noptimized plan at 640x480 ({precision}): {} nodes", ops.len());
        for (name, n) in counts {
            println!("  {n:>4}  {name}");
        }
        if std::env::var_os("VEIL_OPS_VERBOSE").is_some() {
            for op in ops {
                println!("    {op}");
            }
        }
    }
    Ok(0)
}
