#!/usr/bin/env python3
"""Reads a DOM dump of the web view (chromium --dump-dom) and prints one fact
about it, for tests/ui/test_ui.sh to compare with the database.

  page.py FILE state              body's data-state (loading, ready, error)
  page.py FILE rows               the saga list: "id=status" per row, in order
  page.py FILE stats              the header's counts: "total=N running=N ..."
  page.py FILE steps              the timeline: "step=status" per row, in order
  page.py FILE comp-bars          steps with a compensation bar, sorted, one a line
  page.py FILE action-bars        how many action bars
  page.py FILE history            the history table: "seq=event" per row
  page.py FILE text ID            text of the element with that id
  page.py FILE attr ID|body NAME  an attribute's value (its name when present but empty)
  page.py FILE tags T1,T2         "T1=n T2=n": how many such elements the document has
  page.py FILE has-text STRING    "yes" when the page's text contains STRING, else "no"
"""
import sys
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.walk()

    def classes(self):
        return (self.attrs.get("class") or "").split()

    def find(self, pred):
        return [n for n in self.walk() if pred(n)]


class Tree(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", [], None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def by_id(root, ident):
    found = root.find(lambda n: n.attrs.get("id") == ident)
    if not found:
        sys.exit(f"page.py: no element with id '{ident}'")
    return found[0]


def cells(tr):
    return [td for td in tr.children if isinstance(td, Node) and td.tag == "td"]


def main():
    path, what, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    t = Tree()
    with open(path, encoding="utf-8") as f:
        t.feed(f.read())
    t.close()
    root = t.root
    body = (root.find(lambda n: n.tag == "body") or [root])[0]
    out = []
    if what == "state":
        out.append(body.attrs.get("data-state", ""))
    elif what == "rows":
        for tr in by_id(root, "sagas").find(lambda n: n.tag == "tr" and "data-saga-id" in n.attrs):
            c = cells(tr)
            out.append(f"{c[0].text()}={c[2].text()}")
    elif what == "stats":
        out.append(" ".join(f"{a.attrs.get('data-status') or 'total'}={a.find(lambda n: n.tag == 'b')[0].text()}"
                            for a in by_id(root, "stats").find(lambda n: "chip" in n.classes())))
    elif what == "paused":
        out += [n.attrs["data-paused-topic"] for n in by_id(root, "stats").find(lambda n: "data-paused-topic" in n.attrs)]
    elif what == "steps":
        for row in by_id(root, "timeline").find(lambda n: "data-step" in n.attrs):
            badge = row.find(lambda n: "badge" in n.classes())
            out.append(f"{row.attrs['data-step']}={badge[0].text() if badge else '?'}")
    elif what == "comp-bars":
        out += sorted(row.attrs["data-step"] for row in by_id(root, "timeline").find(lambda n: "data-step" in n.attrs)
                      if row.find(lambda n: {"bar", "compensation"} <= set(n.classes())))
    elif what == "action-bars":
        out.append(str(len(root.find(lambda n: {"bar", "action"} <= set(n.classes())))))
    elif what == "history":
        for tr in by_id(root, "history").find(lambda n: n.tag == "tr" and cells(n)):
            c = cells(tr)
            out.append(f"{c[0].text()}={c[3].text()}")
    elif what == "text":
        out.append(by_id(root, args[0]).text().strip())
    elif what == "attr":
        n = body if args[0] == "body" else by_id(root, args[0])
        v = n.attrs.get(args[1])
        out.append("" if v is None else (v or args[1]))
    elif what == "tags":
        out.append(" ".join(f"{tag}={len(root.find(lambda n, tag=tag: n.tag == tag))}" for tag in args[0].split(",")))
    elif what == "has-text":
        out.append("yes" if args[0] in root.text() else "no")
    else:
        sys.exit(f"page.py: unknown check '{what}'")
    if out and out != [""]:
        print("\n".join(out))


main()
