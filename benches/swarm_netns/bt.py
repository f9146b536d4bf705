#!/usr/bin/env python3
"""BitTorrent pieces for benches/swarm_netns.sh: a .torrent maker and a tiny HTTP tracker.

Python 3 standard library only, so the bench needs nothing from pip. The tracker is just
enough for a swarm in network namespaces (BEP 3 announce, BEP 23 compact peers): it keeps
every peer that announced within PEER_TTL seconds, answers each announce with the others
(shuffled, at most MAX_PEERS_IN_REPLY), and logs one line per announce on stdout, which the
bench reads to know when a seeder is up.

    bt.py torrent FILE ANNOUNCE_URL OUT.torrent [--piece-kib 256]
    bt.py tracker --listen 10.77.0.1:6969 [--interval 5]
"""

import argparse
import hashlib
import http.server
import os
import random
import socket
import sys
import threading
import time
import urllib.parse

# Peers that have not announced for this long are forgotten (aria2 announces every few seconds).
PEER_TTL = 120
# BEP 3 clients ask for 50 by default; a bigger reply helps nobody in a swarm of 17.
MAX_PEERS_IN_REPLY = 50
# Bounds, so a confused client cannot grow the tracker: torrents known, peers per torrent.
MAX_TORRENTS = 16
MAX_PEERS_PER_TORRENT = 512
# Seconds a connection may take to send its request before it is dropped.
REQUEST_TIMEOUT = 10


def bencode(value) -> bytes:
    """Bencoding (BEP 3): ints, byte strings, lists, dicts with sorted byte-string keys."""
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def make_torrent(path: str, announce: str, out: str, piece_size: int) -> str:
    """Writes a single-file .torrent for `path`; returns the info hash in hex."""
    pieces = []
    with open(path, "rb") as f:
        while block := f.read(piece_size):
            pieces.append(hashlib.sha1(block).digest())
    info = {
        "name": os.path.basename(path),
        "length": os.path.getsize(path),
        "piece length": piece_size,
        "pieces": b"".join(pieces),
    }
    meta = {"announce": announce, "created by": "p2pq swarm_netns bench", "info": info}
    with open(out, "wb") as f:
        f.write(bencode(meta))
    return hashlib.sha1(bencode(info)).hexdigest()


class Swarms:
    """Who announced which torrent: info hash -> peer id -> (ip, port, left, last seen)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.torrents = {}

    def announce(self, info_hash, peer_id, ip, port, left, event):
        """Records one announce and returns the compact list of the other peers."""
        now = time.monotonic()
        with self.lock:
            if info_hash not in self.torrents and len(self.torrents) >= MAX_TORRENTS:
                raise ValueError("too many torrents")
            peers = self.torrents.setdefault(info_hash, {})
            for pid in [p for p, v in peers.items() if now - v[3] > PEER_TTL]:
                del peers[pid]
            if event == "stopped":
                peers.pop(peer_id, None)
            elif peer_id in peers or len(peers) < MAX_PEERS_PER_TORRENT:
                peers[peer_id] = (ip, port, left, now)
            others = [v for p, v in peers.items() if p != peer_id]
            seeders = sum(1 for v in peers.values() if v[2] == 0)
        random.shuffle(others)
        compact = b"".join(socket.inet_aton(v[0]) + v[1].to_bytes(2, "big") for v in others[:MAX_PEERS_IN_REPLY])
        return compact, seeders, len(peers) - seeders


class Handler(http.server.BaseHTTPRequestHandler):
    """GET /announce?...: one bencoded reply; anything else is a 404."""

    timeout = REQUEST_TIMEOUT
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/announce":
            self.send_error(404)
            return
        try:
            reply = self.announce(url.query)
        except (KeyError, ValueError) as e:
            reply = {"failure reason": f"bad announce: {e}"}
        body = bencode(reply)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def announce(self, query):
        # info_hash and peer_id are raw bytes, percent-encoded: latin-1 maps each back to a byte.
        q = {k: v[0] for k, v in urllib.parse.parse_qs(query, encoding="latin-1").items()}
        info_hash, peer_id = q["info_hash"].encode("latin-1"), q["peer_id"].encode("latin-1")
        if len(info_hash) != 20 or len(peer_id) != 20:
            raise ValueError("info_hash and peer_id must be 20 bytes")
        port, left = int(q["port"]), int(q["left"])
        if not 0 < port < 65536 or left < 0:
            raise ValueError("port or left out of range")
        ip, event = self.client_address[0], q.get("event", "")
        peers, seeders, leechers = self.server.swarms.announce(info_hash, peer_id, ip, port, left, event)
        print(f"announce {info_hash.hex()[:12]} from {ip}:{port} left={left} event={event or '-'} "
              f"seeders={seeders} leechers={leechers}", flush=True)
        interval = self.server.interval
        return {"interval": interval, "min interval": interval, "complete": seeders,
                "incomplete": leechers, "peers": peers}

    def log_message(self, format, *args):
        pass  # one line per announce above is enough


def run_tracker(listen: str, interval: int):
    host, port = listen.rsplit(":", 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    server.swarms = Swarms()
    server.interval = interval
    print(f"tracker listening on {host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("torrent", help="make a single-file .torrent")
    t.add_argument("file")
    t.add_argument("announce")
    t.add_argument("out")
    t.add_argument("--piece-kib", type=int, default=256)
    r = sub.add_parser("tracker", help="run the HTTP tracker")
    r.add_argument("--listen", required=True, help="HOST:PORT")
    r.add_argument("--interval", type=int, default=5, help="seconds between announces asked of clients")
    args = parser.parse_args()
    if args.command == "torrent":
        print(make_torrent(args.file, args.announce, args.out, args.piece_kib << 10))
    else:
        try:
            run_tracker(args.listen, args.interval)
        except KeyboardInterrupt:
            sys.exit(130)


if __name__ == "__main__":
    main()
