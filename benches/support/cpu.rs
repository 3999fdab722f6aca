//! CPU time used by each side of a benchmark, read from /proc: PostgreSQL
//! (the postmaster, its live backends, and the backends it has already
//! reaped), the clvd server process, and this process (the load generator)
//! with its reaped children (pgbench).

use std::{ops::Sub, path::Path};

use anyhow::Context;

/// CPU seconds used so far, by side.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    pub postgres: f64,
    pub server: f64,
    pub generator: f64,
    pub children: f64,
}

impl Sub for CpuTimes {
    type Output = CpuTimes;
    fn sub(self, o: CpuTimes) -> CpuTimes {
        CpuTimes {
            postgres: self.postgres - o.postgres,
            server: self.server - o.server,
            generator: self.generator - o.generator,
            children: self.children - o.children,
        }
    }
}

pub struct CpuClock {
    postmaster: u32,
    server: u32,
    ticks_per_second: f64,
}

/// From /proc/<pid>/stat: (ppid, utime + stime, cutime + cstime) in ticks.
fn stat(pid: u32) -> Option<(u32, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may
    // contain spaces: state is field 3, ppid 4, utime 14 ... cstime 17.
    let rest: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3)?.parse::<u64>().ok();
    Some((
        field(4)? as u32,
        field(14)? + field(15)?,
        field(16)? + field(17)?,
    ))
}

impl CpuClock {
    /// `pg_data_dir` holds postmaster.pid; `server` is clvd's process id.
    pub fn new(pg_data_dir: &Path, server: u32) -> anyhow::Result<Self> {
        let pid_file = std::fs::read_to_string(pg_data_dir.join("postmaster.pid"))
            .context("read postmaster.pid")?;
        let postmaster = pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .context("postmaster.pid has no pid")?;
        let ticks =
            nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.context("CLK_TCK")? as f64;
        Ok(Self {
            postmaster,
            server,
            ticks_per_second: ticks,
        })
    }

    pub fn now(&self) -> CpuTimes {
        let s = |ticks: u64| ticks as f64 / self.ticks_per_second;
        let (_, own, reaped) = stat(self.postmaster).unwrap_or_default();
        let live: u64 = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(stat)
            .filter(|(ppid, _, _)| *ppid == self.postmaster)
            .map(|(_, used, _)| used)
            .sum();
        let (_, server, _) = stat(self.server).unwrap_or_default();
        let (_, generator, children) = stat(std::process::id()).unwrap_or_default();
        CpuTimes {
            postgres: s(own + reaped + live),
            server: s(server),
            generator: s(generator),
            children: s(children),
        }
    }
}
