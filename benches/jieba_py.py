#!/usr/bin/env python3
"""Python jieba baseline for `cargo bench --bench kb -- tokenize`.

Usage (in a throwaway venv, jieba is not a project dependency):

    python3 -m venv /tmp/jb && /tmp/jb/bin/pip install jieba
    /tmp/jb/bin/python benches/jieba_py.py target/bench-text.txt [target/bench-dict.txt]

Tokenizes the file line by line with `jieba.lcut_for_search` (HMM on, like the Rust side), on one
thread, two rounds, and prints MB/s. No normalisation is done here: compare with the Rust
"raw jieba-rs" line for like-for-like segmentation, and with `Analyzer::word_tokens` for what kefu does.
"""

import sys
import time

import jieba


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    text_path = sys.argv[1]
    with open(text_path, encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for line in handle]
    size_mb = sum(len(line.encode("utf-8")) + 1 for line in lines) / 1e6

    jieba.setLogLevel(60)
    started = time.perf_counter()
    jieba.initialize()
    if len(sys.argv) > 2:
        jieba.load_userdict(sys.argv[2])
    setup = time.perf_counter() - started

    print("=== python jieba lcut_for_search ===")
    print(f"python {sys.version.split()[0]}, jieba {jieba.__version__}")
    print(f"text: {text_path} ({size_mb:.1f} MB, {len(lines)} lines); dictionary load {setup:.2f} s")
    best = 0.0
    for round_number in (1, 2):
        started = time.perf_counter()
        tokens = 0
        for line in lines:
            tokens += len(jieba.lcut_for_search(line))
        seconds = time.perf_counter() - started
        rate = size_mb / seconds
        best = max(best, rate)
        print(f"  round {round_number}: {seconds:.2f} s  {rate:.2f} MB/s  {tokens} tokens")
    print(f"best of 2 rounds: {best:.2f} MB/s")


if __name__ == "__main__":
    main()
