#!/usr/bin/env python3
"""Compare two JSON Lines tree dumps (keeperkit dump --json / zk_dump_tree.py shape).

usage: compare_dumps.py LABEL_A FILE_A LABEL_B FILE_B [--ignore PATH]...
                        [--null-as-empty CONVERT_JSON]

Checks that each file is sorted by path bytes with no duplicates, then compares node by
node (as JSON values, key order ignored). Prints "identical (N nodes)" or the FIRST
difference: the path, which fields differ, and both lines; then how many nodes differ in
all. Exit 0 identical, 1 different, 2 unreadable input.

--null-as-empty CONVERT_JSON: the `keeperkit convert --json` report of a conversion
whose target has no null values (ClickHouse Keeper): the nodes it lists as "null value
stored as an empty value" must be null in FILE_B and are compared as empty ("").
"""
import argparse
import json
import sys


def load(label, path, ignore):
    nodes, order = {}, []
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                n = json.loads(raw)
                p = n["path"]
            except (ValueError, KeyError, TypeError) as e:
                print("%s: line %d of %s is not a node: %s: %r" % (label, i, path, e, raw[:200]))
                sys.exit(2)
            if p in ignore:
                continue
            if p in nodes:
                print("%s: duplicate path %r (line %d)" % (label, p, i))
                sys.exit(2)
            nodes[p] = n
            order.append(p)
    key = [p.encode("utf-8", "surrogatepass") for p in order]
    for i in range(1, len(key)):
        if key[i - 1] >= key[i]:
            print("%s: not sorted by path bytes: %r before %r" % (label, order[i - 1], order[i]))
            sys.exit(1)
    return nodes


def field_diffs(a, b):
    out = []
    for k in ("data", "acl"):
        if a.get(k) != b.get(k):
            out.append("%s: %s != %s" % (k, json.dumps(a.get(k)), json.dumps(b.get(k))))
    sa, sb = a.get("stat") or {}, b.get("stat") or {}
    for k in sorted(set(sa) | set(sb)):
        if sa.get(k) != sb.get(k):
            va, vb = sa.get(k), sb.get(k)
            hexs = ""
            if k in ("czxid", "mzxid", "pzxid", "ephemeralOwner") and isinstance(va, int) and isinstance(vb, int):
                hexs = "  (%#x != %#x)" % (va & (2**64 - 1), vb & (2**64 - 1))
            out.append("stat.%s: %s != %s%s" % (k, va, vb, hexs))
    extra = set(a) ^ set(b)
    if extra:
        out.append("keys only on one side: %s" % sorted(extra))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("label_a")
    ap.add_argument("file_a")
    ap.add_argument("label_b")
    ap.add_argument("file_b")
    ap.add_argument("--ignore", action="append", default=[])
    ap.add_argument("--null-as-empty", metavar="CONVERT_JSON")
    args = ap.parse_args()
    ign = set(args.ignore)
    a = load(args.label_a, args.file_a, ign)
    b = load(args.label_b, args.file_b, ign)
    if args.null_as_empty:
        with open(args.null_as_empty) as f:
            report = json.load(f)
        nulls = [m[0] for m in report["mappings"] if m[1].startswith("null value")]
        for p in nulls:
            if p in ign:
                continue
            if p not in b or b[p].get("data") is not None:
                print("%s: %r is reported as a null value but is not one in %s" % (args.null_as_empty, p, args.label_b))
                return 1
            b[p]["data"] = ""
    paths = sorted(set(a) | set(b), key=lambda s: s.encode("utf-8", "surrogatepass"))
    ndiff, first = 0, None
    only_a = only_b = 0
    for p in paths:
        if p not in b:
            only_a += 1
        elif p not in a:
            only_b += 1
        elif a[p] != b[p]:
            pass
        else:
            continue
        ndiff += 1
        if first is None:
            first = p
    if ndiff == 0:
        nulls_note = ""
        if args.null_as_empty:
            nulls_note = ", %d null values read as empty" % len(nulls)
        print("identical (%d nodes%s%s)" % (len(a), ", ignoring " + ", ".join(sorted(ign)) if ign else "", nulls_note))
        return 0
    p = first
    print("FIRST DIFFERENCE at %r:" % p)
    if p not in b:
        print("  only in %s: %s" % (args.label_a, json.dumps(a[p], ensure_ascii=False)))
    elif p not in a:
        print("  only in %s: %s" % (args.label_b, json.dumps(b[p], ensure_ascii=False)))
    else:
        for d in field_diffs(a[p], b[p]):
            print("  %s  (%s != %s)" % (d, args.label_a, args.label_b))
        print("  %-10s %s" % (args.label_a + ":", json.dumps(a[p], ensure_ascii=False, separators=(",", ":"))))
        print("  %-10s %s" % (args.label_b + ":", json.dumps(b[p], ensure_ascii=False, separators=(",", ":"))))
    print("in all: %d of %d paths differ (%d only in %s [%d nodes], %d only in %s [%d nodes])"
          % (ndiff, len(paths), only_a, args.label_a, len(a), only_b, args.label_b, len(b)))
    return 1


if __name__ == "__main__":
    sys.exit(main())
