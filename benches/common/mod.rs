//! What the microbenchmarks measure: the benchmark thread's own CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), not wall time. On a shared machine wall time
//! also counts the time the thread waits for a core, which made the same
//! benchmark's median vary twofold between runs on this project's 2-core box;
//! CPU time is the fairest cost measure there, as in `make bench`.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;
use std::time::Duration;

pub struct ThreadCpuTime;

pub type Criterion = criterion::Criterion<ThreadCpuTime>;

/// Thread CPU time; short runs, so `make bench-micro` takes about two
/// minutes; the command line overrides them (`cargo bench -- --measurement-time 10`).
pub fn config() -> Criterion {
    criterion::Criterion::default()
        .with_measurement(ThreadCpuTime)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

fn now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(status, 0, "no thread CPU clock");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        now()
    }
    fn end(&self, start: Duration) -> Duration {
        now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

/// Values are nanoseconds; shown as ns … s, throughputs in B/s … GiB/s.
struct Nanoseconds;

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (divisor, unit) = match typical {
            t if t < 1e3 => (1.0, "ns"),
            t if t < 1e6 => (1e3, "µs"),
            t if t < 1e9 => (1e6, "ms"),
            _ => (1e9, "s"),
        };
        values.iter_mut().for_each(|v| *v /= divisor);
        unit
    }

    fn scale_throughputs(
        &self,
        typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (per_iteration, binary, units): (f64, bool, [&'static str; 4]) = match *throughput {
            Throughput::Bytes(n) => (n as f64, true, ["B/s", "KiB/s", "MiB/s", "GiB/s"]),
            Throughput::BytesDecimal(n) => (n as f64, false, ["B/s", "KB/s", "MB/s", "GB/s"]),
            Throughput::Bits(n) => (n as f64, false, ["b/s", "Kb/s", "Mb/s", "Gb/s"]),
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => {
                (n as f64, false, ["elem/s", "Kelem/s", "Melem/s", "Gelem/s"])
            }
        };
        let step: f64 = if binary { 1024.0 } else { 1000.0 };
        let rate = |ns: f64| per_iteration * 1e9 / ns;
        let mut scale = 0;
        while scale < 3 && rate(typical) >= step.powi(scale + 1) {
            scale += 1;
        }
        let divisor = step.powi(scale);
        values.iter_mut().for_each(|v| *v = rate(*v) / divisor);
        units[scale as usize]
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
