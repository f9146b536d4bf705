//! Reading command lines: words with shell-style quoting, Tab completion, help texts, and the
//! nearest known command for a typo.

use anyhow::{Result, bail};

use super::Complete;

/// Splits a command line into words the way a shell does: spaces separate, `"…"` and `'…'`
/// group, a backslash escapes the next character.
pub fn words(line: &str) -> Result<Vec<String>> {
    let scan = scan(line);
    if let Some(quote) = scan.open_quote {
        bail!("unterminated {quote} quote");
    }
    Ok(scan.words.into_iter().map(|(_, word)| word).collect())
}

/// Writes `name` so that [`words`] reads it back as one word.
pub fn quote(name: &str) -> String {
    if !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\')) {
        return name.to_string();
    }
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Words of a line with the byte offset each starts at.
struct Scan {
    words: Vec<(usize, String)>,
    open_quote: Option<char>,
    /// Whether the line ends inside a word (so the last word is still being typed).
    in_word: bool,
}

fn scan(line: &str) -> Scan {
    let (mut words, mut current, mut quote) = (Vec::new(), None::<(usize, String)>, None::<char>);
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => words.extend(current.take()),
            (None, '"' | '\'') => {
                quote = Some(c);
                current.get_or_insert((i, String::new()));
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => current.get_or_insert((i, String::new())).1.push(c),
            (_, '\\') => {
                let word = current.get_or_insert((i, String::new()));
                if let Some((_, next)) = chars.next() {
                    word.1.push(next);
                }
            }
            (_, c) => current.get_or_insert((i, String::new())).1.push(c),
        }
    }
    let in_word = current.is_some();
    words.extend(current);
    Scan { words, open_quote: quote, in_word }
}

/// Tab completion of `before` (the line up to the cursor): where the replaced word starts, and
/// the candidates as (shown, inserted).
pub fn completions(complete: &dyn Complete, before: &str) -> (usize, Vec<(String, String)>) {
    let mut scan = scan(before);
    let (start, partial) = if scan.in_word { scan.words.pop().unwrap_or_default() } else { (before.len(), String::new()) };
    let found: Vec<String> = match scan.words.first() {
        None => complete.commands().into_iter().map(str::to_string).collect(),
        Some((_, command)) => complete.arguments(command, scan.words.len() - 1),
    };
    let mut found: Vec<(String, String)> = found
        .into_iter()
        .filter(|c| c.starts_with(&partial) && typable(c))
        .map(|c| (crate::logbook::printable(&c), format!("{} ", quote(&c))))
        .collect();
    found.sort();
    found.dedup();
    (start, found)
}

/// Whether a candidate can go into the edit line: [`words`] has no escape for control
/// characters (a backslash only takes the next character as is), so a name holding one (or a
/// bidi control, which reorders what the terminal shows) could only be inserted as raw bytes
/// that drive the terminal. Such names cannot be shared or downloaded anyway; they are left out.
fn typable(candidate: &str) -> bool {
    crate::logbook::printable(candidate) == candidate
}

/// One command of a prompt, for `help` and `help COMMAND`.
pub struct CommandHelp {
    /// The command word.
    pub name: &'static str,
    /// Its arguments, as shown in the overview.
    pub usage: &'static str,
    /// One line.
    pub summary: &'static str,
    /// A paragraph for `help COMMAND`.
    pub details: &'static str,
    /// One example line.
    pub example: &'static str,
}

/// `clear`, the same at both prompts.
pub const CLEAR_HELP: CommandHelp = CommandHelp {
    name: "clear",
    usage: "",
    summary: "clear the screen",
    details: "On a terminal only; from a pipe it does nothing.",
    example: "clear",
};

/// `help` (every command, one line each) or `help TOPIC` (one command, with an example).
pub fn help(commands: &[CommandHelp], topic: &str, keys: &str) -> Result<String> {
    if topic.is_empty() {
        let width = commands.iter().map(|c| c.name.len() + c.usage.len() + 1).max().unwrap_or(0);
        let mut text = String::from("commands (help COMMAND for details and an example):\n");
        for c in commands {
            let head = format!("{} {}", c.name, c.usage);
            text.push_str(&format!("  {:<width$}  {}\n", head.trim_end(), c.summary));
        }
        text.push_str(keys);
        return Ok(text);
    }
    let Some(c) = commands.iter().find(|c| c.name == topic) else {
        let names: Vec<&str> = commands.iter().map(|c| c.name).collect();
        bail!("{}", unknown(topic, &names));
    };
    Ok(format!("{} {}\n  {}\n  {}\n  example: {}", c.name, c.usage, c.summary, c.details, c.example).replace(" \n", "\n"))
}

/// The message for an unknown command, with the nearest known one if it is a likely typo.
pub fn unknown(word: &str, known: &[&str]) -> String {
    match suggest(word, known) {
        Some(near) => format!("unknown command {word:?}; did you mean {near:?}? (try help)"),
        None => format!("unknown command {word:?} (try help)"),
    }
}

/// Renders `value` as one line of JSON (for `--json`).
pub fn json_line(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
}

/// The known command nearest to `word`, if it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known.iter().map(|k| (distance(word, k), *k)).filter(|(d, _)| *d <= 2).min().map(|(_, k)| k)
}

/// Levenshtein distance between two short strings.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::console::Complete;

    struct Words;

    impl Complete for Words {
        fn commands(&self) -> Vec<&'static str> {
            vec!["share", "status", "get"]
        }
        fn arguments(&self, command: &str, _: usize) -> Vec<String> {
            match command {
                "get" => vec!["notes.txt".into(), "my file.bin".into(), "movie.mkv".into()],
                _ => vec![],
            }
        }
    }

    #[test]
    fn suggests_the_nearest_command() {
        assert_eq!(suggest("shar", &["share", "get"]), Some("share"));
        assert_eq!(suggest("xyzzy", &["share", "get"]), None);
        assert!(unknown("stauts", &["status"]).contains("did you mean \"status\""));
    }

    #[test]
    fn words_follow_shell_quoting() {
        assert_eq!(words(r#"get a.iso "my file.bin" it\'s 'x y'"#).unwrap(), ["get", "a.iso", "my file.bin", "it's", "x y"]);
        assert!(words("get \"open").is_err());
        for name in ["plain.txt", "two words", "quote\"d", "back\\slash"] {
            assert_eq!(words(&format!("get {}", quote(name))).unwrap()[1], name);
        }
    }

    #[test]
    fn tab_completes_commands_then_arguments_with_quotes() {
        let (start, found) = completions(&Words, "st");
        assert_eq!((start, found), (0, vec![("status".to_string(), "status ".to_string())]));
        let (start, found) = completions(&Words, "get m");
        assert_eq!(start, 4);
        assert_eq!(found, [("movie.mkv".to_string(), "movie.mkv ".to_string()), ("my file.bin".into(), "\"my file.bin\" ".into())]);
        let (start, found) = completions(&Words, "get notes.txt \"my");
        assert_eq!((start, found.len()), (14, 1));
        assert_eq!(completions(&Words, "get ").1.len(), 3);
    }

    struct Hostile;

    impl Complete for Hostile {
        fn commands(&self) -> Vec<&'static str> {
            vec!["share"]
        }
        fn arguments(&self, _: &str, _: usize) -> Vec<String> {
            ["a\x1b[31mred.txt", "b\nline.txt", "c\u{202e}txt.exe", "ok.txt"].map(String::from).to_vec()
        }
    }

    #[test]
    fn tab_never_offers_or_inserts_control_characters() {
        let (_, found) = completions(&Hostile, "share ");
        assert_eq!(found, [("ok.txt".to_string(), "ok.txt ".to_string())]);
        for (shown, inserted) in completions(&Hostile, "share ").1 {
            assert!(!shown.chars().chain(inserted.chars()).any(char::is_control), "{shown:?} {inserted:?}");
        }
    }

    #[test]
    fn help_lists_commands_and_explains_one() {
        let commands = [CommandHelp { name: "get", usage: "<file>...", summary: "download", details: "More.", example: "get a.iso" }];
        assert!(help(&commands, "", "").unwrap().contains("get <file>...  download"));
        assert!(help(&commands, "get", "").unwrap().contains("example: get a.iso"));
        assert!(help(&commands, "gte", "").unwrap_err().to_string().contains("did you mean \"get\""));
    }
}
