//! View 9, logger: the target's loggers and their levels, changed
//! interactively.
//!
//! The list is read when the view first shows and on `r`; `/` filters it
//! by name. Up/Down select a logger, whose details (own and effective
//! level, handlers, propagate) are read on the side; Enter opens a level
//! picker, and the level chosen is set in the target at once
//! (`logger --action set`), after which list and details are read again.

use crossterm::event::{KeyCode, KeyEvent};
use peeka_core::client::{LevelChange, LoggerDetail, LoggerList, LoggerSummary};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Cell, Clear, HighlightSpacing, List, ListState, Paragraph, Row, Table, TableState, Wrap,
};
use ratatui::Frame;

use super::request_task::{RequestTask, Reread};
use crate::tui::theme;
use crate::tui::view::{Ctx, KeyOutcome, View};

/// The levels the picker offers.
const LEVELS: [&str; 6] = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "NOTSET"];

/// The logger view.
#[derive(Debug)]
pub(crate) struct LoggerView {
    list: Option<LoggerList>,
    error: Option<String>,
    loading: Reread<LoggerList>,
    filter: String,
    filtering: bool,
    selected: usize,
    detail: Option<LoggerDetail>,
    detail_task: Option<(String, RequestTask<LoggerDetail>)>,
    /// The level picker: the index of the level highlighted, while open.
    picker: Option<usize>,
    setting: Option<RequestTask<LevelChange>>,
    message: Option<Line<'static>>,
}

impl Default for LoggerView {
    fn default() -> Self {
        Self::new()
    }
}

impl LoggerView {
    /// A logger view; the list is read when it first shows.
    pub(crate) fn new() -> Self {
        Self {
            list: None,
            error: None,
            loading: Reread::new(),
            filter: String::new(),
            filtering: false,
            selected: 0,
            detail: None,
            detail_task: None,
            picker: None,
            setting: None,
            message: None,
        }
    }

    fn refresh(&mut self, ctx: &Ctx) {
        self.loading.start(
            ctx,
            |session| async move { session.logger_list(None).await },
        );
    }

    fn visible(&self) -> Vec<&LoggerSummary> {
        let Some(list) = &self.list else {
            return Vec::new();
        };
        let filter = self.filter.to_lowercase();
        list.loggers
            .iter()
            .filter(|l| filter.is_empty() || l.name.to_lowercase().contains(&filter))
            .collect()
    }

    fn selected_name(&self) -> Option<String> {
        let visible = self.visible();
        visible
            .get(self.selected.min(visible.len().saturating_sub(1)))
            .map(|l| l.name.clone())
    }

    /// Reads the selected logger's details unless they are there or asked.
    fn want_detail(&mut self, ctx: &Ctx) {
        let Some(name) = self.selected_name() else {
            return;
        };
        if self.detail.as_ref().is_some_and(|d| d.name == name) || self.detail_task.is_some() {
            return;
        }
        let session = ctx.session.clone();
        let asked = name.clone();
        let task = RequestTask::spawn(
            &ctx.runtime,
            async move { session.logger_get(&asked).await },
        );
        self.detail_task = Some((name, task));
    }

    fn set_level(&mut self, level: &'static str, ctx: &Ctx) {
        let Some(name) = self.selected_name() else {
            return;
        };
        let session = ctx.session.clone();
        self.setting = Some(RequestTask::spawn(&ctx.runtime, async move {
            session.logger_set(&name, level).await
        }));
    }

    fn render_list(&self, frame: &mut Frame<'_>, area: Rect) {
        let visible = self.visible();
        let rows = visible.iter().map(|l| {
            let own = if l.level == 0 {
                Span::styled("-", theme::dim())
            } else {
                Span::raw(l.level_name.clone())
            };
            let name_style = if l.disabled {
                theme::dim()
            } else {
                theme::name()
            };
            Row::new(vec![
                Cell::from(l.name.clone()).style(name_style),
                Cell::from(own),
                Cell::from(l.effective_level_name.clone()).style(level_style(l.effective_level)),
                Cell::from(format!("{:>3}", l.handlers)),
            ])
        });
        let title = match &self.list {
            Some(list) => format!(
                " {} of {} loggers{} ",
                visible.len(),
                list.total,
                if self.filter.is_empty() {
                    String::new()
                } else {
                    format!(" matching `{}`", self.filter)
                }
            ),
            None => " loggers ".into(),
        };
        let table = Table::new(
            rows,
            [
                Constraint::Fill(1),
                Constraint::Length(8),
                Constraint::Length(9),
                Constraint::Length(3),
            ],
        )
        .header(Row::new(["name", "level", "effective", "hdl"]).style(theme::header()))
        .block(Block::bordered().title(title).border_style(theme::dim()))
        .row_highlight_style(theme::selected())
        .highlight_symbol("> ")
        .highlight_spacing(HighlightSpacing::Always);
        let mut state = TableState::default()
            .with_selected(Some(self.selected.min(visible.len().saturating_sub(1))));
        frame.render_stateful_widget(table, area, &mut state);
    }

    fn detail_lines(d: &LoggerDetail) -> Vec<Line<'static>> {
        let mut lines = vec![
            Line::from(Span::styled(d.name.clone(), theme::name())),
            Line::from(vec![
                Span::raw("level "),
                Span::raw(if d.level == 0 {
                    "NOTSET (inherits)".into()
                } else {
                    d.level_name.clone()
                }),
            ]),
            Line::from(vec![
                Span::raw("effective "),
                Span::styled(
                    d.effective_level_name.clone(),
                    level_style(d.effective_level),
                ),
            ]),
            Line::from(format!(
                "propagate {}{}",
                if d.propagate { "yes" } else { "no" },
                if d.disabled { "  DISABLED" } else { "" }
            )),
        ];
        if d.disable > 0 {
            lines.push(Line::from(Span::styled(
                format!("logging.disable() is at level {}", d.disable),
                theme::warn(),
            )));
        }
        lines.push(Line::from(Span::styled(
            format!("handlers ({})", d.handlers.len()),
            theme::header(),
        )));
        for h in &d.handlers {
            let target = h
                .filename
                .clone()
                .or_else(|| h.stream.clone())
                .unwrap_or_default();
            lines.push(Line::from(format!(
                "  {} {} {}",
                h.type_name,
                h.level_name.as_deref().unwrap_or("NOTSET"),
                target
            )));
            if let Some(format) = &h.format {
                lines.push(Line::from(Span::styled(
                    format!("    {format}"),
                    theme::dim(),
                )));
            }
        }
        lines
    }

    fn render_picker(&self, frame: &mut Frame<'_>, area: Rect, highlighted: usize) {
        let width = 24.min(area.width);
        let height = (LEVELS.len() as u16 + 2).min(area.height);
        let popup = Rect {
            x: area.x + area.width.saturating_sub(width) / 2,
            y: area.y + area.height.saturating_sub(height) / 2,
            width,
            height,
        };
        let list = List::new(LEVELS)
            .block(
                Block::bordered()
                    .title(" set level ")
                    .border_style(theme::name()),
            )
            .highlight_style(theme::selected())
            .highlight_symbol("> ")
            .highlight_spacing(HighlightSpacing::Always);
        let mut state = ListState::default().with_selected(Some(highlighted));
        frame.render_widget(Clear, popup);
        frame.render_stateful_widget(list, popup, &mut state);
    }
}

fn level_style(level: i64) -> Style {
    if level >= 40 {
        theme::error()
    } else if level >= 30 {
        theme::warn()
    } else if level > 0 && level <= 10 {
        theme::good()
    } else {
        Style::default()
    }
}

impl View for LoggerView {
    fn title(&self) -> &'static str {
        "logger"
    }

    fn hints(&self) -> &'static str {
        "/: filter  ↑↓: select  enter: set level  r: refresh"
    }

    fn render(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let [top, body] =
            Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
        let top_line = if self.filtering {
            Line::from(vec![
                Span::styled("filter: ", theme::key()),
                Span::raw(self.filter.clone()),
                Span::styled("▏  enter/esc: done", theme::dim()),
            ])
        } else if let Some(message) = &self.message {
            message.clone()
        } else if let Some(list) = &self.list {
            if !list.logging_imported {
                Line::from(Span::styled(
                    "the target has not imported logging: it has no loggers yet",
                    theme::warn(),
                ))
            } else {
                Line::from(Span::styled(
                    "enter: change the selected logger's level (applies at the target's next log call)",
                    theme::dim(),
                ))
            }
        } else {
            Line::from(Span::styled("reading the loggers…", theme::dim()))
        };
        frame.render_widget(Paragraph::new(top_line), top);
        if let Some(error) = &self.error {
            let text = format!("reading the loggers failed: {error} (r: try again)");
            frame.render_widget(theme::error_paragraph(text), body);
            return;
        }
        let [list_area, detail_area] = if body.width >= 80 {
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(body)
        } else {
            Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(body)
        };
        self.render_list(frame, list_area);
        let block = Block::bordered()
            .title(" details ")
            .border_style(theme::dim());
        let inner = block.inner(detail_area);
        frame.render_widget(block, detail_area);
        if let Some(d) = &self.detail {
            frame.render_widget(
                Paragraph::new(Self::detail_lines(d)).wrap(Wrap { trim: false }),
                inner,
            );
        }
        if let Some(highlighted) = self.picker {
            self.render_picker(frame, body, highlighted);
        }
    }

    fn on_key(&mut self, key: KeyEvent, ctx: &Ctx) -> KeyOutcome {
        if self.filtering {
            match key.code {
                KeyCode::Enter | KeyCode::Esc => self.filtering = false,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => {
                    self.filter.push(c);
                    self.selected = 0;
                }
                _ => return KeyOutcome::Ignored,
            }
            return KeyOutcome::Consumed;
        }
        if let Some(highlighted) = self.picker {
            match key.code {
                KeyCode::Up => self.picker = Some(highlighted.saturating_sub(1)),
                KeyCode::Down => self.picker = Some((highlighted + 1).min(LEVELS.len() - 1)),
                KeyCode::Enter => {
                    self.picker = None;
                    self.set_level(LEVELS[highlighted], ctx);
                }
                KeyCode::Esc => self.picker = None,
                _ => {}
            }
            return KeyOutcome::Consumed;
        }
        let count = self.visible().len();
        match key.code {
            KeyCode::Char('/') => {
                self.filtering = true;
                self.message = None;
            }
            KeyCode::Char('r') => self.refresh(ctx),
            KeyCode::Up => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down => self.selected = (self.selected + 1).min(count.saturating_sub(1)),
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(10),
            KeyCode::PageDown => self.selected = (self.selected + 10).min(count.saturating_sub(1)),
            KeyCode::Esc if !self.filter.is_empty() => self.filter.clear(),
            KeyCode::Enter if count > 0 => {
                let current = self
                    .detail
                    .as_ref()
                    .filter(|d| Some(&d.name) == self.selected_name().as_ref())
                    .and_then(|d| LEVELS.iter().position(|l| *l == d.level_name))
                    .unwrap_or(1);
                self.picker = Some(current);
            }
            _ => return KeyOutcome::Ignored,
        }
        self.want_detail(ctx);
        KeyOutcome::Consumed
    }

    fn on_tick(&mut self, ctx: &Ctx, visible: bool) {
        if self.loading.first_shown(visible) {
            self.refresh(ctx);
        }
        if let Some(answer) = self.loading.take_answer() {
            match answer {
                Ok(list) => {
                    self.list = Some(list);
                    self.error = None;
                    self.want_detail(ctx);
                }
                Err(error) => self.error = Some(error),
            }
        }
        if let Some((name, answer)) = RequestTask::take_answer_with(&mut self.detail_task) {
            match answer {
                Ok(detail) => self.detail = Some(detail),
                Err(error) => {
                    self.message = Some(Line::from(Span::styled(
                        format!("reading `{name}` failed: {error}"),
                        theme::error(),
                    )));
                }
            }
            // The selection may have moved on meanwhile.
            self.want_detail(ctx);
        }
        if let Some(answer) = RequestTask::take_answer(&mut self.setting) {
            self.message = Some(match answer {
                Ok(change) => Line::from(vec![
                    Span::styled(change.name.clone(), theme::name()),
                    Span::raw(format!(
                        ": {} -> {} (effective {})",
                        change.previous_level_name, change.level_name, change.effective_level_name
                    )),
                    Span::styled("  it stays after Peeka detaches", theme::dim()),
                ]),
                Err(error) => Line::from(Span::styled(
                    format!("setting the level failed: {error}"),
                    theme::error(),
                )),
            });
            self.detail = None;
            self.refresh(ctx);
        }
    }

    fn is_editing(&self) -> bool {
        self.filtering || self.picker.is_some()
    }

    fn stop(&mut self) {
        self.loading.abandon();
        self.detail_task = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::testing::{assert_screen, draw_to_text};

    fn summary(name: &str, level: i64, effective: i64, handlers: u64) -> serde_json::Value {
        let names = |l: i64| match l {
            10 => "DEBUG",
            20 => "INFO",
            30 => "WARNING",
            40 => "ERROR",
            _ => "NOTSET",
        };
        serde_json::json!({
            "name": name, "level": level, "level_name": names(level), "effective_level": effective,
            "effective_level_name": names(effective), "propagate": true, "disabled": false,
            "handlers": handlers
        })
    }

    fn view() -> LoggerView {
        let mut view = LoggerView::new();
        view.list = Some(
            serde_json::from_value(serde_json::json!({
                "loggers": [
                    summary("root", 30, 30, 1), summary("shop", 20, 20, 0),
                    summary("shop.cart", 0, 20, 0), summary("shop.db", 10, 10, 1),
                    summary("urllib3", 0, 30, 0)
                ],
                "total": 5, "truncated": false, "disable": 0, "logging_imported": true
            }))
            .unwrap(),
        );
        view.selected = 3;
        view.detail = Some(
            serde_json::from_value(serde_json::json!({
                "name": "shop.db", "level": 10, "level_name": "DEBUG", "effective_level": 10,
                "effective_level_name": "DEBUG", "propagate": true, "disabled": false, "disable": 0,
                "handlers": [{"type": "logging.FileHandler", "name": null, "level": 0,
                    "level_name": "NOTSET", "stream": null, "filename": "/var/log/shop/db.log",
                    "format": "%(asctime)s %(levelname)s %(message)s"}]
            }))
            .unwrap(),
        );
        view
    }

    #[test]
    fn loggers_details_and_the_level_picker() {
        let mut view = view();
        let screen = draw_to_text(100, 14, |frame, area| view.render(frame, area));
        assert_screen("logger", &screen);
        view.picker = Some(0);
        view.filter = "shop".into();
        view.selected = 2;
        let screen = draw_to_text(60, 20, |frame, area| view.render(frame, area));
        assert_screen("logger_picker_narrow", &screen);
        for (w, h) in [(1, 1), (12, 3), (40, 12)] {
            draw_to_text(w, h, |frame, area| view.render(frame, area));
        }
    }
}
