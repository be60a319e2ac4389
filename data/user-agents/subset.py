#!/usr/bin/env python3
"""Cuts the small subset of shared/data/user-agents that rampart embeds.

Deterministic: the 300 browser profiles with the largest traffic weight, and 150 bot user agents,
one per crawler family: every `http-library` and `browser-automation` family first (so each kind
of client the traffic generator models is present), then the other families in the order of the
sha256 of their pattern. Run from the repository root:

    python3 data/user-agents/subset.py ../shared/data/user-agents data/user-agents
"""
import hashlib
import json
import sys

BROWSERS = 300
BOTS = 150
FIRST_TAGS = ("http-library", "browser-automation")
BROWSER_FIELDS = ("userAgent", "language", "platform", "vendor", "deviceCategory", "weight")


def main(src, dst):
    browsers = json.load(open(f"{src}/browsers.json"))
    browsers.sort(key=lambda b: (-b["weight"], b["userAgent"]))
    kept = [{k: b[k] for k in BROWSER_FIELDS} for b in browsers[:BROWSERS]]
    with open(f"{dst}/browsers.json", "w") as f:
        json.dump(kept, f, indent=0, ensure_ascii=False)
        f.write("\n")

    bots = json.load(open(f"{src}/bots.json"))
    def key(b):
        first = any(t in FIRST_TAGS for t in b.get("tags", []))
        return (not first, hashlib.sha256(b["pattern"].encode()).hexdigest())
    bots.sort(key=key)
    kept = [
        {"pattern": b["pattern"], "instances": b["instances"][:1], "tags": b.get("tags", [])}
        for b in bots
        if b["instances"]
    ][:BOTS]
    with open(f"{dst}/bots.json", "w") as f:
        json.dump(kept, f, indent=0, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
