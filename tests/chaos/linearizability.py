"""A linearizability checker for single registers (Wing & Gong search with
memoisation, as Knossos and Porcupine do), used by tests/chaos/chaos.py.

An operation is a dict:
    kind   "w" (write value) or "r" (read, returned value)
    value  the value written or read (None: the initial, absent value)
    call   monotonic time the client sent it
    ret    monotonic time the answer came back; float("inf") when the outcome
           is unknown (timeout, lost connection): such a write may take effect
           at any point after its call, or never
    ok     True when the answer says it took effect

Only successful reads and successful or unknown writes belong in a history:
a failed read says nothing, and a write that definitely failed never
happened. Values written are unique, which keeps the search small.
"""
import sys

INF = float("inf")


def check(ops, initial=None):
    """Return (True, None) if the history is linearizable, else (False, why)."""
    # Values are unique, so a write of unknown outcome matters only if some
    # read returned its value: unobserved, dropping it is the most permissive
    # reading (it never took effect, or was overwritten unseen); observed, it
    # must take effect before the earliest such read returned.
    first_seen = {}
    for o in ops:
        if o["kind"] == "r":
            first_seen[o["value"]] = min(first_seen.get(o["value"], INF), o["ret"])
    kept = []
    for o in ops:
        if o["kind"] == "w" and o["ret"] == INF:
            if o["value"] not in first_seen:
                continue
            o = dict(o, ret=first_seen[o["value"]])
        kept.append(o)
    ops = sorted(kept, key=lambda o: o["call"])
    n = len(ops)
    if n == 0:
        return True, None
    required = 0
    for i, o in enumerate(ops):
        if o["kind"] == "r" or o["ret"] != INF:
            required |= 1 << i
    seen = set()
    # Iterative depth-first search over (linearized set, register value).
    stack = [(0, initial)]
    best = 0
    while stack:
        done, value = stack.pop()
        if done & required == required:
            return True, None
        key = (done, value)
        if key in seen:
            continue
        seen.add(key)
        if done.bit_count() > best.bit_count():
            best = done
        # Every operation before the first one not linearized is done (they
        # are sorted by call). The next operation must be called before every
        # pending required operation has returned; no operation called after
        # that horizon can lower it, so the scan stops there.
        first = (~done & (done + 1)).bit_length() - 1
        horizon = INF
        i = first
        while i < n and ops[i]["call"] <= horizon:
            if not done >> i & 1 and required >> i & 1 and ops[i]["ret"] < horizon:
                horizon = ops[i]["ret"]
            i += 1
        for i in range(first, n):
            if done >> i & 1:
                continue
            o = ops[i]
            if o["call"] > horizon:
                break
            if o["kind"] == "w":
                stack.append((done | 1 << i, o["value"]))
            elif o["value"] == value:
                stack.append((done | 1 << i, value))
        if len(seen) > 2_000_000:
            return False, "search too large to decide (%d states)" % len(seen)
    stuck = [ops[i] for i in range(n) if not best >> i & 1][:6]
    return False, "no linearization; first operations that cannot be placed: %r" % stuck


def cut(ops, t):
    """The history as an observer saw it at time t: operations called by then;
    a write still pending has an unknown outcome, a pending read is dropped.
    Every cut of a linearizable history is linearizable."""
    out = []
    for o in ops:
        if o["call"] > t:
            continue
        if o["ret"] <= t:
            out.append(o)
        elif o["kind"] == "w":
            out.append(dict(o, ret=INF))
    return out


def shrink(ops, initial=None):
    """For a history that fails check(): the earliest cut that already fails,
    found by bisection over the return times. Its last operations are where
    the history stops making sense; everything after them is noise."""
    times = sorted({o["ret"] for o in ops if o["ret"] != INF})
    lo, hi = 0, len(times)  # cut at times[hi] (or the whole history) fails
    while lo < hi:
        mid = (lo + hi) // 2
        if check(cut(ops, times[mid]), initial)[0]:
            lo = mid + 1
        else:
            hi = mid
    return sorted(cut(ops, times[hi]) if hi < len(times) else ops, key=lambda o: o["call"])


if __name__ == "__main__":
    # Self-check: a stale read after a completed write is caught.
    w = {"kind": "w", "value": 1, "call": 0.0, "ret": 1.0, "ok": True}
    r_ok = {"kind": "r", "value": 1, "call": 2.0, "ret": 3.0, "ok": True}
    r_stale = {"kind": "r", "value": None, "call": 2.0, "ret": 3.0, "ok": True}
    assert check([w, r_ok])[0]
    assert not check([w, r_stale])[0]
    unknown = {"kind": "w", "value": 2, "call": 0.5, "ret": INF, "ok": False}
    assert check([w, unknown, r_ok])[0]
    assert check([w, unknown, dict(r_ok, value=2)])[0]
    later = [{"kind": "w", "value": 10 + i, "call": 4.0 + i, "ret": 4.5 + i, "ok": True} for i in range(20)]
    assert shrink([w, r_stale] + later) == [w, r_stale]
    print("linearizability self-check passed")
    sys.exit(0)
