//! Which points run (bounded in `make test`, all with `CHAOS_POINTS=all`),
//! running them a few at a time, and the report.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::flows::{ALL, Flow};
use super::point::{self, Harness, Kill, Outcome};

pub struct Settings {
    pub all: bool,
    /// Every `stride`-th k when not `all`.
    pub stride: u64,
    /// Random schedules: at least this many points in all when `all`, this
    /// many random ones otherwise.
    pub random: usize,
    pub min_points: usize,
    pub seed: u64,
    pub parallel: usize,
    /// `CHAOS_ONLY=<flow>:<k>`: that one point (reproducing a finding);
    /// `<flow>:switch<n>` kills right after the n-th Service write.
    pub only: Option<(String, String)>,
}

impl Settings {
    pub fn from_env() -> Settings {
        let var = |k: &str| std::env::var(k).ok();
        let all = var("CHAOS_POINTS").as_deref() == Some("all");
        let seed = var("CHAOS_SEED")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        Settings {
            all,
            stride: 5,
            random: if all { 0 } else { 3 },
            min_points: var("CHAOS_MIN_POINTS")
                .and_then(|s| s.parse().ok())
                .unwrap_or(if all { 520 } else { 0 }),
            seed,
            only: var("CHAOS_ONLY").and_then(|o| {
                let (flow, k) = o.split_once(':')?;
                Some((flow.to_owned(), k.to_owned()))
            }),
            parallel: var("CHAOS_PARALLEL")
                .and_then(|s| s.parse().ok())
                .unwrap_or(4)
                .max(1),
        }
    }
}

/// splitmix64: a seeded sequence, enough to pick schedules (no dependency
/// whose API might change under the seed's meaning).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

struct Baseline {
    writes: u64,
    /// How long the flow took to reach its end without kills.
    elapsed: Duration,
    outcome: Outcome,
}

struct Done {
    flow: Flow,
    outcome: Outcome,
    violations: Vec<String>,
}

pub struct Report {
    baselines: BTreeMap<Flow, Baseline>,
    points: Vec<Done>,
    seed: u64,
    wall: Duration,
    random: usize,
}

pub async fn run(h: &Harness, s: &Settings) -> Report {
    let started = Instant::now();
    // Each flow once without kills: its writes N, its duration, its end.
    let baselines: Vec<(Flow, Outcome)> = futures::stream::iter(ALL)
        .map(|flow| async move {
            let ns = format!("{}-base", flow.name());
            (flow, point::run(h, flow, &ns, &[]).await)
        })
        .buffer_unordered(s.parallel)
        .collect()
        .await;
    let baselines: BTreeMap<Flow, Baseline> = baselines
        .into_iter()
        .map(|(flow, outcome)| {
            (
                flow,
                Baseline {
                    writes: outcome.writes,
                    elapsed: outcome.driven,
                    outcome,
                },
            )
        })
        .collect();

    let (schedules, random) = schedules(&baselines, s);
    let points: Vec<Done> = futures::stream::iter(schedules.into_iter().enumerate())
        .map(|(i, (flow, schedule))| {
            let baseline = &baselines[&flow];
            async move {
                let ns = format!("{}-{i}", flow.name());
                let outcome = point::run(h, flow, &ns, &schedule).await;
                let violations = compare(&outcome, &baseline.outcome)
                    .into_iter()
                    .chain(outcome.violations.iter().cloned())
                    .map(|v| format!("{} {schedule:?} (ns {ns}): {v}", flow.name()))
                    .collect::<Vec<_>>();
                if std::env::var("CHAOS_VERBOSE").is_ok() {
                    eprintln!(
                        "{ns} {schedule:?}: {} kills, {} writes, {} violations, {:.1}s",
                        outcome.kills,
                        outcome.writes,
                        violations.len(),
                        outcome.elapsed.as_secs_f64()
                    );
                }
                Done {
                    flow,
                    outcome,
                    violations,
                }
            }
        })
        .buffer_unordered(s.parallel)
        .collect()
        .await;
    Report {
        baselines,
        points,
        seed: s.seed,
        wall: started.elapsed(),
        random,
    }
}

/// The kill schedules, distinct, and how many of them are random.
fn schedules(
    baselines: &BTreeMap<Flow, Baseline>,
    s: &Settings,
) -> (Vec<(Flow, Vec<Kill>)>, usize) {
    let mut set: BTreeSet<(Flow, Vec<Kill>)> = BTreeSet::new();
    if let Some((name, k)) = &s.only {
        let flow = ALL.into_iter().find(|f| f.name() == name);
        let kill = match k.strip_prefix("switch") {
            Some(n) => n.parse().ok().map(Kill::ServiceWrite),
            None => k.parse().ok().map(Kill::Writes),
        };
        let point = flow.zip(kill).map(|(f, kill)| (f, vec![kill]));
        return (point.into_iter().collect(), 0);
    }
    for (flow, b) in baselines {
        let step = if s.all { 1 } else { s.stride as usize };
        // Right after each switch: the step a restart must not lose.
        for n in 1..=3 {
            set.insert((*flow, vec![Kill::ServiceWrite(n)]));
        }
        for k in (0..b.writes).step_by(step) {
            set.insert((*flow, vec![Kill::Writes(k)]));
            if s.all {
                // The replacement dies too, at its first write.
                set.insert((*flow, vec![Kill::Writes(k), Kill::Writes(0)]));
            }
        }
    }
    let fixed = set.len();
    let want = (fixed + s.random).max(s.min_points);
    let mut rng = Rng(s.seed);
    let flows: Vec<&Flow> = baselines.keys().collect();
    let mut tries = 0;
    while set.len() < want && tries < want * 100 {
        tries += 1;
        let flow = *flows[rng.below(flows.len() as u64) as usize];
        let b = &baselines[&flow];
        let kills = 1 + rng.below(3) as usize;
        let schedule = (0..kills)
            .map(|_| {
                if rng.below(2) == 0 {
                    Kill::Millis(rng.below(b.elapsed.as_millis() as u64 + 1))
                } else {
                    Kill::Writes(rng.below(b.writes + 1))
                }
            })
            .collect();
        set.insert((flow, schedule));
    }
    let random = set.len() - fixed;
    (set.into_iter().collect(), random)
}

/// A point against the same flow without kills: the same end, nothing more
/// created, no Event repeated.
fn compare(point: &Outcome, baseline: &Outcome) -> Vec<String> {
    let mut v = Vec::new();
    if point.snapshot != baseline.snapshot {
        v.push(format!(
            "the final state differs from the run without kills:\n  got  {}\n  want {}",
            point.snapshot, baseline.snapshot
        ));
    }
    let extra = |got: &BTreeSet<String>, want: &BTreeSet<String>, kind: &str| {
        let leaked: Vec<&String> = got.difference(want).collect();
        (!leaked.is_empty()).then(|| format!("{kind} the run without kills never had: {leaked:?}"))
    };
    v.extend(extra(
        &point.seen.replica_sets,
        &baseline.seen.replica_sets,
        "ReplicaSets",
    ));
    v.extend(extra(
        &point.seen.services,
        &baseline.seen.services,
        "Services",
    ));
    v.extend(extra(
        &point.seen.analyses,
        &baseline.seen.analyses,
        "CanaryAnalyses",
    ));
    v.extend(super::checks::duplicate_events(
        &point.events,
        &baseline.events,
    ));
    v
}

impl Report {
    pub fn violations(&self) -> Vec<String> {
        let base = self.baselines.iter().flat_map(|(flow, b)| {
            b.outcome
                .violations
                .iter()
                .map(move |v| format!("{} without kills: {v}", flow.name()))
        });
        base.chain(
            self.points
                .iter()
                .flat_map(|p| p.violations.iter().cloned()),
        )
        .collect()
    }

    pub fn kills(&self) -> usize {
        self.points.iter().map(|p| p.outcome.kills).sum()
    }

    /// Reasons the run without kills recorded that a point lacks: an Event
    /// lost when the operator died between a plan's writes and its Events
    /// (at most once, by design; counted, not a violation).
    fn lost_events(&self, p: &Done) -> usize {
        fn reasons(o: &Outcome) -> BTreeMap<&str, usize> {
            let mut m: BTreeMap<&str, usize> = BTreeMap::new();
            for ((reason, _), n) in &o.events {
                *m.entry(reason.as_str()).or_insert(0) += n;
            }
            m
        }
        let want = reasons(&self.baselines[&p.flow].outcome);
        let got = reasons(&p.outcome);
        want.iter()
            .map(|(r, n)| n.saturating_sub(got.get(r).copied().unwrap_or(0)))
            .sum()
    }

    pub fn table(&self) -> String {
        let mut out =
            String::from("flow         writes  points  kills  violations  lost-events  slowest\n");
        for (flow, b) in &self.baselines {
            let ps: Vec<&Done> = self.points.iter().filter(|p| p.flow == *flow).collect();
            let slowest = ps
                .iter()
                .map(|p| p.outcome.elapsed)
                .max()
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<12} {:>6}  {:>6}  {:>5}  {:>10}  {:>11}  {:.1}s (no kills: {:.1}s)\n",
                flow.name(),
                b.writes,
                ps.len(),
                ps.iter().map(|p| p.outcome.kills).sum::<usize>(),
                ps.iter().map(|p| p.violations.len()).sum::<usize>() + b.outcome.violations.len(),
                ps.iter().map(|p| self.lost_events(p)).sum::<usize>(),
                slowest.as_secs_f64(),
                b.elapsed.as_secs_f64(),
            ));
        }
        out
    }

    pub fn summary_line(&self) -> String {
        let killed = self.points.iter().filter(|p| p.outcome.kills > 0).count();
        format!(
            "chaos: {} points ({} random, seed {}), {} of them killed the operator ({} kills), {} violations, {:.0} s",
            self.points.len(),
            self.random,
            self.seed,
            killed,
            self.kills(),
            self.violations().len(),
            self.wall.as_secs_f64()
        )
    }
}
