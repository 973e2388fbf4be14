//! The glibc allocator's arena limit, set before the program starts its threads.
//!
//! glibc gives threads that allocate at the same time arenas of their own, up to
//! eight per core, and keeps each arena at its peak. The server does its database
//! work on a pool of blocking threads and a simulated fleet runs thousands of
//! agents, so one burst leaves each arena holding what the burst needed: in
//! `bench/emergency.sh` (10,000 agents installing at once) the server peaked at
//! 376 MiB with glibc's default and 117 MiB with two arenas, and every agent had
//! installed 9 s sooner.
//!
//! glibc reads the limit only when a program starts, so the binaries start
//! themselves again with `MALLOC_ARENA_MAX` set, before anything else runs (the
//! process keeps its id, arguments, descriptors and the rest of its environment).
//! An operator's own value is kept.

/// The environment variable glibc reads the arena limit from.
pub const VARIABLE: &str = "MALLOC_ARENA_MAX";

/// The arenas the binaries run with unless the operator chose otherwise.
pub const ARENAS: &str = "2";

/// Starts this program again with the arena limit when its environment does not set
/// one. Returns when the limit is already set, on platforms without glibc, or when
/// the program cannot be started again (it then runs with glibc's default).
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;

        if std::env::var_os(VARIABLE).is_some() {
            return;
        }
        let Ok(program) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let name = args.next().unwrap_or_else(|| program.clone().into_os_string());
        let err = std::process::Command::new(&program)
            .arg0(name)
            .args(args)
            .env(VARIABLE, ARENAS)
            .exec();
        eprintln!(
            "could not start {} again with {VARIABLE}={ARENAS} ({err}); running with glibc's default arenas",
            program.display()
        );
    }
}
