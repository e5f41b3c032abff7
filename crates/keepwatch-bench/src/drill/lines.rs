//! The drills' numbered output: the producer that prints it on the target, and
//! [`LineStats`], which follows it byte by byte (in the client, and in a recording) in
//! bounded memory.

/// Longest line a follower accepts; the producer's lines are far shorter.
const MAX_LINE: usize = 4096;
/// The first word of every line.
const MARK: &str = "KWD";

/// How the producer paces its output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// Lines printed per tick (one write).
    pub lines_per_tick: u32,
    /// Microseconds between ticks.
    pub tick_us: u64,
    /// Stop after this many seconds (0: run until the channel goes away).
    pub duration_s: u64,
    /// Bytes of padding per line, to set the line length.
    pub pad: usize,
}

/// The remote command: bash, no process per line (its own clock, `read -t` on a pipe it holds
/// both ends of to wait), one `printf` per tick. Ends with status 0 after `duration_s`.
pub(crate) fn producer_command(tag: &str, pace: &Pace) -> String {
    // No single quote inside: the whole script is one single-quoted word.
    const SCRIPT: &str = r#"tag=$1 per=$2 tick=$3 dur=$4 padn=$5
printf -v pad "%*s" "$padn" ""; pad=${pad// /.}; printf -v nl "\n"
exec 3<> <(:)
start=${EPOCHREALTIME/./}; end=$((start + dur * 1000000)); next=$start; seq=0
while :; do
  now=${EPOCHREALTIME/./}
  if ((dur > 0 && now >= end)); then break; fi
  buf=""
  for ((k = 0; k < per; k++)); do seq=$((seq + 1)); buf+="KWD $tag $seq $now $pad$nl"; done
  printf "%s" "$buf" || exit 1
  next=$((next + tick)); now=${EPOCHREALTIME/./}
  if ((next > now)); then d=$((next - now)); printf -v frac "%06d" $((d % 1000000)); read -t "$((d / 1000000)).$frac" -u 3; else next=$now; fi
done
exit 0"#;
    format!(
        "exec bash -c '{SCRIPT}' kwd {tag} {} {} {} {}",
        pace.lines_per_tick, pace.tick_us, pace.duration_s, pace.pad
    )
}

/// What one side (the client, or a recording) holds of one producer's output.
#[derive(Debug, Default, Clone)]
pub(crate) struct LineStats {
    /// The unfinished last line (at most [`MAX_LINE`] bytes).
    partial: Vec<u8>,
    /// Every byte, whole lines or not.
    pub bytes: u64,
    /// Bytes of whole lines.
    pub line_bytes: u64,
    pub lines: u64,
    pub tag: Option<String>,
    pub first_seq: u64,
    pub last_seq: u64,
    /// The producer's clock on the first and the last whole line.
    pub first_ts_us: u64,
    pub last_ts_us: u64,
    /// Lines that were not the next line of the same producer (malformed, a gap, another tag).
    pub problems: u64,
    pub first_problem: Option<String>,
}

impl LineStats {
    /// Follows `data`, the next bytes of the stream.
    pub(crate) fn push(&mut self, mut data: &[u8]) {
        self.bytes += data.len() as u64;
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            let (head, rest) = data.split_at(nl + 1);
            if self.partial.is_empty() {
                self.line(head);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(head);
                self.line(&line);
                line.clear();
                self.partial = line;
            }
            data = rest;
        }
        if self.partial.len() + data.len() > MAX_LINE {
            self.problem(format!("a line longer than {MAX_LINE} bytes"));
            self.partial.clear();
            return;
        }
        self.partial.extend_from_slice(data);
    }

    fn problem(&mut self, what: String) {
        self.problems += 1;
        if self.first_problem.is_none() {
            self.first_problem = Some(what);
        }
    }

    /// One whole line, with its newline.
    fn line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(&line[..line.len() - 1]);
        let mut words = text.split(' ');
        let parsed = match (words.next(), words.next(), words.next(), words.next()) {
            (Some(MARK), Some(tag), Some(seq), Some(ts)) => {
                seq.parse::<u64>().ok().zip(ts.parse::<u64>().ok()).map(|(s, t)| (tag, s, t))
            }
            _ => None,
        };
        let Some((tag, seq, ts)) = parsed else {
            let shown: String = text.chars().take(80).collect();
            self.problem(format!("not a drill line after line {}: {shown:?}", self.last_seq));
            return;
        };
        match &self.tag {
            None => {
                self.tag = Some(tag.to_owned());
                self.first_seq = seq;
                self.first_ts_us = ts;
            }
            Some(t) if t != tag => {
                self.problem(format!("tag {tag} after {t}"));
                return;
            }
            Some(_) if seq != self.last_seq + 1 => {
                self.problem(format!("line {seq} after line {}", self.last_seq));
            }
            Some(_) => {}
        }
        self.lines += 1;
        self.line_bytes += line.len() as u64;
        self.last_seq = seq;
        self.last_ts_us = ts;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(tag: &str, seq: u64, ts: u64) -> String {
        format!("KWD {tag} {seq} {ts} ....\n")
    }

    #[test]
    fn follows_lines_split_anywhere() {
        let text: String = (1..=5).map(|i| line("t-1", i, 1000 + i)).collect();
        for cut in 0..text.len() {
            let mut s = LineStats::default();
            s.push(&text.as_bytes()[..cut]);
            s.push(&text.as_bytes()[cut..]);
            assert_eq!((s.lines, s.first_seq, s.last_seq, s.problems), (5, 1, 5, 0), "cut {cut}");
            assert_eq!(s.last_ts_us, 1005);
            assert_eq!(s.bytes, text.len() as u64);
            assert_eq!(s.line_bytes, text.len() as u64);
        }
    }

    #[test]
    fn counts_gaps_other_tags_and_junk() {
        let mut s = LineStats::default();
        s.push(line("a", 1, 1).as_bytes());
        s.push(line("a", 3, 2).as_bytes());
        s.push(line("b", 4, 3).as_bytes());
        s.push(b"hello\nKWD a 4 9 x");
        assert_eq!(s.problems, 3);
        assert_eq!(s.first_problem.as_deref(), Some("line 3 after line 1"));
        assert_eq!((s.lines, s.last_seq), (2, 3));
        // Lines not taken (another tag, junk) and the unfinished one are bytes, not lines.
        let not_lines = line("b", 4, 3).len() + "hello\nKWD a 4 9 x".len();
        assert_eq!(s.bytes - s.line_bytes, not_lines as u64);
    }

    #[test]
    fn the_producer_script_is_one_quoted_word() {
        let pace = Pace { lines_per_tick: 2, tick_us: 100_000, duration_s: 3, pad: 10 };
        let cmd = producer_command("r1-0001", &pace);
        assert_eq!(cmd.matches('\'').count(), 2, "{cmd}");
        assert!(cmd.ends_with("kwd r1-0001 2 100000 3 10"));
    }
}
