#!/usr/bin/env python3
"""An independent checker over `brokerbench history RUN --format jsonl`, written from the
definitions in the README rather than from the Rust checkers, so the two can be held against each
other. Reads JSON lines on stdin (one broker's history) and prints one JSON object of counts.

Definitions (Jepsen's vocabulary):
  processed   a Processed record, or a row of the idempotent consumers' own store (StoreHolds)
  lost        acknowledged, never processed, and not found by a complete final read
  unread      sent, found by the final read, never processed
  unverified  acknowledged, never processed, not found, and the final read did not complete
  redeliveries               deliveries of a value delivered before
  broker_redeliveries        deliveries the broker flagged (redelivered, receive count > 1),
                             or an unflagged delivery again from the same stored position
  per_key_order_violations   first deliveries, unflagged, below the highest seq of their key
                             delivered first so far
  ..._flagged                the same among flagged first deliveries
  ..._redelivered            redeliveries below that highest seq
"""
import json
import sys


def main():
    events = []
    for n, line in enumerate(sys.stdin):
        line = line.strip()
        if line:
            (kind, body), = json.loads(line).items()
            events.append((body.get("t", 0), n, kind, body))
    # Worker pipes interleave by a few ms; the definitions are about time order.
    events.sort(key=lambda e: (e[0], e[1]))

    def vid(body):
        i = body["id"]
        return (i["producer"], i["key"], i["seq"])

    acked, sent, processed, stored = set(), set(), set(), set()
    first_pos = {}
    delivered = set()
    max_seq = {}
    final_outcome = None
    c = dict(redeliveries=0, broker_redeliveries=0, per_key_order_violations=0,
             per_key_order_violations_flagged=0, per_key_order_violations_redelivered=0)
    for _, _, kind, b in events:
        if kind == "SendInvoke":
            sent.add(vid(b))
        elif kind == "SendOk":
            acked.add(vid(b))
        elif kind in ("Processed", "StoreHolds"):
            processed.add(vid(b))
        elif kind == "FinalRead":
            stored.add(vid(b))
        elif kind == "FinalReadDone":
            final_outcome = b["outcome"]
        elif kind == "Deliver":
            v = vid(b)
            key = v[:2]
            flagged = b["redelivered"] or b["receive_count"] > 1
            pos = json.dumps(b["pos"], sort_keys=True)
            positional = isinstance(b["pos"], dict) and ("Offset" in b["pos"] or "Id" in b["pos"])
            if flagged:
                c["broker_redeliveries"] += 1
            top = max_seq.get(key)
            if v in delivered:
                c["redeliveries"] += 1
                if top is not None and v[2] < top:
                    c["per_key_order_violations_redelivered"] += 1
                if not flagged and positional and first_pos.get(v) == pos:
                    c["broker_redeliveries"] += 1
            else:
                delivered.add(v)
                first_pos[v] = pos
                if top is not None and v[2] < top:
                    name = "per_key_order_violations_flagged" if flagged else "per_key_order_violations"
                    c[name] += 1
                if top is None or v[2] > top:
                    max_seq[key] = v[2]
    missing = {v for v in acked if v not in processed and v not in stored}
    complete = final_outcome == "complete"
    c["lost"] = len(missing) if complete else 0
    c["unverified"] = 0 if complete else len(missing)
    c["unread"] = len({v for v in sent if v in stored and v not in processed})
    c["delivered"] = len(processed)
    print(json.dumps(c, sort_keys=True))


if __name__ == "__main__":
    main()
