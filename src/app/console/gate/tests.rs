use super::*;
use std::sync::Mutex;

/// A terminal as rustyline's external printer treats it: written at once outside raw mode,
/// queued inside it until the editor waits for a key.
#[derive(Default)]
struct Term {
    raw: bool,
    queue: Vec<String>,
    screen: Vec<String>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Term>>);

impl Print for Fake {
    fn print(&mut self, text: String) {
        let mut term = self.0.lock().unwrap();
        if term.raw { term.queue.push(text) } else { term.screen.push(text) }
    }
}

impl Fake {
    fn raw(&self, on: bool) {
        self.0.lock().unwrap().raw = on;
    }
    /// The editor waits for a key: it prints its queue.
    fn waits(&self) {
        let mut term = self.0.lock().unwrap();
        let queued = std::mem::take(&mut term.queue);
        term.screen.extend(queued);
    }
    fn screen(&self) -> Vec<String> {
        self.0.lock().unwrap().screen.clone()
    }
}

/// A gate and the editor driving it, over a fake terminal.
fn setup() -> (Gate<Fake>, Arc<Phases>, Fake) {
    let (term, phases) = (Fake::default(), Arc::new(Phases::default()));
    (Gate::new(term.clone(), phases.clone()), phases, term)
}

/// A `readline` starts and draws its prompt (the writer is woken, as the screen does).
fn prompt(gate: &mut Gate<Fake>, phases: &Phases, term: &Fake) {
    phases.starting();
    term.raw(true);
    if phases.prompt_drawn() {
        gate.resume();
    }
}

/// The `readline` accepts a line and returns.
fn accept(phases: &Phases, term: &Fake) {
    phases.accepted();
    term.raw(false);
    phases.stopped();
}

#[test]
fn text_written_before_any_prompt_shows_at_once() {
    let (mut gate, _, term) = setup();
    gate.print("connecting".into());
    assert_eq!(term.screen(), ["connecting"]);
    assert_eq!(gate.due(), None);
}

#[test]
fn output_of_pasted_lines_keeps_the_order_of_the_lines() {
    let (mut gate, phases, term) = setup();
    // The first pasted line's output is queued by the editor, which then returns the second
    // line from its buffer without waiting, so the queue is not printed yet.
    prompt(&mut gate, &phases, &term);
    gate.print("first".into());
    accept(&phases, &term);
    prompt(&mut gate, &phases, &term);
    accept(&phases, &term);
    // The second line's output, written while no readline runs, must not overtake it.
    gate.print("second".into());
    assert!(term.screen().is_empty(), "{:?}", term.screen());
    assert!(gate.due().is_some_and(|d| d <= HOLD));
    prompt(&mut gate, &phases, &term);
    term.waits();
    assert_eq!(term.screen(), ["first", "second"]);
    assert_eq!(gate.due(), None);
}

#[test]
fn text_held_too_long_is_written_anyway() {
    let (mut gate, phases, term) = setup();
    prompt(&mut gate, &phases, &term);
    gate.print("queued".into());
    term.waits();
    accept(&phases, &term);
    // A long command: its output waits at most HOLD for the next prompt.
    gate.print("progress".into());
    assert_eq!(term.screen(), ["queued"]);
    gate.flush();
    assert_eq!(term.screen(), ["queued", "progress"]);
    assert_eq!(gate.due(), None);
}

#[test]
fn text_written_as_the_prompt_starts_waits_for_it_then_joins_the_queue() {
    let (mut gate, phases, term) = setup();
    phases.starting();
    gate.print("before the prompt".into());
    term.raw(true);
    assert!(phases.prompt_drawn());
    gate.resume();
    // Redraws after the first release nothing twice.
    assert!(!phases.prompt_drawn());
    gate.print("while typing".into());
    term.waits();
    assert_eq!(term.screen(), ["before the prompt", "while typing"]);
}
