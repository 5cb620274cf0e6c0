//! What process pods wrote to stdout and stderr, kept for `kubectl logs`
//! (`GET .../pods/NAME/log`, served by `server::logs`).
//!
//! Per container the current run and the previous one (`--previous`) are kept,
//! each bounded to [`MAX_RUN_BYTES`] of text: older lines go first, as a
//! kubelet's log rotation drops old files. Lines are stored whole (stdout and
//! stderr interleaved in arrival order), each with the time it was read.
//! Entries are keyed by pod uid, so a pod recreated under the same name
//! starts empty; they are dropped when the pod controller forgets the pod.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// Text kept per container run (1 MiB; the kubelet rotates at 10 MiB).
pub const MAX_RUN_BYTES: usize = 1 << 20;
/// A longer line is cut here (the rest is dropped, as CRI splits long lines).
pub const MAX_LINE_BYTES: usize = 16 << 10;

#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Increases by one per line over every run of the container.
    pub seq: u64,
    pub time: DateTime<Utc>,
    pub text: String,
}

#[derive(Clone, Debug, Default)]
struct Run {
    lines: VecDeque<Line>,
    bytes: usize,
    /// Still being written (the process runs).
    open: bool,
    /// 0: no run yet; then 1, 2, ... per start.
    generation: u64,
}

#[derive(Debug, Default)]
struct LogState {
    current: Run,
    previous: Option<Run>,
    next_seq: u64,
}

/// The log of one container: its current and previous run.
#[derive(Debug)]
pub struct ContainerLog {
    state: Mutex<LogState>,
    /// Bumped on every change; followers wait on it.
    changed: watch::Sender<u64>,
}

/// A copy of one run's lines.
#[derive(Clone, Debug, PartialEq)]
pub struct RunView {
    pub lines: Vec<Line>,
    pub open: bool,
    pub generation: u64,
}

impl Default for ContainerLog {
    fn default() -> Self {
        Self {
            state: Mutex::new(LogState::default()),
            changed: watch::channel(0).0,
        }
    }
}

fn cut(text: &str) -> String {
    if text.len() <= MAX_LINE_BYTES {
        return text.to_string();
    }
    let mut end = MAX_LINE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

impl ContainerLog {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        // Every writer leaves whole lines behind: a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A new run begins: the current one (if any) becomes the previous one.
    pub fn start_run(&self) {
        {
            let mut s = self.lock();
            let generation = s.current.generation + 1;
            if s.current.generation > 0 {
                let mut done = std::mem::take(&mut s.current);
                done.open = false;
                s.previous = Some(done);
            }
            s.current = Run {
                open: true,
                generation,
                ..Run::default()
            };
        }
        self.notify();
    }

    /// Appends a line to the current run, dropping the oldest beyond the bound.
    pub fn push(&self, text: &str) {
        {
            let mut s = self.lock();
            let seq = s.next_seq;
            s.next_seq += 1;
            let text = cut(text);
            let run = &mut s.current;
            run.bytes += text.len() + 1;
            run.lines.push_back(Line {
                seq,
                time: Utc::now(),
                text,
            });
            while run.bytes > MAX_RUN_BYTES {
                match run.lines.pop_front() {
                    Some(old) => run.bytes -= old.text.len() + 1,
                    None => break,
                }
            }
        }
        self.notify();
    }

    /// The current run has ended (the process exited or was never started).
    pub fn end_run(&self) {
        self.lock().current.open = false;
        self.notify();
    }

    /// The last `tail` lines (all with `None`) of the current or previous run;
    /// `None` if there is no such run.
    pub fn view(&self, previous: bool, tail: Option<usize>) -> Option<RunView> {
        let s = self.lock();
        let run = if previous {
            s.previous.as_ref()?
        } else {
            &s.current
        };
        if run.generation == 0 {
            return None;
        }
        let skip = tail.map_or(0, |t| run.lines.len().saturating_sub(t));
        Some(RunView {
            lines: run.lines.iter().skip(skip).cloned().collect(),
            open: run.open,
            generation: run.generation,
        })
    }

    /// For a follower of run `generation` that has seen lines up to `seq`:
    /// the newer lines, and whether to keep following (the same run is still
    /// being written).
    pub fn since(&self, generation: u64, seq: Option<u64>) -> (Vec<Line>, bool) {
        let s = self.lock();
        if s.current.generation != generation {
            return (Vec::new(), false);
        }
        let lines = s
            .current
            .lines
            .iter()
            .filter(|l| seq.is_none_or(|seen| l.seq > seen))
            .cloned()
            .collect();
        (lines, s.current.open)
    }

    /// Changes with every line and every start or end of a run.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// (pod uid, container name) → its log.
type ByContainer = HashMap<(String, String), Arc<ContainerLog>>;

/// Every process pod's container logs, shared by the pod controller (writer)
/// and the API server (reader).
#[derive(Clone, Debug, Default)]
pub struct PodLogs {
    inner: Arc<Mutex<ByContainer>>,
}

impl PodLogs {
    fn lock(&self) -> MutexGuard<'_, ByContainer> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The log of container `name` of the pod with `uid`, made if new.
    pub fn container(&self, uid: &str, name: &str) -> Arc<ContainerLog> {
        self.lock()
            .entry((uid.to_string(), name.to_string()))
            .or_default()
            .clone()
    }

    pub fn get(&self, uid: &str, name: &str) -> Option<Arc<ContainerLog>> {
        self.lock()
            .get(&(uid.to_string(), name.to_string()))
            .cloned()
    }

    /// Forgets every container log of the pod with `uid`.
    pub fn remove_pod(&self, uid: &str) {
        self.lock().retain(|(u, _), _| u != uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(v: &RunView) -> Vec<&str> {
        v.lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn runs_tail_and_previous() {
        let log = ContainerLog::default();
        assert_eq!(log.view(false, None), None, "nothing ran yet");
        log.start_run();
        log.push("a");
        log.push("b");
        log.push("c");
        let v = log.view(false, Some(2)).unwrap();
        assert_eq!(texts(&v), ["b", "c"]);
        assert!(v.open);
        assert_eq!(log.view(true, None), None, "no previous run yet");
        log.end_run();
        log.start_run();
        log.push("d");
        assert_eq!(texts(&log.view(false, None).unwrap()), ["d"]);
        let prev = log.view(true, None).unwrap();
        assert_eq!(texts(&prev), ["a", "b", "c"]);
        assert!(!prev.open);
        assert_eq!(
            texts(&log.view(false, Some(0)).unwrap()),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn bounded_by_bytes_oldest_first() {
        let log = ContainerLog::default();
        log.start_run();
        let line = "x".repeat(1023); // 1 KiB with its newline
        for _ in 0..(MAX_RUN_BYTES / 1024 + 10) {
            log.push(&line);
        }
        let v = log.view(false, None).unwrap();
        assert_eq!(v.lines.len(), MAX_RUN_BYTES / 1024);
        assert_eq!(v.lines[0].seq, 10, "the first ten were dropped");
        log.push(&"é".repeat(MAX_LINE_BYTES));
        let last = log.view(false, Some(1)).unwrap().lines[0].text.clone();
        assert!(last.len() <= MAX_LINE_BYTES && last.len() > MAX_LINE_BYTES - 2);
    }

    #[test]
    fn followers_see_new_lines_until_the_run_ends() {
        let log = ContainerLog::default();
        log.start_run();
        log.push("a");
        let v = log.view(false, None).unwrap();
        let seen = v.lines.last().map(|l| l.seq);
        log.push("b");
        let (new, more) = log.since(v.generation, seen);
        assert_eq!(
            new.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert!(more);
        log.end_run();
        let (new, more) = log.since(v.generation, new.last().map(|l| l.seq));
        assert!(new.is_empty() && !more);
        log.start_run();
        assert_eq!(log.since(v.generation, None), (Vec::new(), false));
    }

    #[test]
    fn keyed_by_pod_uid() {
        let logs = PodLogs::default();
        logs.container("u1", "c").start_run();
        logs.container("u1", "c").push("x");
        assert!(logs.get("u2", "c").is_none());
        assert_eq!(
            logs.get("u1", "c")
                .unwrap()
                .view(false, None)
                .unwrap()
                .lines
                .len(),
            1
        );
        logs.remove_pod("u1");
        assert!(logs.get("u1", "c").is_none());
    }
}
