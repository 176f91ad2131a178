//! Configuration from the environment, read once when the heap is created.
//!
//! | variable            | meaning                                                   |
//! |---------------------|-----------------------------------------------------------|
//! | `GCPIN_GC_PERCENT`  | growth over the live heap that triggers a collection; `off` |
//! | `GCPIN_MAX_HEAP`    | hard limit in bytes (K/M/G/T suffixes)                     |
//! | `GCPIN_TRACE`       | `1`: one line per collection on stderr                    |
//! | `GCPIN_STRESS`      | `N`: also collect every N allocations (per thread)        |
//! | `GCPIN_SIG_SUSPEND` | the signal used to stop threads (default SIGPWR)          |
//! | `GCPIN_MARKERS`     | marker threads, the collecting one included: at most the  |
//! |                     | online cores (the default), 1 to 64; 1 marks alone        |
//! | `GCPIN_CONCURRENT`  | `1`: automatic cycles mark while the program runs         |
//! | `GCPIN_HUGEPAGES`   | `1`: the arena asks for transparent huge pages (not with  |
//! |                     | `GCPIN_CONCURRENT=1`)                                      |
//!
//! A value a variable cannot take is not fatal: the program still runs, with
//! the default, and one line on stderr names the variable, the value and what
//! is used instead. An empty value counts as unset.
//!
//! The suspend signal must be one gcpin can take over without taking it from
//! the kernel or the user: SIGPWR, SIGXCPU, SIGUSR1, SIGUSR2 or a real-time
//! signal (SIGRTMIN..=SIGRTMAX as glibc reports them, above the ones it keeps
//! for itself). A fault signal would turn a real segfault into a spin, and
//! SIGTERM or SIGINT would stop killing the process.

/// Address space reserved for the arena without `GCPIN_MAX_HEAP`: far more than
/// the memory of any machine gcpin runs on, so the heap is limited by memory,
/// not by the reservation (which costs address space only: pages are
/// committed as they are used). Where the system refuses that much (a
/// `ulimit -v`, strict overcommit, valgrind), the heap takes the largest
/// half, quarter, ... it gets.
pub const DEFAULT_ARENA: usize = 4 << 40;

/// The arena under valgrind (see `os::running_on_valgrind` and `Heap::new`):
/// enough for the test suite's reduced runs (`CHECK_SIZE_DIV`).
pub const VALGRIND_ARENA: usize = 512 << 20;

/// The largest arena reserved for a `GCPIN_MAX_HEAP`.
pub const MAX_ARENA: usize = 64 << 40;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `None` when automatic collection is off.
    pub gc_percent: Option<u64>,
    pub max_heap: Option<usize>,
    pub trace: bool,
    /// Collect every `stress` allocations; 0 = off.
    pub stress: u64,
    pub sig_suspend: i32,
    pub arena_bytes: usize,
    /// Threads that mark in a cycle, the collecting thread included (>= 1).
    pub markers: usize,
    /// Automatic cycles mark concurrently (`concurrent`).
    pub concurrent: bool,
    /// The arena is advised to the kernel for transparent huge pages
    /// (`Heap::new`); never together with `concurrent`.
    pub huge_pages: bool,
}

/// The most `GCPIN_MARKERS` takes (`mark::MAX_MARKERS`).
pub const MAX_MARKERS: usize = 64;

/// The cores this process may run on (at least 1).
pub fn online_cores() -> usize {
    // SAFETY: a cpu_set_t filled by sched_getaffinity for this thread.
    let n = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            libc::CPU_COUNT(&set) as usize
        } else {
            libc::sysconf(libc::_SC_NPROCESSORS_ONLN).max(1) as usize
        }
    };
    n.max(1)
}

impl Config {
    /// The configuration of this process; warnings go to stderr.
    pub fn from_env() -> Config {
        Config::from_lookup(|k| std::env::var(k).ok(), |msg| crate::os::write_stderr(&[msg, "\n"]))
    }

    /// The configuration given by `get` (a variable's value, if set), with one
    /// call of `warn` for each value that cannot be used.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>, mut warn: impl FnMut(&str)) -> Config {
        let get = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let mut bad = |var: &str, value: &str, expected: &str, instead: &str| {
            warn(&format!("gcpin: {var}={value:?} is not {expected}; using {instead}"));
        };
        let gc_percent = match get("GCPIN_GC_PERCENT") {
            None => Some(100),
            Some(v) if v.eq_ignore_ascii_case("off") => None,
            Some(v) => v.parse::<u64>().ok().or_else(|| {
                bad("GCPIN_GC_PERCENT", &v, "a percentage (a whole number >= 0) or off", "100");
                Some(100)
            }),
        };
        let max_heap = get("GCPIN_MAX_HEAP").and_then(|v| {
            let m = parse_size(&v).filter(|&m| m > 0);
            if m.is_none() {
                bad("GCPIN_MAX_HEAP", &v, "a size (bytes > 0, or a number with K, M, G or T)", "no limit");
            }
            m
        });
        let trace = match get("GCPIN_TRACE").as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(v) => {
                bad("GCPIN_TRACE", v, "0 or 1", "1");
                true
            }
        };
        let stress = get("GCPIN_STRESS").map_or(0, |v| {
            v.parse::<u64>().unwrap_or_else(|_| {
                bad("GCPIN_STRESS", &v, "a number of allocations (a whole number >= 0)", "0 (off)");
                0
            })
        });
        let sig_suspend = get("GCPIN_SIG_SUSPEND").map_or(libc::SIGPWR, |v| {
            parse_signal(&v).filter(|&s| signal_can_be_taken_over(s)).unwrap_or_else(|| {
                let expected = format!(
                    "a signal gcpin can take over to stop threads (SIGPWR, SIGXCPU, SIGUSR1, SIGUSR2, or a \
                     real-time signal {}..{})",
                    sigrtmin(),
                    sigrtmax()
                );
                bad("GCPIN_SIG_SUSPEND", &v, &expected, &format!("SIGPWR ({})", libc::SIGPWR));
                libc::SIGPWR
            })
        });
        let cores = online_cores().min(MAX_MARKERS);
        let markers = get("GCPIN_MARKERS").map_or(cores, |v| match v.parse::<usize>() {
            Ok(n) if (1..=MAX_MARKERS).contains(&n) => n.min(cores),
            _ => {
                bad("GCPIN_MARKERS", &v, "a number of threads from 1 to 64", &format!("{cores} (the online cores)"));
                cores
            }
        });
        let concurrent = match get("GCPIN_CONCURRENT").as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(v) => {
                bad("GCPIN_CONCURRENT", v, "0 or 1", "0 (stop-the-world marking)");
                false
            }
        };
        let huge_pages = match get("GCPIN_HUGEPAGES").as_deref() {
            None | Some("0") => false,
            Some("1") if concurrent => {
                // The write tracker's first write to a protected huge page
                // splits it: the pause benchmark's pauses went to 8-27 ms.
                warn("gcpin: GCPIN_HUGEPAGES=1 is not used with GCPIN_CONCURRENT=1 (a tracked write splits a huge page); using 0");
                false
            }
            Some("1") => true,
            Some(v) => {
                bad("GCPIN_HUGEPAGES", v, "0 or 1", "0 (pages of the kernel's default size)");
                false
            }
        };
        let arena_bytes = match max_heap {
            // Leave room for fragmentation above the limit.
            Some(m) => (m.saturating_mul(2)).clamp(64 << 20, MAX_ARENA),
            None => DEFAULT_ARENA,
        };
        Config { gc_percent, max_heap, trace, stress, sig_suspend, arena_bytes, markers, concurrent, huge_pages }
    }
}

/// Parses "123", "64K", "512M", "2G", "1T" (binary multiples, either case).
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (num, shift) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 10),
        'm' | 'M' => (&s[..s.len() - 1], 20),
        'g' | 'G' => (&s[..s.len() - 1], 30),
        't' | 'T' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    num.trim().parse::<usize>().ok()?.checked_mul(1usize << shift)
}

/// A signal number, or a name with or without "SIG" ("USR1", "SIGRTMIN+3").
fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Some(n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let fixed = [("PWR", libc::SIGPWR), ("XCPU", libc::SIGXCPU), ("USR1", libc::SIGUSR1), ("USR2", libc::SIGUSR2)];
    if let Some(&(_, n)) = fixed.iter().find(|(n, _)| *n == name) {
        return Some(n);
    }
    // "RTMIN", "RTMIN+k", "RTMAX", "RTMAX-k".
    let offset = |rest: &str, sign: char| -> Option<i32> {
        match rest.strip_prefix(sign) {
            _ if rest.is_empty() => Some(0),
            Some(k) => k.parse::<i32>().ok(),
            None => None,
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return offset(rest, '+').map(|k| sigrtmin() + k);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return offset(rest, '-').map(|k| sigrtmax() - k);
    }
    None
}

fn sigrtmin() -> i32 {
    // SAFETY: no preconditions; glibc's first real-time signal it leaves free.
    unsafe { libc::__libc_current_sigrtmin() }
}

fn sigrtmax() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::__libc_current_sigrtmax() }
}

/// Whether gcpin may install its suspend handler for signal `s`.
fn signal_can_be_taken_over(s: i32) -> bool {
    [libc::SIGPWR, libc::SIGXCPU, libc::SIGUSR1, libc::SIGUSR2].contains(&s) || (sigrtmin()..=sigrtmax()).contains(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> (Config, Vec<String>) {
        let mut warnings = Vec::new();
        let c = Config::from_lookup(
            |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()),
            |w| warnings.push(w.to_string()),
        );
        (c, warnings)
    }

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("2T"), Some(2 << 40));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("1X"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
    }

    #[test]
    fn defaults_need_no_warning() {
        let (c, w) = config(&[]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.gc_percent, Some(100));
        assert_eq!(c.max_heap, None);
        assert_eq!(c.sig_suspend, libc::SIGPWR);
        assert_eq!(c.arena_bytes, DEFAULT_ARENA);
        assert_eq!(c.markers, online_cores().min(MAX_MARKERS));
        let (c2, w) = config(&[("GCPIN_TRACE", ""), ("GCPIN_MAX_HEAP", " ")]);
        assert!(w.is_empty(), "empty values count as unset: {w:?}");
        assert_eq!(c2, c);
    }

    #[test]
    fn each_bad_value_gets_one_line_naming_variable_value_and_fallback() {
        for (var, value, fallback) in [
            ("GCPIN_GC_PERCENT", "abc", "using 100"),
            ("GCPIN_GC_PERCENT", "-5", "using 100"),
            ("GCPIN_MAX_HEAP", "1X", "using no limit"),
            ("GCPIN_MAX_HEAP", "-1", "using no limit"),
            ("GCPIN_MAX_HEAP", "0", "using no limit"),
            ("GCPIN_STRESS", "abc", "using 0 (off)"),
            ("GCPIN_TRACE", "yes", "using 1"),
            ("GCPIN_SIG_SUSPEND", "11", "using SIGPWR"),
            ("GCPIN_SIG_SUSPEND", "8", "using SIGPWR"),
            ("GCPIN_SIG_SUSPEND", "15", "using SIGPWR"),
            ("GCPIN_SIG_SUSPEND", "2", "using SIGPWR"),
            ("GCPIN_SIG_SUSPEND", "32", "using SIGPWR"),
            ("GCPIN_SIG_SUSPEND", "SIGKILL", "using SIGPWR"),
            ("GCPIN_MARKERS", "0", "(the online cores)"),
            ("GCPIN_MARKERS", "65", "(the online cores)"),
            ("GCPIN_MARKERS", "two", "(the online cores)"),
            ("GCPIN_CONCURRENT", "yes", "using 0 (stop-the-world marking)"),
            ("GCPIN_HUGEPAGES", "2", "using 0 (pages of the kernel's default size)"),
        ] {
            let (c, w) = config(&[(var, value)]);
            assert_eq!(w.len(), 1, "{var}={value}: {w:?}");
            assert!(w[0].contains(var) && w[0].contains(&format!("{value:?}")) && w[0].contains(fallback), "{}", w[0]);
            let mut want = config(&[]).0;
            want.trace = var == "GCPIN_TRACE"; // its fallback is on: the user asked for something
            assert_eq!(c, want, "{var}={value} falls back");
        }
    }

    #[test]
    fn good_values_are_taken() {
        let (c, w) = config(&[
            ("GCPIN_GC_PERCENT", "off"),
            ("GCPIN_MAX_HEAP", "2T"),
            ("GCPIN_TRACE", "1"),
            ("GCPIN_STRESS", "7"),
            ("GCPIN_SIG_SUSPEND", "SIGUSR2"),
            ("GCPIN_MARKERS", "1"),
            ("GCPIN_CONCURRENT", "1"),
        ]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.markers, 1);
        assert!(c.concurrent);
        assert!(!c.huge_pages);
        let (huge, w) = config(&[("GCPIN_HUGEPAGES", "1")]);
        assert!(w.is_empty() && huge.huge_pages, "{w:?}");
        let (both, w) = config(&[("GCPIN_HUGEPAGES", "1"), ("GCPIN_CONCURRENT", "1")]);
        assert!(both.concurrent && !both.huge_pages, "never both");
        assert!(w.len() == 1 && w[0].contains("GCPIN_HUGEPAGES=1 is not used with GCPIN_CONCURRENT=1"), "{w:?}");
        let (many, w) = config(&[("GCPIN_MARKERS", "64")]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(many.markers, online_cores().min(64), "never more markers than cores");
        assert_eq!(c.gc_percent, None);
        assert_eq!(c.max_heap, Some(2 << 40));
        assert_eq!(c.arena_bytes, 4 << 40);
        assert!(c.trace);
        assert_eq!(c.stress, 7);
        assert_eq!(c.sig_suspend, libc::SIGUSR2);
        for (v, want) in [
            ("10", libc::SIGUSR1),
            ("usr1", libc::SIGUSR1),
            ("RTMIN+2", sigrtmin() + 2),
            ("SIGRTMAX", sigrtmax()),
            ("RTMAX-1", sigrtmax() - 1),
        ] {
            assert_eq!(config(&[("GCPIN_SIG_SUSPEND", v)]).0.sig_suspend, want, "{v}");
        }
    }
}
