//! The process's own numbers, read from `/proc` at scrape time (Linux; on
//! other systems these metrics are left out).

/// Resident memory in bytes, open file descriptors, CPU seconds (user +
/// system) and the file-descriptor limit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Process {
    pub(crate) rss_bytes: Option<u64>,
    pub(crate) open_fds: Option<u64>,
    pub(crate) max_fds: Option<u64>,
    pub(crate) cpu_seconds: Option<f64>,
}

pub(crate) fn read() -> Process {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    // Fields after the command name (which may hold spaces), from field 3.
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = 100.0; // USER_HZ on every Linux configuration in use
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // utime is field 14, stime 15: indices 11 and 12 here.
    let cpu_seconds = match (num(11), num(12)) {
        (Some(u), Some(s)) => Some((u + s) as f64 / ticks),
        _ => None,
    };
    // VmRSS is in kB whatever the page size.
    let rss_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024);
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        });
    Process {
        rss_bytes,
        open_fds,
        max_fds,
        cpu_seconds,
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_process_reads_itself() {
        let p = super::read();
        assert!(p.rss_bytes.unwrap() > 1 << 20);
        assert!(p.open_fds.unwrap() >= 3);
        assert!(p.max_fds.unwrap() >= p.open_fds.unwrap());
        assert!(p.cpu_seconds.unwrap() >= 0.0);
    }
}
