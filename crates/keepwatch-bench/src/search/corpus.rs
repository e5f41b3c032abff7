//! The synthetic corpus of the search benchmark: sessions of ~50 people on ~200 targets over
//! 90 days, shell-like command lines (paths, flags, packages, hostnames) and ls/ps/journalctl/
//! df/apt/log-like output, all from one seeded PRNG, with marker words planted in a known
//! number of commands each so the rare-word queries have known hit counts.
//!
//! The plan (session times, sizes, markers, queries) and the text come from separate PRNG
//! streams, so `--reuse` rebuilds the plan and the queries without generating the text again.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use keepwatch_core::{SessionId, SessionStatus};
use keepwatch_store::{CommandRow, SessionRow};

/// The newest moment of the corpus (2025-01-01T00:00:00Z): fixed, so every run is the same.
pub(super) const END_US: i64 = 1_735_689_600_000_000;
pub(super) const DAY_US: i64 = 86_400_000_000;
pub(super) const SPAN_DAYS: i64 = 90;
/// What the indexer keeps of one command's output (`keepwatch-index`'s `MAX_TEXT`).
const MAX_OUTPUT: usize = 64 * 1024;
/// How many commands each rare marker is planted in, cycled over the markers.
const MARKER_COUNTS: [u32; 6] = [1, 2, 3, 5, 8, 13];

/// splitmix64: small, fast, and the same sequence on every machine.
#[derive(Clone)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    pub(super) fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
    /// Uniform in `lo..=hi`.
    pub(super) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    pub(super) fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.index(items.len())]
    }
    pub(super) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// An independent stream.
    pub(super) fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }
}

/// How big the corpus is.
#[derive(Clone, Copy, Debug)]
pub(super) struct Size {
    pub sessions: u32,
    pub commands: u64,
    /// Output text in total, bytes.
    pub output_bytes: u64,
}

/// A planted marker: a made-up word that appears in exactly `commands` commands.
pub(super) struct Marker {
    pub word: String,
    pub commands: u32,
}

/// Everything about the corpus except its text.
pub(super) struct Plan {
    pub size: Size,
    pub people: Vec<String>,
    pub targets: Vec<String>,
    /// Per session: start time, person, target, commands.
    pub sessions: Vec<SessionPlan>,
    pub markers: Vec<Marker>,
    /// Global command index → (marker, planted in the command line rather than the output).
    plants: HashMap<u64, Vec<(usize, bool)>>,
    text_seed: u64,
}

pub(super) struct SessionPlan {
    pub started_at_us: i64,
    pub person: usize,
    pub target: usize,
    pub commands: u32,
}

impl Plan {
    pub(super) fn new(size: Size, seed: u64) -> Plan {
        let mut rng = Rng::new(seed);
        let text_seed = rng.next_u64();
        let people: Vec<String> = PEOPLE.iter().map(|p| (*p).to_owned()).collect();
        let targets = target_names();
        // Sessions start anywhere in the 90 days, in order (so commands are added roughly
        // in time order, as a live indexer adds them). Some people and targets are busier.
        let mut starts: Vec<i64> = (0..size.sessions)
            .map(|_| END_US - SPAN_DAYS * DAY_US + rng.below((SPAN_DAYS * DAY_US) as u64) as i64)
            .collect();
        starts.sort_unstable();
        let mut sessions = Vec::with_capacity(starts.len());
        let mut left = size.commands;
        for (i, started_at_us) in starts.into_iter().enumerate() {
            let sessions_left = u64::from(size.sessions) - i as u64;
            let commands = if sessions_left == 1 {
                left
            } else {
                let mean = left as f64 / sessions_left as f64;
                ((mean * (0.2 + 1.6 * rng.unit())).round() as u64).min(left)
            };
            left -= commands;
            sessions.push(SessionPlan {
                started_at_us,
                person: skewed(&mut rng, people.len()),
                target: skewed(&mut rng, targets.len()),
                commands: commands as u32,
            });
        }
        let markers = markers(&mut rng, 200);
        let mut plants: HashMap<u64, Vec<(usize, bool)>> = HashMap::new();
        if size.commands > 0 {
            for (m, marker) in markers.iter().enumerate() {
                let mut chosen = HashSet::new();
                while chosen.len() < (marker.commands as u64).min(size.commands) as usize {
                    chosen.insert(rng.below(size.commands));
                }
                // In order: a set's own order differs from run to run, and the draws below
                // would go to other commands (and the corpus differ) with the same seed.
                let mut chosen: Vec<u64> = chosen.into_iter().collect();
                chosen.sort_unstable();
                for g in chosen {
                    plants.entry(g).or_default().push((m, rng.chance(0.5)));
                }
            }
        }
        Plan { size, people, targets, sessions, markers, plants, text_seed }
    }

    /// How many lines a marker query finds: one per command it is planted in, and one more
    /// for each command line it is planted in (the line and its output's `id:` line).
    pub(super) fn marker_hits(&self, m: usize) -> u64 {
        self.plants
            .values()
            .flatten()
            .filter(|(planted, _)| *planted == m)
            .map(|(_, in_command)| if *in_command { 2 } else { 1 })
            .sum()
    }

    /// The text generator; `sessions()` yields each session with its commands, in order.
    pub(super) fn generator(&self) -> Generator<'_> {
        let mut rng = Rng::new(self.text_seed);
        let id_rng = rng.fork();
        Generator {
            plan: self,
            rng,
            id_rng,
            next_session: 0,
            next_command: 0,
            output_left: self.size.output_bytes,
        }
    }
}

/// People and targets are not equally busy: index from a mildly skewed distribution.
fn skewed(rng: &mut Rng, n: usize) -> usize {
    let u = rng.unit();
    ((u * u * 0.5 + u * 0.5) * n as f64) as usize % n
}

fn target_names() -> Vec<String> {
    let mut v = Vec::with_capacity(200);
    for role in ROLES {
        for i in 1..=20 {
            v.push(format!("{role}-{i:02}.{}", SITES[i % SITES.len()]));
        }
    }
    v
}

/// Made-up pronounceable words that occur nowhere in the vocabulary, each with at least one
/// letter past `f` so no hex id can contain one.
fn markers(rng: &mut Rng, n: usize) -> Vec<Marker> {
    const CONS: &[u8] = b"bdgklmnprstvz";
    const VOWELS: &[u8] = b"aeiou";
    let vocabulary = vocabulary_text();
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut w = String::with_capacity(10);
        for _ in 0..4 {
            w.push(CONS[rng.index(CONS.len())] as char);
            w.push(VOWELS[rng.index(VOWELS.len())] as char);
        }
        if !w.bytes().any(|b| b > b'f') || vocabulary.contains(&w) || !seen.insert(w.clone()) {
            continue;
        }
        out.push(Marker { word: w, commands: MARKER_COUNTS[out.len() % MARKER_COUNTS.len()] });
    }
    out
}

/// All fixed strings the generator uses, one per line (to keep markers out of them).
fn vocabulary_text() -> String {
    let lists: [&[&str]; 12] = [
        &PEOPLE,
        &ROLES,
        &SITES,
        &PACKAGES,
        &SERVICES,
        &DIRS,
        &FILES,
        &PROCS,
        &SYS_USERS,
        &CONFIG_LINES,
        &APP_MESSAGES,
        &NAMESPACES,
    ];
    let mut s = String::new();
    for l in lists {
        for w in l {
            s.push_str(w);
            s.push('\n');
        }
    }
    s.push_str(JOURNAL_WORDS);
    s
}

/// Words of the vocabulary (letters only, 4 or more), for the common-word queries.
pub(super) fn vocabulary_words() -> Vec<String> {
    let text = vocabulary_text();
    let mut words: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 4)
        .map(str::to_ascii_lowercase)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    words.sort();
    words
}

/// Path, flag and name fragments for the substring queries: well-known ones, then pieces cut
/// out of the middle of the vocabulary's paths and names.
pub(super) fn substrings(rng: &mut Rng, n: usize) -> Vec<String> {
    let mut out: Vec<String> = WELL_KNOWN_SUBSTRINGS.iter().map(|s| (*s).to_owned()).collect();
    let mut seen: HashSet<String> = out.iter().cloned().collect();
    let sources: Vec<&str> = DIRS
        .iter()
        .chain(FILES.iter())
        .chain(PACKAGES.iter())
        .chain(PROCS.iter())
        .copied()
        .collect();
    while out.len() < n {
        let s = rng.pick(&sources);
        if s.len() < 5 {
            continue;
        }
        let len = rng.range(4, 9.min(s.len() as u64 - 1)) as usize;
        let from = rng.index(s.len() - len + 1);
        let Some(piece) = s.get(from..from + len) else { continue };
        if piece.trim().len() == piece.len() && seen.insert(piece.to_owned()) {
            out.push(piece.to_owned());
        }
    }
    out.truncate(n);
    out
}

/// Makes the text, session by session.
pub(super) struct Generator<'a> {
    plan: &'a Plan,
    rng: Rng,
    id_rng: Rng,
    next_session: usize,
    next_command: u64,
    output_left: u64,
}

impl Iterator for Generator<'_> {
    type Item = (SessionRow, Vec<CommandRow>);

    fn next(&mut self) -> Option<Self::Item> {
        let sp = self.plan.sessions.get(self.next_session)?;
        self.next_session += 1;
        let person = &self.plan.people[sp.person];
        let target = &self.plan.targets[sp.target];
        let login = if self.rng.chance(0.7) { person.as_str() } else { "deploy" };
        let mut ctx = Ctx { host: target, login, at_us: sp.started_at_us };
        let mut rows = Vec::with_capacity(sp.commands as usize);
        let mut cwd = format!("/home/{login}");
        for seq in 1..=sp.commands {
            ctx.at_us += self.rng.range(2_000_000, 90_000_000) as i64;
            let commands_left = self.plan.size.commands - self.next_command;
            let mean = self.output_left as f64 / commands_left.max(1) as f64;
            let mut row = self.command(&ctx, mean, &mut cwd);
            row.seq = seq;
            row.at_us = ctx.at_us;
            row.start_offset_us = (ctx.at_us - sp.started_at_us) as u64;
            row.end_offset_us = Some(row.start_offset_us + self.rng.range(50_000, 3_000_000));
            if let Some(plants) = self.plan.plants.get(&self.next_command) {
                for &(m, in_command) in plants {
                    let word = &self.plan.markers[m].word;
                    if in_command {
                        let _ = write!(row.command, " && id {word}");
                        let _ = writeln!(row.output, "id: '{word}': no such user");
                    } else {
                        journal_prefix(&mut self.rng, &mut row.output, &ctx, "sshd");
                        let _ = writeln!(
                            row.output,
                            "Invalid user {word} from {} port {}",
                            ip(&mut self.rng),
                            self.rng.range(30_000, 65_000)
                        );
                    }
                }
            }
            self.output_left = self.output_left.saturating_sub(row.output.len() as u64);
            self.next_command += 1;
            rows.push(row);
        }
        let ended_at_us = ctx.at_us + self.rng.range(1_000_000, 600_000_000) as i64;
        let session = SessionRow {
            stated_reason: None,
            protocol: keepwatch_core::Protocol::Ssh,
            id: self.session_id(sp.started_at_us),
            person: person.clone(),
            target: target.clone(),
            target_host: format!("10.{}.{}.{}", sp.target / 100 + 1, sp.target % 100, 10),
            target_login: login.to_owned(),
            client_addr: format!("192.168.{}.{}:{}", sp.person / 10, sp.person % 250 + 2, 50_000),
            status: SessionStatus::Closed,
            reason: None,
            started_at_us: sp.started_at_us,
            ended_at_us: Some(ended_at_us),
            chain_head: None,
            seal_seq: None,
            seal_signature: None,
            node: None,
        };
        Some((session, rows))
    }
}

/// What a line of output needs to know about its session.
struct Ctx<'a> {
    host: &'a str,
    login: &'a str,
    at_us: i64,
}

#[derive(Clone, Copy)]
enum Out {
    Nothing,
    Short,
    Ls,
    Find,
    Ps,
    Journal,
    AccessLog,
    AppLog,
    Df,
    Apt,
    Config,
    Grep,
    Kube,
    Docker,
    Ss,
    Top,
}

impl Generator<'_> {
    fn session_id(&mut self, started_at_us: i64) -> SessionId {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.id_rng.next_u64().to_be_bytes());
        b[8..].copy_from_slice(&self.id_rng.next_u64().to_be_bytes());
        let ms = (started_at_us / 1000) as u64;
        b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        b[6] = 0x70 | (b[6] & 0x0f);
        b[8] = 0x80 | (b[8] & 0x3f);
        SessionId::from_bytes(b)
    }

    /// One command with its output; `mean` is the output size still owed per command.
    fn command(&mut self, ctx: &Ctx<'_>, mean: f64, cwd: &mut String) -> CommandRow {
        let r = &mut self.rng;
        let dir = r.pick(&DIRS);
        let file = r.pick(&FILES);
        let service = r.pick(&SERVICES);
        let (command, out, factor): (String, Out, f64) = match r.index(44) {
            0..=3 => {
                cwd.clear();
                cwd.push_str(dir);
                (format!("cd {dir}"), Out::Nothing, 0.0)
            }
            4..=6 => (format!("ls -la {dir}"), Out::Ls, 1.0),
            7 => (format!("ls -lh {dir}/"), Out::Ls, 0.6),
            8 => (format!("sudo systemctl restart {service}"), Out::Nothing, 0.0),
            9 | 10 => (format!("systemctl status {service} --no-pager"), Out::Journal, 0.5),
            11..=13 => (
                format!(
                    "sudo journalctl -u {service} --since \"{} hours ago\" --no-pager",
                    r.range(1, 48)
                ),
                Out::Journal,
                4.0,
            ),
            14 | 15 => {
                let log = r.pick(&["/var/log/syslog", "/var/log/auth.log", "/var/log/kern.log"]);
                (format!("tail -n {} {log}", r.range(20, 500)), Out::Journal, 2.0)
            }
            16 => (
                format!("tail -n 200 /var/log/nginx/{}", r.pick(&["access.log", "error.log"])),
                Out::AccessLog,
                2.0,
            ),
            17 | 18 => {
                let word = r.pick(&["error", "timeout", "denied", "PermitRootLogin", "listen"]);
                (format!("grep -rn \"{word}\" {dir}"), Out::Grep, 1.0)
            }
            19 => (format!("ps aux | grep {}", r.pick(&PROCS_SHORT)), Out::Ps, 0.2),
            20 => ("ps aux --sort=-%mem".into(), Out::Ps, 3.0),
            21 => (r.pick(&["df -h", "df -hT", "df -i"]).into(), Out::Df, 0.3),
            22 => (format!("du -sh {dir}/*"), Out::Find, 0.3),
            23 => {
                let a = r.pick(&PACKAGES);
                let b = r.pick(&PACKAGES);
                (format!("sudo apt-get install -y {a} {b}"), Out::Apt, 2.0)
            }
            24 => ("sudo apt-get update".into(), Out::Apt, 1.0),
            25 | 26 => (format!("cat {file}"), Out::Config, 1.0),
            27 => (format!("sudo vim {file}"), Out::Nothing, 0.0),
            28 => (
                r.pick(&[
                    "sudo visudo",
                    "sudoedit /etc/sudoers.d/deploy",
                    "sudo cat /etc/sudoers",
                    "sudo -l",
                ])
                .into(),
                Out::Config,
                0.3,
            ),
            29 => (
                format!(
                    "rm -rf {dir}/{}-{}",
                    r.pick(&["tmp", "cache", "old", "build"]),
                    r.range(1, 9999)
                ),
                Out::Nothing,
                0.0,
            ),
            30 => {
                let mode = r.pick(&["600", "640", "644", "755", "700", "u+x", "go-w"]);
                (format!("sudo chmod {mode} {file}"), Out::Nothing, 0.0)
            }
            31 => (
                format!("sudo chown {}:{} {dir}", r.pick(&SYS_USERS), r.pick(&SYS_USERS)),
                Out::Nothing,
                0.0,
            ),
            32 => (format!("kubectl get pods -n {} -o wide", r.pick(&NAMESPACES)), Out::Kube, 1.0),
            33 => (
                format!(
                    "kubectl logs -n {} deploy/{} --tail=200",
                    r.pick(&NAMESPACES),
                    r.pick(&PROCS_SHORT)
                ),
                Out::AppLog,
                2.0,
            ),
            34 => ("docker ps".into(), Out::Docker, 0.5),
            35 => (format!("docker logs --tail 100 {}", r.pick(&PROCS_SHORT)), Out::AppLog, 1.5),
            36 | 37 => (
                r.pick(&[
                    "uptime",
                    "whoami",
                    "id",
                    "hostname -f",
                    "uname -a",
                    "free -m",
                    "date -u",
                    "cat /etc/os-release",
                    "w",
                    "last -n 5",
                ])
                .into(),
                Out::Short,
                0.0,
            ),
            38 => (r.pick(&["ss -tlnp", "sudo ss -tunap", "netstat -tlnp"]).into(), Out::Ss, 0.5),
            39 => (
                format!("curl -sS -o /dev/null -w '%{{http_code}}' https://{}/healthz", ctx.host),
                Out::Short,
                0.0,
            ),
            40 => (
                format!(
                    "find {dir} -name '*.{}' -mtime -{}",
                    r.pick(&["log", "conf", "gz", "pem"]),
                    r.range(1, 30)
                ),
                Out::Find,
                1.0,
            ),
            41 => (
                format!("sudo tar czf /tmp/backup-{}.tar.gz {dir}", r.range(1000, 9999)),
                Out::Nothing,
                0.0,
            ),
            42 => (
                format!("ssh {}", r.pick(&["bastion", "db-01.fra1", "backup01"])),
                Out::Nothing,
                0.0,
            ),
            _ => ("top".into(), Out::Top, 1.0),
        };
        let budget = if factor > 0.0 {
            let jitter = -(1.0 - r.unit()).ln(); // exponential, mean 1
            ((mean * 1.03 * factor * jitter) as usize).min(MAX_OUTPUT)
        } else {
            0
        };
        let mut output = String::with_capacity(budget + 256);
        self.output(out, ctx, budget, &mut output);
        let truncated = output.len() > MAX_OUTPUT;
        if truncated {
            let mut cut = MAX_OUTPUT;
            while !output.is_char_boundary(cut) {
                cut -= 1;
            }
            output.truncate(cut);
        }
        let r = &mut self.rng;
        let (kind, full_screen) = match out {
            Out::Top => ("screen", true),
            _ if r.chance(0.06) => ("exec", false),
            _ => ("shell", false),
        };
        let prompt = if kind == "shell" {
            format!("{}@{}:{cwd}$ ", ctx.login, ctx.host)
        } else {
            String::new()
        };
        CommandRow {
            seq: 0,
            channel: 0,
            kind: kind.into(),
            at_us: 0,
            start_offset_us: 0,
            end_offset_us: None,
            command,
            prompt,
            output,
            confidence: if r.chance(0.03) { "inferred".into() } else { "exact".into() },
            output_truncated: truncated,
            full_screen,
            typed: None,
        }
    }

    fn output(&mut self, out: Out, ctx: &Ctx<'_>, budget: usize, s: &mut String) {
        let r = &mut self.rng;
        match out {
            Out::Nothing => {}
            Out::Short => {
                let _ = writeln!(
                    s,
                    " {} up {} days, {} users,  load average: 0.{:02}, 0.{:02}, 0.{:02}",
                    clock(ctx.at_us),
                    r.range(1, 400),
                    r.range(1, 6),
                    r.below(100),
                    r.below(100),
                    r.below(100)
                );
            }
            Out::Ls => {
                let _ = writeln!(s, "total {}", r.range(8, 9000));
                while s.len() < budget {
                    let perm = r.pick(&[
                        "-rw-r--r--",
                        "-rw-------",
                        "drwxr-xr-x",
                        "-rwxr-xr-x",
                        "lrwxrwxrwx",
                    ]);
                    let _ = writeln!(
                        s,
                        "{perm} {} {} {} {:>8} {} {}",
                        r.range(1, 4),
                        r.pick(&SYS_USERS),
                        r.pick(&SYS_USERS),
                        r.below(5_000_000),
                        ls_date(r, ctx.at_us),
                        basename(r.pick(&FILES))
                    );
                }
            }
            Out::Find => {
                while s.len() < budget.max(60) {
                    let _ = writeln!(
                        s,
                        "{}\t{}/{}-{}.{}",
                        human_size(r),
                        r.pick(&DIRS),
                        r.pick(&PROCS_SHORT),
                        r.range(1, 999),
                        r.pick(&["log", "conf", "gz", "pem", "json", "tmp"])
                    );
                }
            }
            Out::Ps => {
                s.push_str(
                    "USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND\n",
                );
                while s.len() < budget.max(160) {
                    let _ = writeln!(
                        s,
                        "{:<10} {:>6} {:>4.1} {:>4.1} {:>7} {:>6} {:<8} {:<4} {}   {}:{:02} {}",
                        r.pick(&SYS_USERS),
                        r.range(1, 400_000),
                        r.below(1000) as f64 / 10.0,
                        r.below(400) as f64 / 10.0,
                        r.range(2000, 4_000_000),
                        r.range(500, 900_000),
                        r.pick(&["?", "pts/0", "pts/1", "tty1"]),
                        r.pick(&["Ss", "S", "Sl", "R+", "Ssl", "I<"]),
                        &clock(ctx.at_us - r.below(DAY_US as u64) as i64)[..5],
                        r.below(300),
                        r.below(60),
                        r.pick(&PROCS)
                    );
                }
            }
            Out::Journal => {
                while s.len() < budget.max(100) {
                    let unit = r.pick(&PROCS_SHORT);
                    journal_prefix(r, s, ctx, unit);
                    journal_message(r, s, ctx);
                }
            }
            Out::AccessLog => {
                while s.len() < budget {
                    let _ = writeln!(
                        s,
                        "{} - - [{}] \"{} /{}/{}?page={} HTTP/1.1\" {} {} \"-\" \"{}\"",
                        ip(r),
                        clock(ctx.at_us),
                        r.pick(&["GET", "GET", "GET", "POST", "PUT", "DELETE"]),
                        r.pick(&[
                            "api/v1/users",
                            "api/v2/orders",
                            "static/js",
                            "healthz",
                            "login",
                            "admin"
                        ]),
                        r.range(1, 99_999),
                        r.range(1, 40),
                        r.pick(&["200", "200", "200", "304", "404", "500", "502", "301"]),
                        r.range(0, 80_000),
                        r.pick(&[
                            "curl/7.81.0",
                            "Mozilla/5.0 (X11; Linux x86_64)",
                            "kube-probe/1.29",
                            "Prometheus/2.48.0"
                        ])
                    );
                }
            }
            Out::AppLog => {
                while s.len() < budget {
                    let _ = writeln!(
                        s,
                        "{} {} [{}-{}] {} request_id={:016x} duration_ms={}",
                        iso(ctx.at_us - r.below(3_600_000_000) as i64),
                        r.pick(&["INFO ", "INFO ", "INFO ", "DEBUG", "WARN ", "ERROR"]),
                        r.pick(&PROCS_SHORT),
                        r.range(1, 16),
                        r.pick(&APP_MESSAGES),
                        r.next_u64(),
                        r.range(1, 5000)
                    );
                }
            }
            Out::Df => {
                s.push_str("Filesystem      Size  Used Avail Use% Mounted on\n");
                for dev in [
                    "/dev/sda1",
                    "tmpfs",
                    "/dev/nvme0n1p2",
                    "/dev/sdb1",
                    "overlay",
                    "/dev/mapper/vg0-data",
                ] {
                    let _ = writeln!(
                        s,
                        "{dev:<15} {:>4}G {:>4}G {:>4}G {:>3}% {}",
                        r.range(1, 2000),
                        r.range(1, 1500),
                        r.range(1, 900),
                        r.range(1, 99),
                        r.pick(&["/", "/run", "/boot", "/srv/data", "/var/lib/docker", "/home"])
                    );
                }
            }
            Out::Apt => {
                let mut n = 1;
                while s.len() < budget.max(200) {
                    let pkg = r.pick(&PACKAGES);
                    let v = format!(
                        "{}.{}.{}-{}ubuntu{}",
                        r.range(0, 9),
                        r.range(0, 30),
                        r.range(0, 20),
                        r.range(0, 5),
                        r.range(1, 9)
                    );
                    match r.index(3) {
                        0 => {
                            let _ = writeln!(
                                s,
                                "Get:{n} http://archive.ubuntu.com/ubuntu jammy-updates/main amd64 {pkg} amd64 {v} [{} kB]",
                                r.range(5, 9000)
                            );
                            n += 1;
                        }
                        1 => {
                            let _ = writeln!(s, "Unpacking {pkg} ({v}) over ({v}) ...");
                        }
                        _ => {
                            let _ = writeln!(s, "Setting up {pkg} ({v}) ...");
                        }
                    }
                }
            }
            Out::Config => {
                let _ =
                    writeln!(s, "# managed by ansible, do not edit ({})", iso(ctx.at_us - DAY_US));
                while s.len() < budget.max(120) {
                    s.push_str(r.pick(&CONFIG_LINES));
                    s.push('\n');
                }
            }
            Out::Grep => {
                while s.len() < budget {
                    let _ = writeln!(
                        s,
                        "{}:{}:{}",
                        r.pick(&FILES),
                        r.range(1, 900),
                        r.pick(&CONFIG_LINES)
                    );
                }
            }
            Out::Kube => {
                s.push_str("NAME                                READY   STATUS    RESTARTS   AGE   IP           NODE\n");
                while s.len() < budget {
                    let _ = writeln!(
                        s,
                        "{}-{:x}-{}   1/1     {}   {}          {}d   10.244.{}.{}   {}",
                        r.pick(&PROCS_SHORT),
                        r.next_u64() >> 28,
                        pod_suffix(r),
                        r.pick(&[
                            "Running",
                            "Running",
                            "Running",
                            "Pending",
                            "CrashLoopBackOff",
                            "Completed"
                        ]),
                        r.range(0, 40),
                        r.range(1, 300),
                        r.range(0, 255),
                        r.range(2, 254),
                        ctx.host
                    );
                }
            }
            Out::Docker => {
                s.push_str("CONTAINER ID   IMAGE                     COMMAND                  STATUS          PORTS      NAMES\n");
                while s.len() < budget.max(200) {
                    let name = r.pick(&PROCS_SHORT);
                    let _ = writeln!(
                        s,
                        "{:012x}   registry.internal/{name}:{}.{}   \"/entrypoint.sh\"   Up {} hours   0.0.0.0:{}->8080/tcp   {name}-{}",
                        r.next_u64() >> 16,
                        r.range(1, 9),
                        r.range(0, 40),
                        r.range(1, 900),
                        r.range(3000, 9999),
                        r.range(1, 9)
                    );
                }
            }
            Out::Ss => {
                s.push_str("State  Recv-Q Send-Q Local Address:Port  Peer Address:Port Process\n");
                while s.len() < budget.max(200) {
                    let _ = writeln!(
                        s,
                        "LISTEN 0      4096   {}:{}   0.0.0.0:*    users:((\"{}\",pid={},fd={}))",
                        r.pick(&["0.0.0.0", "127.0.0.1", "[::]", "127.0.0.53%lo"]),
                        r.pick(&["22", "80", "443", "5432", "6379", "9100", "8080", "53"]),
                        r.pick(&PROCS_SHORT),
                        r.range(300, 90_000),
                        r.range(3, 40)
                    );
                }
            }
            Out::Top => {
                let _ = writeln!(
                    s,
                    "top - {} up {} days,  load average: {}.{:02}, 0.{:02}, 0.{:02}\nTasks: {} total,   1 running\n%Cpu(s):  {}.{} us,  1.2 sy,  0.0 ni, 90.1 id\nMiB Mem :  {} total,  {} free",
                    clock(ctx.at_us),
                    r.range(1, 400),
                    r.below(4),
                    r.below(100),
                    r.below(100),
                    r.below(100),
                    r.range(90, 600),
                    r.below(60),
                    r.below(10),
                    r.range(2000, 64000),
                    r.range(100, 2000)
                );
                self.output(Out::Ps, ctx, budget, s);
            }
        }
    }
}

fn journal_prefix(r: &mut Rng, s: &mut String, ctx: &Ctx<'_>, unit: &str) {
    let at = ctx.at_us - r.below(7_200_000_000) as i64;
    let _ = write!(s, "{} {} {}[{}]: ", ls_date_time(at), ctx.host, unit, r.range(200, 400_000));
}

fn journal_message(r: &mut Rng, s: &mut String, ctx: &Ctx<'_>) {
    let _ = match r.index(16) {
        0 | 1 => writeln!(
            s,
            "Accepted publickey for {} from {} port {} ssh2: ED25519 SHA256:{}",
            ctx.login,
            ip(r),
            r.range(30_000, 65_000),
            base64ish(r, 43)
        ),
        2 => writeln!(
            s,
            "Failed password for invalid user {} from {} port {} ssh2",
            r.pick(&["admin", "oracle", "test", "ubuntu", "pi"]),
            ip(r),
            r.range(30_000, 65_000)
        ),
        3 | 4 => writeln!(
            s,
            "pam_unix(sudo:session): session opened for user root(uid=0) by {}(uid={})",
            ctx.login,
            r.range(1000, 1100)
        ),
        5 => writeln!(s, "Started {}.", r.pick(&SERVICES)),
        6 => writeln!(s, "Stopped {}.", r.pick(&SERVICES)),
        7 => writeln!(s, "{}: Failed with result 'exit-code'.", r.pick(&SERVICES)),
        8 => {
            writeln!(s, "(root) CMD (/usr/local/bin/{}.sh > /dev/null 2>&1)", r.pick(&PROCS_SHORT))
        }
        9 => writeln!(
            s,
            "Out of memory: Killed process {} ({}) total-vm:{}kB, anon-rss:{}kB",
            r.range(300, 400_000),
            r.pick(&PROCS_SHORT),
            r.range(100_000, 9_000_000),
            r.range(10_000, 4_000_000)
        ),
        10 => writeln!(
            s,
            "EXT4-fs ({}): re-mounted. Opts: errors=remount-ro",
            r.pick(&["sda1", "nvme0n1p2", "dm-0"])
        ),
        11 => writeln!(
            s,
            "upstream timed out (110: Connection timed out) while reading response header from upstream, client: {}, server: {}",
            ip(r),
            ctx.host
        ),
        12 => writeln!(
            s,
            "connect() failed (111: Connection refused) while connecting to upstream 10.0.{}.{}:{}",
            r.below(255),
            r.below(255),
            r.pick(&["8080", "9000", "5432"])
        ),
        13 => writeln!(
            s,
            "Received disconnect from {} port {}:11: disconnected by user",
            ip(r),
            r.range(30_000, 65_000)
        ),
        14 => writeln!(s, "{}", r.pick(&APP_MESSAGES)),
        _ => writeln!(
            s,
            "Reloading {} configuration (checking {}).",
            r.pick(&SERVICES),
            r.pick(&FILES)
        ),
    };
}

fn ip(r: &mut Rng) -> String {
    format!("10.{}.{}.{}", r.below(32), r.below(256), r.range(1, 254))
}

fn base64ish(r: &mut Rng, n: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..n).map(|_| A[r.index(A.len())] as char).collect()
}

fn pod_suffix(r: &mut Rng) -> String {
    const A: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5).map(|_| A[r.index(A.len())] as char).collect()
}

fn human_size(r: &mut Rng) -> String {
    format!("{}{}", r.range(1, 999), r.pick(&["K", "M", "G"]))
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn clock(us: i64) -> String {
    let secs = us.div_euclid(1_000_000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

fn ls_date(r: &mut Rng, at_us: i64) -> String {
    let at = at_us - r.below(200 * DAY_US as u64) as i64;
    let (_, m, d) = civil(at.div_euclid(DAY_US));
    format!("{} {:>2} {}", MONTHS[m as usize - 1], d, &clock(at)[..5])
}

fn ls_date_time(at_us: i64) -> String {
    let (_, m, d) = civil(at_us.div_euclid(DAY_US));
    format!("{} {:>2} {}", MONTHS[m as usize - 1], d, clock(at_us))
}

fn iso(at_us: i64) -> String {
    let (y, m, d) = civil(at_us.div_euclid(DAY_US));
    format!("{y}-{m:02}-{d:02}T{}.{:03}Z", clock(at_us), at_us.rem_euclid(1_000_000) / 1000)
}

pub(super) const PEOPLE: [&str; 50] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "xavier", "yasmin",
    "zoe", "aaron", "bianca", "cedric", "dmitri", "elena", "fatima", "gustav", "hana", "igor",
    "jonas", "kenji", "leila", "marco", "nadia", "oscar", "priya", "quentin", "rosa", "samir",
    "tanja", "ulrich", "vera", "wen", "ximena", "yusuf", "zara", "anders", "beatriz",
];
const ROLES: [&str; 10] =
    ["web", "api", "db", "cache", "queue", "worker", "build", "logs", "mon", "edge"];
const SITES: [&str; 4] = ["fra1", "ams2", "iad1", "sfo3"];
const NAMESPACES: [&str; 8] = [
    "default",
    "kube-system",
    "payments",
    "checkout",
    "monitoring",
    "ingress-nginx",
    "search",
    "auth",
];
const PACKAGES: [&str; 48] = [
    "nginx",
    "openssl",
    "libssl3",
    "curl",
    "postgresql-15",
    "postgresql-client-15",
    "redis-server",
    "python3",
    "python3-pip",
    "python3-venv",
    "nodejs",
    "openjdk-17-jre-headless",
    "git",
    "vim",
    "htop",
    "tmux",
    "jq",
    "rsync",
    "unzip",
    "docker-ce",
    "containerd.io",
    "kubectl",
    "helm",
    "prometheus-node-exporter",
    "fail2ban",
    "ufw",
    "certbot",
    "python3-certbot-nginx",
    "ca-certificates",
    "gnupg",
    "lsb-release",
    "build-essential",
    "libpq-dev",
    "zlib1g-dev",
    "libffi-dev",
    "apt-transport-https",
    "software-properties-common",
    "haproxy",
    "keepalived",
    "chrony",
    "rsyslog",
    "logrotate",
    "auditd",
    "sudo",
    "openssh-server",
    "bind9-dnsutils",
    "iproute2",
    "net-tools",
];
const SERVICES: [&str; 24] = [
    "nginx.service",
    "sshd.service",
    "cron.service",
    "docker.service",
    "containerd.service",
    "kubelet.service",
    "postgresql@15-main.service",
    "redis-server.service",
    "rsyslog.service",
    "systemd-journald.service",
    "systemd-resolved.service",
    "haproxy.service",
    "fail2ban.service",
    "node-exporter.service",
    "chrony.service",
    "auditd.service",
    "app-worker.service",
    "app-api.service",
    "certbot.timer",
    "logrotate.timer",
    "apt-daily.timer",
    "ufw.service",
    "keepalived.service",
    "unattended-upgrades.service",
];
const DIRS: [&str; 30] = [
    "/var/log",
    "/var/log/nginx",
    "/etc/nginx/sites-enabled",
    "/etc/nginx/conf.d",
    "/etc/ssh",
    "/etc/sudoers.d",
    "/opt/app/releases",
    "/opt/app/shared/config",
    "/home/deploy",
    "/home/deploy/.ssh",
    "/srv/data",
    "/srv/backups",
    "/tmp",
    "/var/lib/docker/volumes",
    "/var/lib/postgresql/15/main",
    "/etc/systemd/system",
    "/etc/cron.d",
    "/usr/local/bin",
    "/etc/letsencrypt/live",
    "/var/www/html",
    "/etc/haproxy",
    "/var/cache/apt/archives",
    "/etc/prometheus",
    "/var/lib/redis",
    "/etc/postgresql/15/main",
    "/root/.ssh",
    "/etc/kubernetes/manifests",
    "/var/spool/cron/crontabs",
    "/etc/apt/sources.list.d",
    "/run/user/1000",
];
const FILES: [&str; 40] = [
    "/etc/ssh/sshd_config",
    "/etc/ssh/ssh_config",
    "/etc/sudoers",
    "/etc/sudoers.d/deploy",
    "/etc/sudoers.d/90-cloud-init-users",
    "/etc/passwd",
    "/etc/group",
    "/etc/shadow",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/fstab",
    "/etc/crontab",
    "/etc/nginx/nginx.conf",
    "/etc/nginx/sites-enabled/default",
    "/etc/nginx/conf.d/upstream.conf",
    "/etc/haproxy/haproxy.cfg",
    "/etc/postgresql/15/main/postgresql.conf",
    "/etc/postgresql/15/main/pg_hba.conf",
    "/etc/redis/redis.conf",
    "/etc/systemd/system/app-api.service",
    "/etc/systemd/system/app-worker.service",
    "/home/deploy/.ssh/authorized_keys",
    "/root/.ssh/authorized_keys",
    "/home/deploy/.bash_history",
    "/root/.bashrc",
    "/opt/app/shared/config/database.yml",
    "/opt/app/shared/config/settings.toml",
    "/opt/app/current/.env",
    "/var/log/auth.log",
    "/var/log/syslog",
    "/var/log/nginx/access.log",
    "/var/log/nginx/error.log",
    "/etc/letsencrypt/live/example.com/fullchain.pem",
    "/etc/prometheus/prometheus.yml",
    "/etc/kubernetes/admin.conf",
    "/etc/docker/daemon.json",
    "/etc/logrotate.d/nginx",
    "/etc/fail2ban/jail.local",
    "/etc/apt/sources.list",
    "/etc/security/limits.conf",
];
const PROCS: [&str; 24] = [
    "/usr/sbin/sshd -D",
    "sshd: deploy@pts/0",
    "/usr/sbin/nginx -g daemon on; master_process on;",
    "nginx: worker process",
    "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
    "/usr/bin/containerd",
    "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main",
    "postgres: checkpointer",
    "postgres: walwriter",
    "/usr/bin/redis-server 127.0.0.1:6379",
    "/usr/sbin/cron -f -P",
    "/lib/systemd/systemd-journald",
    "/lib/systemd/systemd-resolved",
    "/usr/sbin/rsyslogd -n -iNONE",
    "/usr/bin/python3 /usr/bin/fail2ban-server -xf start",
    "/opt/app/bin/api --config /opt/app/shared/config/settings.toml",
    "/opt/app/bin/worker --queue default",
    "/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml",
    "/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg",
    "/usr/sbin/chronyd -F 1",
    "/usr/bin/node-exporter --collector.systemd",
    "-bash",
    "sudo -i",
    "[kworker/u4:2-events_unbound]",
];
const PROCS_SHORT: [&str; 16] = [
    "nginx",
    "sshd",
    "postgres",
    "redis",
    "dockerd",
    "kubelet",
    "cron",
    "haproxy",
    "api",
    "worker",
    "scheduler",
    "billing",
    "mailer",
    "ingest",
    "gateway",
    "exporter",
];
const SYS_USERS: [&str; 10] = [
    "root", "www-data", "postgres", "deploy", "nobody", "syslog", "redis", "systemd+", "_apt",
    "ubuntu",
];
const CONFIG_LINES: [&str; 32] = [
    "PermitRootLogin no",
    "PasswordAuthentication no",
    "PubkeyAuthentication yes",
    "AllowUsers deploy ops",
    "X11Forwarding no",
    "MaxAuthTries 3",
    "ClientAliveInterval 300",
    "Subsystem sftp /usr/lib/openssh/sftp-server",
    "%sudo   ALL=(ALL:ALL) ALL",
    "deploy ALL=(ALL) NOPASSWD: /usr/bin/systemctl restart app-*",
    "Defaults        env_reset",
    "Defaults        secure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin\"",
    "    listen 443 ssl http2;",
    "    server_name example.com www.example.com;",
    "    proxy_pass http://127.0.0.1:8080;",
    "    proxy_read_timeout 60s;",
    "    ssl_certificate /etc/letsencrypt/live/example.com/fullchain.pem;",
    "worker_processes auto;",
    "max_connections = 200",
    "shared_buffers = 4GB",
    "listen_addresses = 'localhost'",
    "host    all   all   10.0.0.0/8   scram-sha-256",
    "maxmemory 2gb",
    "maxmemory-policy allkeys-lru",
    "bind 127.0.0.1 -::1",
    "UUID=3f1c2d4e-9a8b-4c7d-b6e5-1a2b3c4d5e6f /  ext4  errors=remount-ro 0 1",
    "127.0.0.1 localhost",
    "nameserver 127.0.0.53",
    "options edns0 trust-ad",
    "*/5 * * * * root /usr/local/bin/backup.sh",
    "ExecStart=/opt/app/bin/api --config /opt/app/shared/config/settings.toml",
    "Restart=on-failure",
];
const APP_MESSAGES: [&str; 20] = [
    "request completed path=/api/v1/users status=200",
    "request completed path=/api/v2/orders status=201",
    "slow query detected table=orders rows=18234",
    "cache miss key=session:user",
    "retrying connection to postgres attempt=2",
    "connection reset by peer",
    "job finished queue=default job=SendInvoiceEmail",
    "job failed queue=mailers error=\"SMTP timeout\"",
    "health check ok",
    "certificate expires in 21 days",
    "rate limit exceeded client=10.4.2.19",
    "deadlock detected, rolling back transaction",
    "panic recovered: index out of range",
    "worker started concurrency=8",
    "shutting down gracefully",
    "config reloaded from /opt/app/shared/config/settings.toml",
    "token refresh failed: invalid_grant",
    "disk usage above threshold mount=/srv/data used=91%",
    "migration 20241102_add_index_orders applied",
    "upstream returned 502 Bad Gateway",
];
const JOURNAL_WORDS: &str = "Accepted publickey for from port ssh2 ED25519 SHA256 Failed password invalid user \
    pam_unix sudo session opened root uid Started Stopped Failed with result exit-code CMD \
    Out of memory Killed process total-vm anon-rss EXT4-fs re-mounted Opts errors remount-ro \
    upstream timed out Connection while reading response header client server connect failed \
    refused connecting Received disconnect disconnected Reloading configuration checking \
    Invalid id no such user request_id duration_ms managed ansible do not edit Get http archive \
    ubuntu jammy-updates main amd64 Unpacking over Setting up total Filesystem Size Used Avail Mounted \
    Running Pending CrashLoopBackOff Completed entrypoint hours LISTEN users pid fd top load average \
    Tasks running Cpu Mem free USER PID COMMAND STAT START TIME NAME READY STATUS RESTARTS AGE NODE \
    CONTAINER IMAGE PORTS NAMES registry internal State Recv-Q Send-Q Local Address Peer Process \
    days INFO DEBUG WARN ERROR GET POST PUT DELETE HTTP Mozilla Linux curl kube-probe Prometheus \
    healthz login admin static orders";
/// Fragments people search for: inside paths, flags and names.
const WELL_KNOWN_SUBSTRINGS: [&str; 24] = [
    "sudoers",
    "-rf",
    "/etc/ssh",
    "sshd_config",
    "authorized_keys",
    ".bash_history",
    "/etc/shadow",
    "NOPASSWD",
    "chmod 7",
    "rm -rf /",
    "PermitRootLogin",
    "id_rsa",
    "/tmp/backup",
    "--since",
    "0.0.0.0",
    ":443",
    "pg_hba",
    "kubectl logs",
    "Failed password",
    "apt-get install",
    "docker ps",
    "journalctl -u",
    "Out of memory",
    ".env",
];
