//! Configuration from the environment, read once when the heap is created.
//!
//! | variable            | meaning                                                   |
//! |---------------------|-----------------------------------------------------------|
//! | `GCPIN_GC_PERCENT`  | growth over the live heap that triggers a collection; `off` |
//! | `GCPIN_MAX_HEAP`    | hard limit in bytes (K/M/G suffixes)                       |
//! | `GCPIN_TRACE`       | `1`: one line per collection on stderr                    |
//! | `GCPIN_STRESS`      | `N`: also collect every N allocations (per thread)        |
//! | `GCPIN_SIG_SUSPEND` | signal number used to stop threads (default SIGPWR)       |
//!
//! A malformed value is ignored (the default applies) rather than aborting: the
//! program still runs, as with an unset variable.

/// Minimum heap size before the first automatic collection [Go: heapMinimum].
pub const MIN_HEAP: usize = 4 << 20;

/// Default address-space reservation for the arena.
pub const DEFAULT_ARENA: usize = 32 << 30;

#[derive(Clone, Debug)]
pub struct Config {
    /// `None` when automatic collection is off.
    pub gc_percent: Option<u64>,
    pub max_heap: Option<usize>,
    pub trace: bool,
    /// Collect every `stress` allocations; 0 = off.
    pub stress: u64,
    pub sig_suspend: i32,
    pub arena_bytes: usize,
}

impl Config {
    pub fn from_env() -> Config {
        let get = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string());
        let gc_percent = match get("GCPIN_GC_PERCENT").as_deref() {
            Some("off") | Some("OFF") => None,
            Some(v) => Some(v.parse::<u64>().unwrap_or(100)),
            None => Some(100),
        };
        let max_heap = get("GCPIN_MAX_HEAP").and_then(|v| parse_size(&v));
        let trace = get("GCPIN_TRACE").is_some_and(|v| v != "0" && !v.is_empty());
        let stress = get("GCPIN_STRESS").and_then(|v| v.parse().ok()).unwrap_or(0);
        let sig_suspend = get("GCPIN_SIG_SUSPEND")
            .and_then(|v| v.parse::<i32>().ok())
            .filter(|&s| s > 0 && s < 65 && s != libc::SIGKILL && s != libc::SIGSTOP)
            .unwrap_or(libc::SIGPWR);
        let arena_bytes = match max_heap {
            // Leave room for fragmentation above the limit.
            Some(m) => (m.saturating_mul(2)).clamp(64 << 20, 1 << 40),
            None => DEFAULT_ARENA,
        };
        Config { gc_percent, max_heap, trace, stress, sig_suspend, arena_bytes }
    }
}

/// Parses "123", "64K", "512M", "2G" (binary multiples).
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (num, mul) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1usize << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<usize>().ok()?.checked_mul(mul)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
    }
}
