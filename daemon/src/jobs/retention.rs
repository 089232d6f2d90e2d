//! Deleting what the engine no longer needs: originals past their retention, results past their
//! time-to-live or over the disk quota, and files a crash left without a job row.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Shared;
use crate::store::now_ms;

/// Sweep every `sweep_interval` until the engine stops.
pub(super) fn run(shared: &Shared) {
    loop {
        if let Err(e) = sweep(shared) {
            eprintln!("veil: retention sweep: {e}");
        }
        let (lock, wake) = &shared.sweep_wake;
        let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let _ = wake.wait_timeout(guard, shared.config.sweep_interval);
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

pub(super) fn sweep(shared: &Shared) -> Result<(), crate::store::StoreError> {
    let now = now_ms();
    let store = &shared.store;
    for (id, _) in store.originals_finished_before(now - ms(shared.config.keep_originals))? {
        if let Some(job) = store.get_job(&id)? {
            shared.delete_original(&job);
        }
    }
    let results = store.stored_results()?;
    let mut total: u64 = results.iter().map(|r| r.2.max(0) as u64).sum();
    let expire_before = now - ms(shared.config.result_ttl);
    for (id, name, bytes, completed_at) in results {
        let expired = completed_at < expire_before;
        let over_quota = total > shared.config.max_result_bytes;
        if !(expired || over_quota) {
            continue;
        }
        let Some(name) = super::safe_name(&name) else { continue };
        match std::fs::remove_file(shared.results.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                eprintln!("veil: job {id}: cannot delete the result: {e}");
                continue;
            }
        }
        store.mark_result_deleted(&id)?;
        total = total.saturating_sub(bytes.max(0) as u64);
    }
    Ok(())
}

/// Delete files in the originals and results directories that no job refers to: uploads a
/// crash cut off before their row was written, temporary files, results of deleted jobs.
/// Rows name files relative to these directories, so a moved state directory still matches.
pub(super) fn remove_orphans(shared: &Shared) -> anyhow::Result<()> {
    let referenced = shared.store.referenced_files()?;
    let mut removed = 0;
    for dir in [&shared.originals, &shared.results] {
        for entry in std::fs::read_dir(dir)?.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_file() && !referenced.contains(&name) {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) => eprintln!("veil: cannot remove {}: {e}", path.display()),
                }
            }
        }
    }
    if removed > 0 {
        eprintln!("veil: removed {removed} file(s) no job refers to");
    }
    Ok(())
}
