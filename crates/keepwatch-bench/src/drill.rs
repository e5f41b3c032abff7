//! The failure drills' clients (`bench/drills.sh`): sessions with numbered output through the
//! gateway ([`load`]), the comparison of what each client received with what the recording
//! holds ([`check`]), and the flood of silent connections and wrong passwords ([`flood`])
//! timed against keystroke echo in real sessions ([`typing`]).
//!
//! Every drill session runs the same producer on the target ([`lines::producer_command`]):
//! lines `KWD <tag> <seq> <epoch µs> <padding>`, numbered from 1, at a fixed rate. The tag
//! names the client session, so a recording is matched to its client by reading it; the
//! sequence number and the producer's clock say how much output, in bytes and in time, one
//! side holds beyond the other.

pub(crate) mod check;
pub(crate) mod flood;
pub(crate) mod lines;
pub(crate) mod load;
pub(crate) mod procstat;
pub(crate) mod typing;

/// The median and the maximum of `values` (0 for none).
pub(crate) fn median_max(values: &mut [f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
    (median, values[n - 1])
}
