//! The process picker: the Python processes of the machine, filtered as
//! you type; Enter attaches with a visible progress indicator (the attach's
//! own steps, as its progress callback reports them), and a failed attach
//! shows the doctor's findings: every reason it could fail and the fix.
//!
//! Listing and attaching run on the runtime (the blocking pool for `/proc`
//! and the doctor), and their results come back over a channel drained in
//! [`Picker::on_tick`], so the screen never waits.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use peeka_attach::doctor::Severity;
use peeka_attach::MethodChoice;
use peeka_core::client::{AsyncSession, AttachConfig, AttachReport};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use super::processes::{self, ProcessEntry};
use super::theme;

/// How often the list is read again while it is on screen.
const RELIST_EVERY: Duration = Duration::from_secs(3);

/// A session the picker attached, with the attach's report.
#[derive(Debug)]
pub(crate) struct Attached {
    pub(crate) session: AsyncSession,
    pub(crate) report: AttachReport,
}

/// What a key did to the picker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PickerKey {
    /// Nothing for the application to do.
    Handled,
    /// The user wants to leave `peeka`.
    Quit,
}

/// One doctor finding, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FindingLine {
    pub(crate) severity: Severity,
    pub(crate) check: String,
    pub(crate) summary: String,
    pub(crate) fix: Option<String>,
}

/// Where the picker is.
#[derive(Debug)]
enum Phase {
    /// The list of processes.
    Listing,
    /// An attach in progress: its steps so far (the last one running).
    Attaching {
        pid: u32,
        started: Instant,
        steps: Vec<(String, Duration)>,
    },
    /// An attach failed: why, and the doctor's findings (once it ran).
    Failed {
        pid: u32,
        error: String,
        findings: Option<Vec<FindingLine>>,
        verdict: Option<String>,
    },
}

/// What the picker's tasks send back.
enum Message {
    Listed(Vec<ProcessEntry>),
    Progress(String, Duration),
    Attached(Box<Attached>),
    AttachFailed(String),
    Diagnosed {
        pid: u32,
        findings: Vec<FindingLine>,
        verdict: String,
    },
}

/// The process picker and the attach it starts.
#[derive(Debug)]
pub(crate) struct Picker {
    runtime: tokio::runtime::Handle,
    method: MethodChoice,
    timeout: Duration,
    processes: Vec<ProcessEntry>,
    listing: bool,
    listed_at: Option<Instant>,
    filter: String,
    selected: usize,
    preferred: Option<u32>,
    phase: Phase,
    /// The user wants to leave once the attach in progress is over.
    quitting: bool,
    tx: mpsc::Sender<Message>,
    rx: mpsc::Receiver<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("picker::Message")
    }
}

impl Picker {
    /// A picker that lists the processes on its first tick; `preferred`
    /// (the target attached last) is selected when listed.
    pub(crate) fn new(
        runtime: tokio::runtime::Handle,
        method: MethodChoice,
        timeout: Duration,
        preferred: Option<u32>,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        Self {
            runtime,
            method,
            timeout,
            processes: Vec::new(),
            listing: false,
            listed_at: None,
            filter: String::new(),
            selected: 0,
            preferred,
            phase: Phase::Listing,
            quitting: false,
            tx,
            rx,
        }
    }

    /// Whether an attach is in progress (it must not be abandoned: the
    /// application waits for it before quitting).
    pub(crate) fn is_attaching(&self) -> bool {
        matches!(self.phase, Phase::Attaching { .. })
    }

    /// Shows that the attach in progress is being finished safely, for
    /// the application to quit when it is over.
    pub(crate) fn finish_attach_then_quit(&mut self) {
        self.quitting = true;
    }

    /// The pid and the error of the attach that failed last, while shown.
    pub(crate) fn attach_failure(&self) -> Option<(u32, &str)> {
        match &self.phase {
            Phase::Failed { pid, error, .. } => Some((*pid, error.as_str())),
            _ => None,
        }
    }

    /// Starts attaching to `pid` at once (for `peeka PID`).
    pub(crate) fn attach_now(&mut self, pid: u32) {
        self.start_attach(pid);
    }

    /// The processes shown, after the filter.
    fn visible(&self) -> Vec<&ProcessEntry> {
        let filter = self.filter.to_lowercase();
        self.processes
            .iter()
            .filter(|p| p.matches(&filter))
            .collect()
    }

    fn relist(&mut self) {
        if self.listing {
            return;
        }
        self.listing = true;
        let tx = self.tx.clone();
        self.runtime.spawn_blocking(move || {
            let _ = tx.send(Message::Listed(processes::list()));
        });
    }

    fn start_attach(&mut self, pid: u32) {
        self.phase = Phase::Attaching {
            pid,
            started: Instant::now(),
            steps: Vec::new(),
        };
        let progress = self.tx.clone();
        let config = AttachConfig::new()
            .method(self.method)
            .timeout(self.timeout)
            .on_progress(move |p| {
                let _ = progress.send(Message::Progress(p.step.to_owned(), p.elapsed));
            });
        let tx = self.tx.clone();
        let runtime = self.runtime.clone();
        self.runtime.spawn(async move {
            match AsyncSession::attach(pid, &config).await {
                Ok((session, report)) => {
                    let _ = tx.send(Message::Attached(Box::new(Attached { session, report })));
                }
                Err(e) => {
                    let _ = tx.send(Message::AttachFailed(e.to_string()));
                    let diagnosed = runtime.spawn_blocking(move || diagnose(pid)).await;
                    if let Ok((findings, verdict)) = diagnosed {
                        let _ = tx.send(Message::Diagnosed {
                            pid,
                            findings,
                            verdict,
                        });
                    }
                }
            }
        });
    }

    /// Takes what the tasks sent; returns the session once attached.
    pub(crate) fn on_tick(&mut self) -> Option<Attached> {
        let due = self.listed_at.is_none_or(|at| at.elapsed() >= RELIST_EVERY);
        if matches!(self.phase, Phase::Listing) && due {
            self.relist();
        }
        for _ in 0..64 {
            let Ok(message) = self.rx.try_recv() else {
                break;
            };
            match message {
                Message::Listed(list) => self.set_processes(list),
                Message::Progress(step, elapsed) => {
                    if let Phase::Attaching { steps, .. } = &mut self.phase {
                        steps.push((step, elapsed));
                    }
                }
                Message::Attached(attached) => return Some(*attached),
                Message::AttachFailed(error) => {
                    if let Phase::Attaching { pid, .. } = self.phase {
                        self.phase = Phase::Failed {
                            pid,
                            error,
                            findings: None,
                            verdict: None,
                        };
                    }
                }
                Message::Diagnosed {
                    pid: diagnosed,
                    findings: found,
                    verdict: said,
                } => {
                    if let Phase::Failed {
                        pid,
                        findings,
                        verdict,
                        ..
                    } = &mut self.phase
                    {
                        if *pid == diagnosed {
                            *findings = Some(found);
                            *verdict = Some(said);
                        }
                    }
                }
            }
        }
        None
    }

    fn set_processes(&mut self, list: Vec<ProcessEntry>) {
        let keep = self.visible().get(self.selected).map(|p| p.pid);
        self.processes = list;
        self.listing = false;
        self.listed_at = Some(Instant::now());
        let wanted = keep.or(self.preferred.take());
        if let Some(pid) = wanted {
            if let Some(index) = self.visible().iter().position(|p| p.pid == pid) {
                self.selected = index;
            }
        }
        self.selected = self.selected.min(self.visible().len().saturating_sub(1));
    }

    /// Handles a key.
    pub(crate) fn on_key(&mut self, key: KeyEvent) -> PickerKey {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c')) {
            return PickerKey::Quit;
        }
        match &self.phase {
            Phase::Attaching { .. } => PickerKey::Handled,
            Phase::Failed { pid, .. } => {
                let pid = *pid;
                match key.code {
                    KeyCode::Char('r') => self.start_attach(pid),
                    KeyCode::Char('q') => return PickerKey::Quit,
                    KeyCode::Enter | KeyCode::Esc => {
                        self.phase = Phase::Listing;
                        self.listed_at = None;
                    }
                    _ => {}
                }
                PickerKey::Handled
            }
            Phase::Listing => self.on_list_key(key, ctrl),
        }
    }

    fn on_list_key(&mut self, key: KeyEvent, ctrl: bool) -> PickerKey {
        let shown = self.visible().len();
        match key.code {
            KeyCode::Esc if self.filter.is_empty() => return PickerKey::Quit,
            KeyCode::Esc => self.filter.clear(),
            KeyCode::Char('r') if ctrl => self.relist(),
            KeyCode::Up => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down => self.selected = (self.selected + 1).min(shown.saturating_sub(1)),
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(10),
            KeyCode::PageDown => self.selected = (self.selected + 10).min(shown.saturating_sub(1)),
            KeyCode::Home => self.selected = 0,
            KeyCode::End => self.selected = shown.saturating_sub(1),
            KeyCode::Enter => {
                if let Some(pid) = self.visible().get(self.selected).map(|p| p.pid) {
                    self.start_attach(pid);
                }
            }
            KeyCode::Backspace => {
                self.filter.pop();
                self.selected = 0;
            }
            KeyCode::Char(c) if !ctrl => {
                self.filter.push(c);
                self.selected = 0;
            }
            _ => {}
        }
        PickerKey::Handled
    }

    /// Draws the picker (the list, the attach's progress, or its failure).
    pub(crate) fn render(&self, frame: &mut Frame<'_>, area: Rect) {
        match &self.phase {
            Phase::Listing => self.render_list(frame, area),
            Phase::Attaching {
                pid,
                started,
                steps,
            } => self.render_attaching(frame, area, *pid, started.elapsed(), steps),
            Phase::Failed {
                pid,
                error,
                findings,
                verdict,
            } => render_failure(
                frame,
                area,
                *pid,
                error,
                findings.as_deref(),
                verdict.as_deref(),
            ),
        }
    }

    fn render_list(&self, frame: &mut Frame<'_>, area: Rect) {
        let [title, filter, table, hints] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(area);
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled("peeka", theme::header()),
                Span::raw(" · pick the Python process to attach to"),
            ])),
            title,
        );
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled("filter: ", theme::dim()),
                Span::raw(self.filter.as_str()),
                Span::styled("▏", theme::key()),
            ])),
            filter,
        );
        let visible = self.visible();
        let rows: Vec<Row<'_>> = visible
            .iter()
            .map(|p| {
                let (python, python_style) = match &p.python {
                    Ok(version) => (version.clone(), Style::default()),
                    Err(_) => ("?".to_owned(), theme::warn()),
                };
                let agent = if p.agent {
                    Cell::from(Span::styled("attached", theme::good()))
                } else {
                    Cell::from(Span::styled("-", theme::dim()))
                };
                Row::new(vec![
                    Cell::from(p.pid.to_string()),
                    Cell::from(Span::styled(python, python_style)),
                    Cell::from(p.user.clone()),
                    agent,
                    Cell::from(p.cmdline.clone()),
                ])
            })
            .collect();
        let empty = rows.is_empty();
        let header = Row::new(["PID", "PYTHON", "USER", "AGENT", "COMMAND"]).style(theme::header());
        let count = format!(
            " {} of {} Python processes{} ",
            visible.len(),
            self.processes.len(),
            if self.listing {
                " · reading /proc…"
            } else {
                ""
            }
        );
        let block = Block::default().borders(Borders::ALL).title(count);
        let widths = [
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Min(10),
        ];
        let mut state = TableState::default().with_selected((!empty).then_some(self.selected));
        frame.render_stateful_widget(
            Table::new(rows, widths)
                .header(header)
                .block(block)
                .row_highlight_style(theme::selected()),
            table,
            &mut state,
        );
        if empty {
            let message = if self.listed_at.is_none() {
                "reading /proc…".to_owned()
            } else if self.processes.is_empty() {
                "no Python process found; start one, or give its pid: peeka PID".to_owned()
            } else {
                format!(
                    "no process matches `{}`; Esc clears the filter",
                    self.filter
                )
            };
            let inner = Rect {
                x: table.x + 2,
                y: table.y + 2,
                width: table.width.saturating_sub(4),
                height: 1,
            };
            if table.height > 3 {
                frame.render_widget(Paragraph::new(message).style(theme::dim()), inner);
            }
        }
        let selected = visible.get(self.selected);
        let mut spans = hint_spans(&[
            ("type", "filter"),
            ("↑↓", "select"),
            ("enter", "attach"),
            ("ctrl-r", "refresh"),
            ("esc", "quit"),
        ]);
        if let Some(Err(why)) = selected.map(|p| &p.python) {
            spans.push(Span::styled(format!("  {why}"), theme::warn()));
        }
        frame.render_widget(Paragraph::new(Line::from(spans)), hints);
    }

    fn render_attaching(
        &self,
        frame: &mut Frame<'_>,
        area: Rect,
        pid: u32,
        elapsed: Duration,
        steps: &[(String, Duration)],
    ) {
        let command = self
            .processes
            .iter()
            .find(|p| p.pid == pid)
            .map(|p| format!(" ({})", theme::fit(&p.cmdline, 50)))
            .unwrap_or_default();
        let mut lines = vec![
            Line::from(vec![
                Span::styled(spinner(elapsed), theme::key()),
                Span::styled(format!(" attaching to process {pid}"), theme::header()),
                Span::raw(command),
            ]),
            Line::from(""),
        ];
        let last = steps.len().saturating_sub(1);
        for (index, (step, at)) in steps.iter().enumerate() {
            let mark = if index == last {
                Span::styled(spinner(elapsed), theme::key())
            } else {
                Span::styled("✓", theme::good())
            };
            lines.push(Line::from(vec![
                mark,
                Span::styled(
                    format!(" {:>7} ", theme::duration_ms(millis(*at))),
                    theme::dim(),
                ),
                Span::raw(step.clone()),
            ]));
        }
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            format!(
                "{} elapsed (gives up after {}; ctrl-c quits)",
                theme::duration_ms(millis(elapsed)),
                theme::duration_ms(millis(self.timeout))
            ),
            theme::dim(),
        )));
        if self.quitting {
            lines.push(Line::from(Span::styled(
                "quitting: finishing the attach safely; the target is being restored",
                theme::warn(),
            )));
        }
        let height = (lines.len() as u16 + 2).min(area.height);
        let popup = centered(area, 80, height);
        frame.render_widget(Clear, popup);
        frame.render_widget(
            Paragraph::new(lines)
                .block(Block::default().borders(Borders::ALL).title(" attach "))
                .wrap(Wrap { trim: false }),
            popup,
        );
    }
}

fn render_failure(
    frame: &mut Frame<'_>,
    area: Rect,
    pid: u32,
    error: &str,
    findings: Option<&[FindingLine]>,
    verdict: Option<&str>,
) {
    let mut lines = vec![
        Line::from(Span::styled(
            format!("error: could not attach to process {pid}"),
            theme::error(),
        )),
        Line::from(error.to_owned()),
        Line::from(""),
    ];
    match findings {
        None => lines.push(Line::from(Span::styled(
            "asking the doctor why…",
            theme::dim(),
        ))),
        Some(findings) => {
            lines.push(Line::from(Span::styled(
                "the doctor's findings (peeka-cli doctor PID prints them too):",
                theme::header(),
            )));
            for finding in findings {
                let style = match finding.severity {
                    Severity::Ok => theme::good(),
                    Severity::Warning => theme::warn(),
                    Severity::Blocker => theme::error(),
                };
                lines.push(Line::from(vec![
                    Span::styled(format!("{:<8}", finding.severity.label()), style),
                    Span::styled(format!("[{}] ", finding.check), theme::dim()),
                    Span::raw(finding.summary.clone()),
                ]));
                if let Some(fix) = &finding.fix {
                    lines.push(Line::from(vec![
                        Span::raw("        fix: "),
                        Span::raw(fix.clone()),
                    ]));
                }
            }
            if let Some(verdict) = verdict {
                lines.push(Line::from(""));
                lines.push(Line::from(Span::styled(
                    verdict.to_owned(),
                    theme::header(),
                )));
            }
        }
    }
    let [body, hints] = Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" attach failed "),
            )
            .wrap(Wrap { trim: false }),
        body,
    );
    frame.render_widget(
        Paragraph::new(Line::from(hint_spans(&[
            ("r", "retry"),
            ("enter/esc", "back to the list"),
            ("q", "quit"),
        ]))),
        hints,
    );
}

/// The doctor's findings about `pid` as shown, and its verdict.
fn diagnose(pid: u32) -> (Vec<FindingLine>, String) {
    let diagnosis = peeka_attach::doctor(pid);
    let findings = diagnosis
        .findings
        .iter()
        .map(|f| FindingLine {
            severity: f.severity,
            check: f.check.to_owned(),
            summary: f.summary.clone(),
            fix: f.fix.clone(),
        })
        .collect();
    let verdict = if diagnosis.can_attach() {
        let methods: Vec<&str> = diagnosis.usable_methods.iter().map(|m| m.name()).collect();
        format!(
            "the doctor expects an attach to work (with {}); retry with r, or give a longer --timeout",
            methods.join(", ")
        )
    } else {
        format!("process {pid} cannot be attached until the blockers above are fixed")
    };
    (findings, verdict)
}

/// `key: what` hints, as spans.
pub(crate) fn hint_spans(hints: &[(&str, &str)]) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    for (index, (key, what)) in hints.iter().enumerate() {
        if index > 0 {
            spans.push(Span::raw("  "));
        }
        spans.push(Span::styled((*key).to_owned(), theme::key()));
        spans.push(Span::styled(format!(" {what}"), theme::dim()));
    }
    spans
}

/// A braille spinner frame for `elapsed`.
pub(crate) fn spinner(elapsed: Duration) -> &'static str {
    const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
    FRAMES[(elapsed.as_millis() / 100 % FRAMES.len() as u128) as usize]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// A `width` x `height` rectangle centred in `area` (clipped to it).
pub(crate) fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::testing::{assert_screen, draw_to_text};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn entry(pid: u32, python: Result<&str, &str>, agent: bool, cmdline: &str) -> ProcessEntry {
        ProcessEntry {
            pid,
            python: python.map(str::to_owned).map_err(str::to_owned),
            user: "ana".into(),
            cmdline: cmdline.into(),
            agent,
        }
    }

    fn picker(runtime: &tokio::runtime::Runtime) -> Picker {
        let mut picker = Picker::new(
            runtime.handle().clone(),
            MethodChoice::Auto,
            Duration::from_secs(10),
            Some(2211),
        );
        picker.set_processes(vec![
            entry(1042, Ok("3.12.1"), false, "python3 -m http.server 8000"),
            entry(2211, Ok("3.11.7"), true, "/usr/bin/python3.11 shop.py --workers 4"),
            entry(3307, Err("cannot inspect process 3307: it belongs to another user; run peeka as that user or as root"), false, "python3 /srv/report.py"),
        ]);
        picker
    }

    #[test]
    fn the_list_shows_version_user_agent_and_command() {
        let runtime = runtime();
        let picker = picker(&runtime);
        assert_eq!(picker.selected, 1, "the remembered target is preselected");
        let screen = draw_to_text(90, 10, |frame, area| picker.render(frame, area));
        assert_screen("picker_list", &screen);
    }

    #[test]
    fn typing_filters_and_enter_attaches_the_selected_process() {
        let runtime = runtime();
        let mut picker = picker(&runtime);
        for c in "report".chars() {
            picker.on_key(KeyEvent::from(KeyCode::Char(c)));
        }
        assert_eq!(picker.visible().len(), 1);
        let screen = draw_to_text(90, 8, |frame, area| picker.render(frame, area));
        assert_screen("picker_filtered", &screen);
        assert_eq!(
            picker.on_key(KeyEvent::from(KeyCode::Esc)),
            PickerKey::Handled
        );
        assert_eq!(picker.visible().len(), 3);
        assert_eq!(picker.on_key(KeyEvent::from(KeyCode::Esc)), PickerKey::Quit);
    }

    #[test]
    fn an_attach_in_progress_shows_its_steps() {
        let runtime = runtime();
        let mut picker = picker(&runtime);
        picker.phase = Phase::Attaching {
            pid: 2211,
            started: Instant::now(),
            steps: vec![
                ("look for a running agent".into(), Duration::from_micros(40)),
                (
                    "attach (auto): inspect, inject the bootstrap, start the agent".into(),
                    Duration::from_micros(310),
                ),
            ],
        };
        let screen = draw_to_text(90, 12, |frame, area| picker.render(frame, area));
        // The spinner and the elapsed time move; the rest is fixed.
        assert!(
            screen.contains("attaching to process 2211 (/usr/bin/python3.11 shop.py --workers 4)"),
            "{screen}"
        );
        assert!(
            screen.contains("✓ 0.040ms look for a running agent"),
            "{screen}"
        );
        assert!(
            screen.contains("0.310ms attach (auto): inspect, inject the bootstrap"),
            "{screen}"
        );
        assert!(screen.contains("gives up after 10.00s"), "{screen}");
        assert!(picker.is_attaching());
        assert!(!screen.contains("finishing the attach safely"), "{screen}");
        // Quitting waits for the attach, and says so.
        picker.finish_attach_then_quit();
        let screen = draw_to_text(90, 12, |frame, area| picker.render(frame, area));
        assert!(
            screen.contains("quitting: finishing the attach safely; the target is being restored"),
            "{screen}"
        );
    }

    #[test]
    fn a_failed_attach_shows_the_doctors_findings() {
        let runtime = runtime();
        let mut picker = picker(&runtime);
        picker.phase = Phase::Failed {
            pid: 3307,
            error: "permission denied: process 3307 belongs to uid 1001".into(),
            findings: Some(vec![
                FindingLine {
                    severity: Severity::Ok,
                    check: "cpython".into(),
                    summary: "CPython 3.12.1 (shared libpython)".into(),
                    fix: None,
                },
                FindingLine {
                    severity: Severity::Blocker,
                    check: "ptrace_permission".into(),
                    summary: "process 3307 runs as uid 1001, you are uid 1000".into(),
                    fix: Some("run peeka as uid 1001 or as root".into()),
                },
            ]),
            verdict: Some(
                "process 3307 cannot be attached until the blockers above are fixed".into(),
            ),
        };
        let screen = draw_to_text(90, 12, |frame, area| picker.render(frame, area));
        assert_screen("picker_failed", &screen);
        picker.on_key(KeyEvent::from(KeyCode::Esc));
        assert!(matches!(picker.phase, Phase::Listing));
    }

    #[test]
    fn the_doctor_explains_a_pid_that_does_not_exist() {
        let (findings, verdict) = diagnose(u32::MAX);
        assert!(findings.iter().any(|f| f.severity == Severity::Blocker));
        assert!(verdict.contains("cannot be attached"), "{verdict}");
    }
}
