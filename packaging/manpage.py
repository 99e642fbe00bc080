#!/usr/bin/env python3
"""Makes a man page (roff, section 1) from a program's own `--help` table.

usage: manpage.py PROGRAM NAME VERSION DOCDIR OUT [SEE_ALSO...]

DOCDIR is where the installed documentation is (named in SEE ALSO). The --help texts of sagad, sagactl, sagabroker and the workers share one
shape (see their usage functions):
  Usage: NAME ...              -> SYNOPSIS
  lines up to the first heading -> DESCRIPTION
  "Some heading:"              -> a section (.SH SOME HEADING)
  "  --flag ARG  (ENV, default: X)" then lines indented further -> .TP items
  "  tag   text" (two or more spaces apart)                    -> .TP items
  "word words: text" at column 0 (e.g. "exit status: 0 ok") -> a section
Anything else stays as a literal line, so nothing of the table is lost.
"""
import re
import subprocess
import sys


def roff(text):
    """Escapes text for roff: backslashes, hyphens (so they copy as ASCII), leading dots."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def item_text(texts):
    """An option's text; the table's "(ENV, default: X)" goes on a line of its own after it."""
    env = re.match(r"^\((\w+), default: (.*)\)$", texts[0]) if texts else None
    if not env:
        return [roff(" ".join(texts))]
    lines = [roff(" ".join(texts[1:]))] if texts[1:] else []
    return lines + [".br", "Environment: \\fB%s\\fR; default: %s" % (roff(env.group(1)), roff(env.group(2)))]


def parse(help_text):
    """(synopsis, description lines, [(heading, [block])]); a block is ("item", tag, [text]) or ("line", text)."""
    lines = help_text.rstrip("\n").split("\n")
    if not lines or not re.match(r"(?i)usage: ", lines[0]):
        raise ValueError("the --help text does not start with 'Usage: ': " + (lines[0] if lines else "(empty)"))
    synopsis = lines[0].split(":", 1)[1].strip()
    description, sections, current = [], [], None
    for line in lines[1:]:
        heading = re.match(r"^(\S[^:]*):\s*$", line)
        inline_heading = re.match(r"^([a-z][a-z ]{1,30}): (\S.*)$", line)
        if heading:
            current = (heading.group(1), [])
            sections.append(current)
            continue
        if inline_heading:
            current = (inline_heading.group(1), [("para", inline_heading.group(2))])
            sections.append(current)
            continue
        if current is None:
            description.append(line)
            continue
        blocks = current[1]
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if not body:
            continue
        if indent == 0:  # a paragraph's next line
            if blocks and blocks[-1][0] == "para":
                blocks[-1] = ("para", blocks[-1][1] + " " + body)
            else:
                blocks.append(("para", body))
        elif indent <= 2:
            parts = re.split(r" {2,}", body, maxsplit=1)
            if len(parts) == 2 and not parts[1].startswith("-"):
                blocks.append(("item", parts[0], [parts[1]]))
            elif len(parts) == 2:  # several options on one line: keep it as it is
                blocks.append(("line", body))
            else:
                blocks.append(("item", body, []))
        elif blocks and blocks[-1][0] == "item":  # the item's text, indented further
            blocks[-1][2].append(body)
        else:
            blocks.append(("line", body))
    return synopsis, description, sections


def render(name, version, docdir, help_text, see_also):
    synopsis, description, sections = parse(help_text)
    program = synopsis.split()[0]
    paragraphs = [p for p in "\n".join(description).strip().split("\n\n") if p.strip()]
    first_line = paragraphs[0].split("\n")[0] if paragraphs else name
    summary = first_line.split(": ", 1)[0].rstrip(".")  # "Example saga participant: ..." -> the part before
    out = [
        '.\\" Generated from `%s --help` by packaging/manpage.py; do not edit.' % program,
        '.TH %s 1 "" "sagad %s" "User Commands"' % (name.upper(), version),
        ".nh",  # no hyphenation: option and variable names stay whole
        ".ad l",
        ".SH NAME",
        "%s \\- %s" % (roff(name), roff(summary[0].lower() + summary[1:] if summary else "")),
        ".SH SYNOPSIS",
        ".B %s" % roff(program),
        roff(synopsis[len(program):].strip()),
        ".SH DESCRIPTION",
    ]
    for paragraph in paragraphs:
        out += [".PP", roff(" ".join(l.strip() for l in paragraph.split("\n")))]
    for heading, blocks in sections:
        name_part, paren, rest = heading.partition(" (")  # "(POST /v1/sagas/abort)" keeps its case
        out.append(".SH %s" % roff(name_part.upper() + paren + rest))
        literal = False
        for block in blocks:
            if block[0] == "line":
                if not literal:
                    out += [".PP", ".nf"]
                    literal = True
                out.append(roff(block[1]))
                continue
            if literal:
                out.append(".fi")
                literal = False
            if block[0] == "para":
                out += [".PP", roff(block[1])]
            else:
                out += [".TP", ".B %s" % roff(block[1])] + item_text(block[2])
        if literal:
            out.append(".fi")
    if see_also:
        out += [".SH SEE ALSO", ", ".join("\\fB%s\\fR(1)" % roff(s) for s in see_also)]
        out += [".PP", roff("%s/ (README.md, OPERATIONS.md, PROTOCOL.md, PARTICIPANTS.md, ADMIN-API.md)" % docdir)]
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) < 6:
        sys.stderr.write("usage: manpage.py PROGRAM NAME VERSION DOCDIR OUT [SEE_ALSO...]\n")
        return 2
    program, name, version, docdir, out_path = argv[1:6]
    run = subprocess.run([program, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=30)
    if run.returncode != 0:
        sys.stderr.write("manpage.py: '%s --help' exited %d: %s\n" % (program, run.returncode, run.stderr.strip()))
        return 1
    try:
        page = render(name, version, docdir, run.stdout, [s for s in argv[6:] if s != name])
    except ValueError as e:
        sys.stderr.write("manpage.py: %s: %s\n" % (program, e))
        return 1
    with open(out_path, "w") as f:
        f.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
