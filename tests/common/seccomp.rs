//! Seccomp filters for the tests that hold a thread at one system call or fake a kernel's
//! answer (a filter applies to the calling thread and to what it starts or forks).

/// `seccomp_data.nr`, the system call's number.
const NR: u32 = 0;
/// `seccomp_data.args[0]` (its low word on x86-64).
const ARG0: u32 = 16;

/// One instruction of a filter program.
pub fn f(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Loads a word of `seccomp_data` (`k`: its offset).
pub const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
/// Jumps `jt` ahead if the loaded word is `k`, else `jf` ahead.
pub const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
/// Returns `k`, the action.
pub const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Installs a filter on the calling thread: system call `nr` (only with first argument
/// `arg0`, if given) returns `action` (`SECCOMP_RET_TRAP`, `SECCOMP_RET_ERRNO | errno`,
/// 0 to kill the thread, ...); every other call is allowed.
pub fn filter(nr: libc::c_long, arg0: Option<u32>, action: u32) {
    let mut prog = vec![f(LD_W_ABS, 0, 0, NR)];
    match arg0 {
        None => prog.push(f(JEQ_K, 0, 1, nr as u32)),
        Some(arg) => prog.extend([
            f(JEQ_K, 0, 3, nr as u32),
            f(LD_W_ABS, 0, 0, ARG0),
            f(JEQ_K, 0, 1, arg),
        ]),
    }
    prog.extend([
        f(RET_K, 0, 0, action),
        f(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]);
    install(prog);
}

/// Installs the filter program `prog` on the calling thread.
pub fn install(mut prog: Vec<libc::sock_filter>) {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: standard seccomp installation on this thread; the kernel copies the program,
    // which outlives the call.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &fprog as *const libc::sock_fprog
            ),
            0
        );
    }
}

/// Ends the calling process at once with `code` (a forked child of a test).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` ends the process without running anything of the parent's copy.
    unsafe { libc::_exit(code) }
}

/// Runs the test `test` of this test binary again, as a new program started under the
/// filters of the calling thread, with the environment variable `mode` set: 0 if it printed
/// `marker` (the check ran) and passed, 1 if it printed it and failed, 2 if it ran no check
/// (renamed, filtered out).
pub fn run_self(test: &str, mode: &str, marker: &str) -> u8 {
    let run = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--test-threads=1", "--nocapture"])
        .env(mode, "1")
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    let ran = String::from_utf8_lossy(&run.stdout).contains(marker);
    match (ran, run.status.code()) {
        (false, _) => 2,
        (true, Some(0)) => 0,
        (true, _) => 1,
    }
}
