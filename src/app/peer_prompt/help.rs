//! The peer prompt's help: each command's usage, summary, details and example, and the keys.

use crate::app::console::{self, CommandHelp};

/// Every command of the peer prompt, in the order `help` lists them.
pub(super) const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "share",
        usage: "<file|folder>...",
        summary: "share files or folders from the data folder",
        details: "Hashes each file (BLAKE3; a folder's files each, as files of their own, and the folder as its listing), serves it to other peers and tells the tracker. Names are paths inside the data folder; quote names with spaces. On a terminal big files hash in the background with a bar (Ctrl-C on an empty line cancels). Shared files are shared again when this peer restarts. With --public, anyone who knows a file's id may fetch it (not only the tracker's peers) and see this peer's address, and it is announced on the DHT (unless the peer runs with --no-dht).",
        example: "share notes.txt \"holiday photos.zip\"   share --public talk.mp4",
    },
    CommandHelp {
        name: "unshare",
        usage: "<file|id>...",
        summary: "stop sharing files",
        details: "Stops serving each file (by name or id prefix), tells the tracker, and drops it from the files shared again at the next start. The file itself stays.",
        example: "unshare notes.txt",
    },
    CommandHelp {
        name: "get",
        usage: "<file|id>... [--only PATTERN]...",
        summary: "download files from every peer that has them",
        details: "Looks each name (or id prefix) up at the tracker, then pulls verified chunks from all live holders at once. Several files download together. A folder downloads whole; NAME/PATH fetches one folder in it, and --only PATTERN only the paths a glob keeps (*.jpg at any depth; 2024/summer from the top; repeatable). On a terminal downloads run in the background with a bar each; Ctrl-C on an empty line cancels them, and the next get resumes.",
        example: "get some-file.iso 5f1c2a; get photos --only '*.jpg'",
    },
    CommandHelp {
        name: "logs",
        usage: "request [--json] [filters]",
        summary: "the chunks this peer downloaded",
        details: "One row per verified chunk: local time, file, chunk, source peer, size, time taken. Filters: --tail N keeps the last N, --file NAME|ID one file's (name or id prefix), --peer ID the chunks from one peer. With --json, the records as one JSON array on one line.",
        example: "logs request --file notes.txt --tail 5",
    },
    CommandHelp {
        name: "status",
        usage: "[--json]",
        summary: "downloads under way, shared files, the tracker link",
        details: "Each running download with its progress, rate, ETA and holders; each shared file; whether the tracker is connected. With --json, one JSON object on one line.",
        example: "status --json",
    },
    CommandHelp {
        name: "discard",
        usage: "<file|id>",
        summary: "drop an unfinished download",
        details: "Deletes what an interrupted get left (the partial file and its resume state), named as status lists it: its name or an id prefix. Refused while that file downloads.",
        example: "discard some-file.iso",
    },
    console::CLEAR_HELP,
    CommandHelp { name: "help", usage: "[command]", summary: "this text, or one command in detail", details: "", example: "help get" },
    CommandHelp {
        name: "exit",
        usage: "",
        summary: "tell the tracker, then quit (also Ctrl-D)",
        details: "Running downloads are cancelled; what they verified is kept for the next get.",
        example: "exit",
    },
];

/// The keys the prompt knows, shown under the commands.
pub(super) const KEYS: &str =
    "keys: Tab completes, Up/Down recall history, Ctrl-C drops the line (on an empty line: cancels downloads and shares), Ctrl-D leaves";
