//! `veil models`: the backend registry (name, version, categories, precision, sha256, input).

use crate::cli::ModelsCmd;

pub fn run(cmd: ModelsCmd) -> anyhow::Result<i32> {
    let registry = super::registry(&cmd.model_dir);
    let list = registry.list();
    if cmd.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        println!(
            "{:<12} {:<6} {:<20} {:<10} {:<9} {:<16} sha256",
            "backend", "prec", "version", "categories", "present", "input"
        );
        for b in &list {
            let cats: Vec<&str> = b.categories.iter().map(|c| c.as_str()).collect();
            println!(
                "{:<12} {:<6} {:<20} {:<10} {:<9} {:<16} {}",
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
    if let Some(precision) = cmd.ops {
        let det = veil_models::CenterFace::from_bytes(
            &registry.store().read(
                registry
                    .store()
                    .artifact("centerface", precision)
                    .ok_or_else(|| anyhow::anyhow!("no centerface model at precision {precision}"))?,
            )?,
            list.iter().find(|b| b.precision == precision).cloned().ok_or_else(|| anyhow::anyhow!("not listed"))?,
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
