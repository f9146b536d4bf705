//! Where the bars are drawn: an indicatif terminal that hands each frame's rows to the
//! console's status area, above the prompt.

use std::sync::Mutex;

use indicatif::TermLike;

use crate::app::console::screen;

/// A terminal for indicatif that keeps each drawn frame's lines and hands them over on flush.
///
/// indicatif draws a frame by moving the cursor up over the previous one, clearing, then
/// writing each line padded to the full width (so the terminal wraps to the next). Any cursor
/// movement or clearing therefore starts a new frame; a row ends when it reaches the width.
pub(super) struct StatusArea {
    frame: Mutex<(Vec<String>, String)>,
    sink: fn(Vec<String>),
}

impl std::fmt::Debug for StatusArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatusArea")
    }
}

impl StatusArea {
    /// An area that hands each frame's rows to `sink`.
    pub(super) fn new(sink: fn(Vec<String>)) -> StatusArea {
        StatusArea { frame: Mutex::default(), sink }
    }

    fn frame(&self) -> std::sync::MutexGuard<'_, (Vec<String>, String)> {
        self.frame.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn restart(&self) -> std::io::Result<()> {
        *self.frame() = Default::default();
        Ok(())
    }

    fn columns(&self) -> usize {
        // One column short of the terminal, so a full row never makes the terminal wrap.
        screen::width().saturating_sub(1).clamp(20, 500)
    }
}

impl TermLike for StatusArea {
    fn width(&self) -> u16 {
        self.columns() as u16
    }

    fn height(&self) -> u16 {
        terminal::Term::stdout().size_checked().map(|(rows, _)| rows.saturating_sub(2).max(1)).unwrap_or(20)
    }

    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        self.restart()
    }

    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        self.restart()
    }

    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        self.restart()
    }

    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        self.restart()
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        let mut frame = self.frame();
        let row = std::mem::take(&mut frame.1) + s;
        frame.0.push(row);
        Ok(())
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        let s = match s.rsplit_once('\r') {
            Some((_, after)) => {
                self.restart()?;
                after
            }
            None => s,
        };
        let columns = self.columns();
        let mut frame = self.frame();
        frame.1.push_str(s);
        if terminal::measure_text_width(&frame.1) >= columns {
            let row = std::mem::take(&mut frame.1);
            frame.0.push(row);
        }
        Ok(())
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.restart()
    }

    fn flush(&self) -> std::io::Result<()> {
        let columns = self.columns();
        let (rows, rest) = std::mem::take(&mut *self.frame());
        let rows = rows.into_iter().chain((!rest.is_empty()).then_some(rest));
        let rows: Vec<String> =
            rows.map(|r| terminal::truncate_str(&r, columns, "").trim_end().to_string()).filter(|r| !r.is_empty()).collect();
        (self.sink)(rows);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

    use super::*;

    static FRAMES: Mutex<Vec<Vec<String>>> = Mutex::new(Vec::new());

    fn keep(rows: Vec<String>) {
        FRAMES.lock().unwrap().push(rows);
    }

    #[test]
    fn bars_become_status_lines_and_leave_none_when_cleared() {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(StatusArea::new(keep))));
        let a = multi.add(ProgressBar::new(100).with_style(ProgressStyle::with_template("{prefix} {pos}/{len}").unwrap()));
        a.set_prefix("a.iso");
        let b = multi.add(ProgressBar::new(50).with_style(ProgressStyle::with_template("{prefix} {pos}/{len}").unwrap()));
        b.set_prefix("b.iso");
        a.inc(40);
        b.inc(10);
        a.force_draw();
        let last = FRAMES.lock().unwrap().last().cloned().unwrap();
        assert_eq!(last, ["a.iso 40/100", "b.iso 10/50"]);
        a.finish_and_clear();
        multi.remove(&a);
        b.finish_and_clear();
        multi.remove(&b);
        let last = FRAMES.lock().unwrap().last().cloned().unwrap();
        assert!(last.is_empty(), "{last:?}");
    }
}
